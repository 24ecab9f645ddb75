"""The public functions' arguments, checked against their annotations before anything happens.

:mod:`mlgate.api` is called from notebooks and scripts, where nothing has parsed the values the
way click parses the command's options. :func:`checker` makes a decorator that binds a call to
the function's signature and checks every argument against its annotation, so a wrong type or
value is one :class:`~mlgate.errors.UsageError` naming the argument, what it expects and what it
got, raised before any file, server or engine is touched.

The annotations are the contract; what they may say:

* ``str``, ``int`` (not ``bool``), ``float`` (an ``int`` too, not ``bool``), ``bool``, ``None``;
* unions (``X | None``), ``Literal[...]`` choices, ``Annotated[float, Between(0, 100)]`` ranges;
* ``Mapping[K, V]``, ``Sequence[T]`` (never a ``str``), ``tuple[...]``, ``os.PathLike[str]``,
  ``Callable``, ``Any``;
* classes, named by :func:`deferred` when importing them would be heavy (MLflow, Docker): the
  check imports nothing, since a value can only be an instance once its module is imported.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import numbers
import os
import reprlib
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, ParamSpec, TypeVar, Union, get_args, get_origin
from typing import get_type_hints as _hints

from mlgate.errors import UsageError

P = ParamSpec("P")
R = TypeVar("R")

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 40


@dataclass(frozen=True)
class Between:
    """``Annotated[float, Between(low, high)]``: a number within ``[low, high]`` (None: open)."""

    low: float | None = None
    high: float | None = None

    def admits(self, value: Any) -> bool:
        # Written so that NaN, which compares False with everything, is never admitted.
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        if self.high is None:
            return f"at least {self.low:g}"
        if self.low is None:
            return f"at most {self.high:g}"
        return f"from {self.low:g} to {self.high:g}"


def deferred(module: str, name: str) -> type:
    """A stand-in for class ``module.name`` in annotations whose instance check imports nothing."""

    class _Deferred(type):
        def __instancecheck__(cls, value: Any) -> bool:
            real = getattr(sys.modules.get(module), name, None)
            return isinstance(real, type) and isinstance(value, real)

    return _Deferred(name, (), {"__module__": module})


def _is_bool(value: Any) -> bool:
    """NumPy's bool (not a Python bool, and not an Integral either, but checked to be sure)."""
    return type(value).__name__ == "bool_"


def fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is what the annotation ``hint`` admits."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin is Annotated:
        marks = [m for m in hint.__metadata__ if isinstance(m, Between)]
        return fits(value, args[0]) and all(m.admits(value) for m in marks)
    if origin is Union or origin is types.UnionType:
        return any(fits(value, h) for h in args)
    if origin is Literal:
        return any(type(value) is type(choice) and value == choice for choice in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int or hint is float:
        # numbers.Integral/Real admit NumPy's scalars (a notebook's np.float32 metric, an
        # np.int64 count), as the library did before it checked types; bool is refused
        number = numbers.Integral if hint is int else numbers.Real
        return isinstance(value, number) and not isinstance(value, bool) and not _is_bool(value)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(map(fits, value, args))
    if origin is Mapping or hint is Mapping:
        key, val = args or (Any, Any)
        return isinstance(value, Mapping) and all(
            fits(k, key) and fits(v, val) for k, v in value.items()
        )
    if origin is Sequence or hint is Sequence:
        item = args[0] if args else Any
        return (
            isinstance(value, Sequence)
            and not isinstance(value, str | bytes)
            and all(fits(v, item) for v in value)
        )
    if origin is os.PathLike:
        return isinstance(value, os.PathLike)
    if origin is Callable or hint is Callable:
        return callable(value)
    if isinstance(hint, type):
        return isinstance(value, hint)
    raise TypeError(f"mlgate cannot check arguments annotated {hint!r}")  # a bug of ours


def describe(hint: Any) -> str:
    """What the annotation ``hint`` admits, in words: ``a str or None``, ``one of 'a', 'b'``."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is None or hint is type(None):
        return "None"
    if origin is Annotated:
        marks = " ".join(str(m) for m in hint.__metadata__ if isinstance(m, Between))
        return f"{describe(args[0])} {marks}".strip()
    if origin is Union or origin is types.UnionType:
        words = [describe(h) for h in args]
        return ", ".join(words[:-1]) + f" or {words[-1]}"
    if origin is Literal:
        return "one of " + ", ".join(repr(c) for c in args)
    simple = {str: "a str", int: "an int", float: "a number", bool: "True or False", Any: "any"}
    if hint in simple:
        return simple[hint]
    if origin is Mapping or hint is Mapping:
        key, val = args or (Any, Any)
        return f"a mapping of {_bare(describe(key))} to {_bare(describe(val))}"
    if origin is Sequence or origin is tuple or hint is Sequence:
        return f"a list of {_bare(describe(args[0]))}" if args else "a list"
    if origin is os.PathLike:
        return "a path"
    if origin is Callable or hint is Callable:
        return "a function"
    if hasattr(hint, "_describe"):
        return str(hint._describe)
    name = getattr(hint, "__name__", str(hint))
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def _bare(words: str) -> str:
    return words.removeprefix("a ").removeprefix("an ")


def got(value: Any) -> str:
    """The value received, for an error message: its type and a short one-line repr."""
    if value is None or isinstance(value, bool):
        return repr(value)
    return f"{type(value).__name__} {_repr.repr(value)}".replace("\n", " ")


def _culprit(value: Any, hint: Any) -> str | None:
    """The entry of a mapping or list that makes it wrong, when the container itself is right."""
    for h in get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,):
        origin, args = get_origin(h), get_args(h)
        if (origin is Mapping or h is Mapping) and isinstance(value, Mapping):
            key, val = args or (Any, Any)
            for k, v in value.items():
                if not fits(k, key):
                    return f"its key {got(k)} is not {describe(key)}"
                if not fits(v, val):
                    return f"its {k!r} is {got(v)}"
        if (origin is Sequence or h is Sequence) and isinstance(value, list | tuple) and args:
            for i, v in enumerate(value):
                if not fits(v, args[0]):
                    return f"its item {i} is {got(v)}"
    return None


def check(where: str, name: str, value: Any, hint: Any) -> None:
    """Raise ``UsageError`` unless ``value`` is what ``hint`` admits."""
    if not fits(value, hint):
        culprit = _culprit(value, hint) or f"got {got(value)}"
        raise UsageError(f"{where}: argument {name!r} expects {describe(hint)}; {culprit}")


def _contract(
    fn: Callable[..., Any], names: Mapping[str, Any]
) -> tuple[inspect.Signature, dict[str, Any]]:
    """The function's signature and its parameters' annotations, evaluated."""
    params = {k: v for k, v in fn.__annotations__.items() if k != "return"}
    holder = types.SimpleNamespace(__annotations__=params)
    hints = _hints(holder, globalns=fn.__globals__, localns=dict(names), include_extras=True)
    return inspect.signature(fn), hints


def _bind(where: str, sig: inspect.Signature, args: Any, kwargs: Any) -> inspect.BoundArguments:
    """The call bound to the signature; a wrong argument name is a usage error (with a near miss)."""
    params = sig.parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for key in kwargs:
            if key not in params:
                near = [p for p in params if len(p) > 2 and (p in key or key in p)]
                near = near or difflib.get_close_matches(key, list(params), n=1)
                hint = f"did you mean {near[0]!r}?" if near else "known: " + ", ".join(params)
                raise UsageError(f"{where}: no argument {key!r}", hint=hint)
    try:
        return sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise UsageError(f"{where}: {exc}") from None


def checker(names: Mapping[str, Any]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator checking every argument of a call against the function's annotations.

    ``names`` resolves the annotations' names that the module imports only for type checkers
    (give :func:`deferred` stand-ins for classes whose modules are heavy).
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        where = f"{fn.__name__}()"
        contract: list[tuple[inspect.Signature, dict[str, Any]]] = []  # on the first call

        @functools.wraps(fn)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            if not contract:
                contract.append(_contract(fn, names))
            sig, hints = contract[0]
            bound = _bind(where, sig, args, kwargs)
            for name, value in bound.arguments.items():
                if sig.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                    continue  # checked by the function against what the keywords set
                check(where, name, value, hints.get(name, Any))
            return fn(*args, **kwargs)

        return checked

    return decorate
