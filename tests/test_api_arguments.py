"""The Python API is as strict and as named as the CLI: every keyword is its command's option,
and every argument is checked before anything is read or written (no store, server or engine
here: a wrong argument never gets that far)."""

from __future__ import annotations

import ast
import inspect
import math
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import click
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlgate
from mlgate import api
from mlgate.cli import cli
from mlgate.errors import UsageError

CLI_DIR = Path(__file__).parents[1] / "src" / "mlgate" / "cli"

#: Options that are not keywords of the api call, and why.
NOT_KEYWORDS = {
    "*": {"json", "markdown", "quiet"},  # how the CLI prints the answer
    "register": {"artifact_path", "model_uri"},  # they spell the model's URI, the first argument
    "rollback": {"to"},  # hidden: the old spelling of --version
    "rollout": {"status", "abort"},  # choose rollout_status() or abort_rollout()
    "build": {"tools_image"},  # chooses build_tools_image()
    "export": {"output"},  # where Export.write() puts the YAML
}

#: The public functions of mlgate.api (the use cases and the tools image build).
PUBLIC = sorted(
    name
    for name, value in vars(api).items()
    if inspect.isfunction(value) and value.__module__ == api.__name__ and not name.startswith("_")
)


def _calls(command: click.Command) -> set[str]:
    """The mlgate.api functions the command's body calls."""
    for path in CLI_DIR.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name == command.callback.__name__:
                return {
                    n.func.attr
                    for n in ast.walk(node)
                    if isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Attribute)
                    and isinstance(n.func.value, ast.Name)
                    and n.func.value.id == "api"
                }
    raise AssertionError(f"no source for {command.name}")


def _keywords(function: str) -> set[str]:
    params = inspect.signature(getattr(api, function)).parameters
    names = {p for p in params if params[p].kind is not inspect.Parameter.VAR_KEYWORD}
    if function == "export":  # **fields are ExportOptions fields
        names |= set(typing.get_type_hints(mlgate.ExportOptions))
    return names


def test_every_option_is_a_keyword_of_the_same_name():
    """Each option of each command is a keyword of the api function(s) the command calls, named
    as the option (--no-cache is no_cache, a repeated --metric is metrics), except the few that
    only shape the CLI's output or choose which function is called."""
    mismatches = []
    for command in cli.commands.values():
        calls = _calls(command)
        assert calls <= set(PUBLIC), (command.name, calls)
        keywords = set().union(*map(_keywords, calls))
        skip = NOT_KEYWORDS["*"] | NOT_KEYWORDS.get(command.name, set())
        for option in command.params:
            if not isinstance(option, click.Option):
                continue
            spelled = {o.lstrip("-").replace("-", "_") for o in option.opts if o.startswith("--")}
            if option.multiple:
                spelled |= {f"{s}s" for s in spelled}
            if not spelled & (keywords | skip):
                mismatches.append(f"{command.name} {'/'.join(option.opts)} (have {sorted(calls)})")
    assert not mismatches, mismatches


def test_renamed_keywords_are_refused_with_the_new_name():
    """The old keywords (no shims) are a UsageError that suggests the option's name."""
    with pytest.raises(UsageError, match=r"rollback\(\): no argument 'to_version'.*'version'"):
        mlgate.rollback("m", to_version="1")
    with pytest.raises(UsageError, match=r"'poll_interval'.*did you mean 'poll'"):
        mlgate.serve("m", poll_interval=1.0)
    with pytest.raises(UsageError, match=r"'use_cache'.*did you mean 'no_cache'"):
        mlgate.fingerprint("x", use_cache=False)
    with pytest.raises(UsageError, match=r"export\(\): no argument 'kserve_mode'.*known: .*mode"):
        mlgate.export("kserve", "m", kserve_mode="native")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mlgate.check("m", 2, to=None), "check(): argument 'to' expects a str; got None"),
        (lambda: mlgate.check(123, to="c"), "argument 'model' expects a str; got int 123"),
        (lambda: mlgate.check("m", 2.0, to="c"), "'version' expects a str, an int or None"),
        (lambda: mlgate.check("m", to="c", policy=123), "'policy' expects a Policy, a str, a path"),
        (lambda: mlgate.show(123), "show(): argument 'model' expects a str; got int 123"),
        (lambda: mlgate.status(None), "status(): argument 'model' expects a str; got None"),
        (lambda: mlgate.traffic("m", weight="10"), "'weight' expects a number from 0 to 100"),
        (lambda: mlgate.serve("m", weight=150), "'weight' expects a number from 0 to 100 or None"),
        (lambda: mlgate.serve("m", weight=math.nan), "got float nan"),
        (lambda: mlgate.export("k8s", "m", replicas="3"), "'replicas' expects an int; got str"),
        (lambda: mlgate.register(1, name="m", metrics=[1, 2]), "got list [1, 2]"),
        (lambda: mlgate.register(1, name="m", metrics={"a": "x"}), "mapping of str to number"),
        (lambda: mlgate.history("m", limit="x"), "'limit' expects an int at least 1 or None"),
        (lambda: mlgate.history("m", limit=0), "got int 0"),
        (lambda: mlgate.history("m", kind="nope"), "'kind' expects one of 'promote', "),
        (lambda: mlgate.rollout("m", "http://x"), "'endpoints' expects a list of str; got str"),
        (lambda: mlgate.promote("m", to="c", expected=1.5), "str, an int, mlgate.CURRENT or None"),
        (lambda: mlgate.check("m"), "check(): missing a required argument: 'to'"),
    ],
)
def test_wrong_arguments_are_one_usage_error_naming_them(call, message, tmp_path, monkeypatch):
    """Wrong types and values the command would refuse are a UsageError naming the argument,
    what it expects and what it got, raised before any store is looked for."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/absent.db")
    with pytest.raises(UsageError) as caught:
        call()
    assert message in str(caught.value)
    assert not list(tmp_path.iterdir())


def test_event_kinds_are_the_ledgers():
    """history(kind=) and `mlgate history --kind` accept exactly the kinds the ledger records."""
    from mlgate.promotion.ledger import _KINDS

    assert set(typing.get_args(api.EventKind)) == set(_KINDS)


# --------------------------------------------------------------------------- property
_DEFERRED = {"Store": mlgate.Store, "Policy": mlgate.Policy, "ExportOptions": mlgate.ExportOptions}


def _hints(function: Callable[..., object]) -> dict[str, object]:
    """The parameters' annotations, evaluated with the classes api names for type checkers."""
    from mlgate.deploy.engine import Engine
    from mlgate.deploy.wheelhouse import Runner

    params = {k: v for k, v in function.__annotations__.items() if k != "return"}
    holder = types.SimpleNamespace(__annotations__=params)
    names = {**_DEFERRED, "Engine": Engine, "Runner": Runner}
    return typing.get_type_hints(holder, globalns=vars(api), localns=names, include_extras=True)


def _admitted(hint: object) -> tuple[type, ...] | None:
    """The Python types a value of ``hint`` may have (None: any), by the test's own reading."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return None
    if origin is typing.Annotated:
        return _admitted(args[0])
    if origin in (typing.Union, types.UnionType):
        parts = [_admitted(a) for a in args]
        return None if None in parts else tuple(t for p in parts for t in p)
    if origin is typing.Literal:
        return tuple({type(c) for c in args})
    if hint is None or hint is type(None):
        return (type(None),)
    if hint is float:
        return (int, float)
    table = {
        Mapping: (dict,),
        Sequence: (list, tuple),
        tuple: (tuple,),
        os.PathLike: (os.PathLike,),
    }
    if origin in table:
        return table[origin]
    if origin is Callable:
        return None
    assert isinstance(hint, type), hint
    return (hint,)


def _wrong(admitted: tuple[type, ...]) -> st.SearchStrategy[object]:
    """Values of every kind a notebook might pass by mistake, none of an admitted type."""
    anything = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.complex_numbers(),
        st.text(max_size=8),
        st.binary(max_size=8),
        st.lists(st.integers(), max_size=3),
        st.tuples(st.integers()),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        st.sets(st.integers(), max_size=2),
        st.builds(object),
    )
    return anything.filter(lambda v: type(v) not in admitted and not isinstance(v, os.PathLike))


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose SQLite store does not exist (readers fail at once, nothing is created),
    a policy file that does not exist, and a data file to fingerprint."""
    home = tmp_path_factory.mktemp("throwaway")
    (home / "data.csv").write_text("a\n1\n")
    return home


def _baseline(function: str, home: Path) -> tuple[list[object], dict[str, object]]:
    """Arguments the function accepts (if every one got through, it would fail at once on the
    absent store or Docker socket: serve only checks, never binds)."""
    first: dict[str, list[object]] = {
        "fingerprint": [str(home / "data.csv")],
        "register": [object()],
        "check": ["m", "1"],
        "promote": ["m", "1"],
        "rollout": ["m", ["http://127.0.0.1:9"]],
        "export": ["k8s", "m"],
        "build_tools_image": [],
    }
    keywords: dict[str, object] = {
        "name": "m",
        "to": "challenger",
        "weight": 0.0,
        "check": True,
        "docker_host": f"unix://{home}/no-engine.sock",
        "store": f"sqlite:///{home}/absent.db",
        "policy": str(home / "absent.toml"),
    }
    params = inspect.signature(getattr(api, function)).parameters
    return first.get(function, ["m/1"]), {k: v for k, v in keywords.items() if k in params}


@pytest.mark.parametrize("function", PUBLIC)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_every_argument_of_a_wrong_type_is_refused(function, throwaway, data):
    """Any argument of any public function given a value of a type its annotation does not
    admit is a UsageError naming that argument; nothing reaches the store, a port or Docker."""
    fn = getattr(api, function)
    hints = _hints(fn)
    params = inspect.signature(fn).parameters
    checked = {
        n: _admitted(h) for n, h in hints.items() if params[n].kind is not params[n].VAR_KEYWORD
    }
    choices = sorted(n for n, types_ in checked.items() if types_ is not None)
    name = data.draw(st.sampled_from(choices), label="argument")
    value = data.draw(_wrong(checked[name]), label="value")
    args, kwargs = _baseline(function, throwaway)
    positional = list(params).index(name)
    if positional < len(args):
        args[positional] = value
    else:
        kwargs[name] = value
    with pytest.raises(UsageError, match=f"argument '{name}' expects"):
        fn(*args, **kwargs)
    assert sorted(p.name for p in throwaway.iterdir()) == ["data.csv"]


def test_the_property_covers_every_public_function():
    """Each public function of mlgate.api is checked (decorated), and every one re-exported
    from mlgate is the same checked object."""
    for name in PUBLIC:
        assert hasattr(getattr(api, name), "__wrapped__"), name
        if name in mlgate.__all__:
            assert getattr(mlgate, name) is getattr(api, name)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: mlgate.history("m", limit=np.int64(5)), "limit"),
        (lambda: mlgate.traffic("m", weight=np.int64(10)), "weight"),
        (lambda: mlgate.traffic("m", weight=np.float32(12.5)), "weight"),
        (lambda: mlgate.register(1, name="m", metrics={"a": np.float32(0.9)}), "metrics"),
        (lambda: mlgate.register(1, name="m", metrics={"n": np.int64(3)}), "metrics"),
    ],
)
def test_numpy_scalars_pass_as_the_numbers_they_are(call, argument, tmp_path, monkeypatch):
    """A notebook's NumPy scalars (np.float32 metrics, np.int64 counts) pass the argument check
    as the numbers they are: whatever stops the call afterwards is not about that argument."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/absent.db")
    with pytest.raises(mlgate.MlgateError) as caught:
        call()
    assert f"argument {argument!r}" not in str(caught.value)
