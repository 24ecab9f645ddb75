"""Declarative schemas for the tables of a policy file: keys, types, defaults, allowed values.

A :class:`Schema` lists its :class:`Option` s (a :class:`String`, :class:`Number`,
:class:`Integer`, :class:`Boolean`, :class:`Strings`, :class:`Alias` or :class:`Table`) and the
rules that tie several keys together. :meth:`Schema.parse` checks a table parsed from TOML and
returns every option's value, defaults filled in; the first problem raises
:class:`~mlgate.errors.PolicyError` naming the file and the key path, in one line::

    mlgate.toml: models.churn.gates.champion[2].min: must be a number, got a string

The policy's own sections and every gate type (:mod:`mlgate.promotion.gates`) are declared
this way, so each key is described once, where it is used.

Why not pydantic (installed with MLflow): a prototype of the whole policy as pydantic models,
its errors translated back into these messages from its ``loc`` paths, error types and
discriminator tags, would have been only about 5% shorter once complete (it still lacked the
"allowed:" hints and plug-in types, and worded 7 of 48 malformed policies differently), and
spent about 70 ms more CPU per process building its validators, which every ``mlgate check``
would pay.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlgate.errors import PolicyError

#: A rule over the parsed values of a table; raises :func:`problem` to refuse them.
Rule = Callable[[Mapping[str, Any]], None]


def problem(key: str, text: str) -> PolicyError:
    """The error a :data:`Rule` raises: ``key`` is relative to the table ('' for the table)."""
    return PolicyError("", key, text)


def kind(value: Any) -> str:
    """How a TOML value is described in messages: "a string", "an array", "a table", ..."""
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return names.get(type(value), type(value).__name__)


def join(key: str, name: str) -> str:
    """``models.churn`` + ``gates`` -> ``models.churn.gates`` (either may be empty)."""
    return f"{key}.{name}" if key and name else key or name


@dataclass(frozen=True)
class Option:
    """One key of a table. ``default`` is its value when absent; ``required`` refuses absence."""

    name: str
    default: Any = None
    required: bool = False

    def check(self, value: Any) -> Any:
        """The parsed value, or raise :func:`problem` (key '') with why it is refused."""
        return value


@dataclass(frozen=True)
class String(Option):
    """A non-empty string; with ``choices``, one of them."""

    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise problem("", f"must be a non-empty string, got {kind(value)}")
        if self.choices and value not in self.choices:
            allowed = " or ".join(f'"{c}"' for c in self.choices)
            raise problem("", f"must be {allowed}, got {value!r}")
        return value


@dataclass(frozen=True)
class Number(Option):
    """A finite number (an integer is accepted, a boolean is not); ``test`` a further rule,
    described by ``rule`` ("zero or more", "in [0.5, 1)")."""

    test: Callable[[float], bool] | None = None
    rule: str = ""

    def check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise problem("", f"must be a number, got {kind(value)}")
        if not math.isfinite(value):
            raise problem("", "must be finite")
        if self.test is not None and not self.test(float(value)):
            raise problem("", f"must be {self.rule}, got {value}")
        return float(value)


@dataclass(frozen=True)
class Integer(Option):
    """An integer of at least ``minimum``."""

    minimum: int = 0

    def check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise problem("", f"must be an integer, got {kind(value)}")
        if value < self.minimum:
            raise problem("", f"must be at least {self.minimum}, got {value}")
        return value


@dataclass(frozen=True)
class Boolean(Option):
    """``true`` or ``false``."""

    def check(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise problem("", f"must be true or false, got {kind(value)}")
        return value


@dataclass(frozen=True)
class Strings(Option):
    """An array of strings, each one of ``choices``."""

    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> Any:
        if not isinstance(value, list | tuple) or any(v not in self.choices for v in value):
            *first, last = [f'"{c}"' for c in self.choices]
            allowed = f"{', '.join(first)} and/or {last}" if first else last
            raise problem("", f"must be a list of {allowed}")
        return tuple(value)


@dataclass(frozen=True)
class Alias(Option):
    """A registry alias mlgate may move (not a version number, not ``latest``)."""

    def check(self, value: Any) -> Any:
        return check_alias(value)


@dataclass(frozen=True)
class Table(Option):
    """A sub-table, parsed by its own schema (here only its shape is checked)."""

    def check(self, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise problem("", f"must be a table, got {kind(value)}")
        return value


def check_alias(value: Any) -> str:
    """An alias mlgate may move, or raise :func:`problem` (key '')."""
    from mlgate.errors import UsageError
    from mlgate.registry.refs import validate_alias

    if not isinstance(value, str):
        raise problem("", f"must be a string, got {kind(value)}")
    try:
        return validate_alias(value)
    except UsageError as exc:
        raise problem("", exc.message) from None


@dataclass(frozen=True)
class Schema:
    """The options of one table and the rules across them, checked in that order."""

    options: tuple[Option, ...]
    rules: tuple[Rule, ...] = ()

    def keys(self) -> set[str]:
        return {o.name for o in self.options}

    def parse(self, table: Any, *, path: str, key: str, also: Iterable[str] = ()) -> dict[str, Any]:
        """Every option's value (defaults filled in) from ``table``, the table at ``key``.

        ``also`` names keys the caller handles itself (a gate's ``type``). Raises
        PolicyError(path, key path, problem) for an unknown key, a bad value, or a broken rule.
        """
        if not isinstance(table, Mapping):
            raise PolicyError(path, key, f"must be a table, got {kind(table)}")
        allowed = self.keys() | set(also)
        for name in table:
            if name not in allowed:
                hint = f"; allowed: {', '.join(sorted(allowed))}" if allowed else ""
                raise PolicyError(path, join(key, str(name)), f"unknown key{hint}")
        values: dict[str, Any] = {}
        try:
            for option in self.options:
                if option.name not in table:
                    if option.required:
                        raise problem(option.name, "is required")
                    values[option.name] = option.default
                    continue
                try:
                    values[option.name] = option.check(table[option.name])
                except PolicyError as exc:
                    raise problem(join(option.name, exc.key), exc.problem) from None
            for rule in self.rules:
                rule(values)
        except PolicyError as exc:
            raise PolicyError(path, join(key, exc.key), exc.problem) from None
        return values
