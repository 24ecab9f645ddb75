"""The promotion policy: which gates guard which alias, and how to evaluate.

Found as ``mlgate.toml`` or ``[tool.mlgate]`` in ``pyproject.toml``, walking up from the working
directory, or passed explicitly. Parsed with ``tomllib`` only (no code runs while it is read;
custom metrics are imported only when an evaluation scores them) and validated strictly: an
unknown key, a wrong type or an impossible value raises :class:`~mlgate.errors.PolicyError`
naming the file and the key path. The sections below are declared as
:class:`~mlgate.promotion.schema.Schema` s here; each gate type declares its own keys in its
module (:mod:`mlgate.promotion.gates`), so a plug-in's gates are checked the same way.

Example::

    ledger_experiment = "mlgate-ledger"     # where ledger events live (default shown)
    lease_ttl = 60                          # seconds a promotion may hold the model's lease

    [models.churn]                          # or [default] for every model not listed
    champion_alias = "champion"             # defaults shown
    challenger_alias = "challenger"

    [models.churn.evaluation]               # optional: score both versions on the same rows
    data = "data/eval.parquet"              # relative to this file
    target = "label"
    task = "classification"                 # or "regression"; see below when left out
    min_rows = 30                           # comparison gates refuse fewer rows (default shown)

    [models.churn.evaluation.metrics]       # optional: your own metrics, imported when scored
    profit = "churn_metrics:profit"         # module:function, called (y_true, y_pred[, y_proba])

    [[models.churn.gates.challenger]]
    type = "metric"
    metric = "accuracy"
    min = 0.85

    [[models.churn.gates.champion]]
    type = "no_regression"
    metric = "accuracy"
    tolerance = 0.005

An alias with no ``gates`` entry cannot be promoted to (fail closed); ``gates.<alias> = []``
allows ungated moves explicitly.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgate.config import POLICY_FILE, find_policy
from mlgate.errors import PolicyError
from mlgate.keys import DEFAULT_LEASE_TTL, DEFAULT_LEDGER
from mlgate.promotion.gates.base import GateSpec
from mlgate.promotion.gates.registry import parse_spec
from mlgate.promotion.schema import (
    Alias,
    Integer,
    Number,
    Schema,
    String,
    Table,
    check_alias,
    join,
    kind,
    problem,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

TASKS = ("classification", "regression")
DEFAULT_MIN_ROWS = 30


# --------------------------------------------------------------------------- typed policy


@dataclass(frozen=True)
class EvaluationSpec:
    """How to score candidate and champion on the same rows (all optional).

    ``min_rows``: comparison gates refuse an evaluation set with fewer rows. ``metrics``: custom
    metric name -> ``"module:function"``, imported (from the policy file's directory first) only
    when an evaluation runs, and called with ``(y_true, y_pred)`` or ``(y_true, y_pred, y_proba)``.
    """

    data: str | None = None
    target: str | None = None
    task: str | None = None
    min_rows: int = DEFAULT_MIN_ROWS
    metrics: Mapping[str, str] = field(default_factory=dict)
    base_dir: str | None = None
    #: ``(policy file, key path of this table)``, for errors found when the data is read.
    origin: tuple[str, str] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ModelPolicy:
    """The policy for one registered model."""

    name: str
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    gates: Mapping[str, tuple[GateSpec, ...]] = field(default_factory=dict)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)

    def gates_for(self, alias: str) -> tuple[GateSpec, ...] | None:
        """The gates guarding ``alias``; None when the policy does not mention it."""
        return self.gates.get(alias)


@dataclass(frozen=True)
class Policy:
    """A whole policy file."""

    path: str | None
    models: Mapping[str, ModelPolicy]
    default: ModelPolicy | None
    ledger_experiment: str = DEFAULT_LEDGER
    lease_ttl: float = DEFAULT_LEASE_TTL
    #: where the policy's tables sit in the file: ``tool.mlgate`` in a pyproject.toml
    prefix: str = ""

    def for_model(self, name: str) -> ModelPolicy:
        """The model's own section, else ``[default]``, else a policy with no gates."""
        if name in self.models:
            return self.models[name]
        if self.default is not None:
            return ModelPolicy(
                name=name,
                champion_alias=self.default.champion_alias,
                challenger_alias=self.default.challenger_alias,
                gates=self.default.gates,
                evaluation=self.default.evaluation,
            )
        return ModelPolicy(name=name)


# --------------------------------------------------------------------------- schemas


def _aliases_differ(values: Mapping[str, Any]) -> None:
    if values["champion_alias"] == values["challenger_alias"]:
        raise problem("challenger_alias", "must differ from champion_alias")


def _target_with_data(values: Mapping[str, Any]) -> None:
    if values["data"] is not None and values["target"] is None:
        raise problem("target", "is required when evaluation.data is set")


_TOP = Schema(
    (
        String("ledger_experiment", DEFAULT_LEDGER),
        Number(
            "lease_ttl",
            DEFAULT_LEASE_TTL,
            test=lambda v: 1 <= v <= 3600,
            rule="between 1 and 3600 seconds",
        ),
        Table("default"),
        Table("models", {}),
    )
)
_MODEL = Schema(
    (
        Alias("champion_alias", "champion"),
        Alias("challenger_alias", "challenger"),
        Table("gates", {}),
        Table("evaluation", {}),
    ),
    rules=(_aliases_differ,),
)
_EVALUATION = Schema(
    (
        String("data"),
        Integer("min_rows", DEFAULT_MIN_ROWS, minimum=1),
        Table("metrics", {}),
        String("task", choices=TASKS),
        String("target"),
    ),
    rules=(_target_with_data,),
)
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


# --------------------------------------------------------------------------- parsing


def parse_policy(
    data: Mapping[str, Any], path: str, *, base: Path | None = None, prefix: str = ""
) -> Policy:
    """Validate a policy that was already parsed from TOML (``path`` is for messages;
    ``prefix`` is the key path of the policy's table in that file, ``tool.mlgate`` in a
    pyproject.toml)."""
    base = base or Path(path).parent
    top = _TOP.parse(data, path=path, key=prefix)
    default = None
    if top["default"] is not None:
        default = _model_policy(path, "*", top["default"], join(prefix, "default"), base)
    models = {
        name: _model_policy(path, name, raw, join(prefix, f"models.{quote_key(name)}"), base)
        for name, raw in top["models"].items()
    }
    return Policy(
        path=path,
        models=models,
        default=default,
        ledger_experiment=top["ledger_experiment"],
        lease_ttl=top["lease_ttl"],
        prefix=prefix,
    )


def _model_policy(path: str, name: str, raw: Any, key: str, base: Path) -> ModelPolicy:
    t = _MODEL.parse(raw, path=path, key=key)
    gates_key = join(key, "gates")
    gates = {
        alias: _alias_gates(path, alias, specs, join(gates_key, alias))
        for alias, specs in t["gates"].items()
    }
    _refuse_case_variants(path, gates_key, [t["champion_alias"], t["challenger_alias"], *gates])
    return ModelPolicy(
        name=name,
        champion_alias=t["champion_alias"],
        challenger_alias=t["challenger_alias"],
        gates=gates,
        evaluation=_evaluation(path, t["evaluation"], join(key, "evaluation"), base),
    )


def _refuse_case_variants(path: str, key: str, aliases: list[str]) -> None:
    """Aliases are case-sensitive in the registry, so ``Champion`` beside ``champion`` would be a
    second alias that no gate of ``champion`` guards: refused, naming the one it shadows."""
    seen: dict[str, str] = {}
    for alias in aliases:
        other = seen.setdefault(alias.lower(), alias)
        if other != alias:
            raise PolicyError(
                path,
                join(key, alias),
                f"{alias!r} differs from the alias {other!r} only by case; aliases are "
                f"case-sensitive, so use {other!r}",
            )


def _evaluation(path: str, raw: Any, key: str, base: Path) -> EvaluationSpec:
    ev = _EVALUATION.parse(raw, path=path, key=key)
    data = ev["data"]
    if data is not None and not Path(data).is_absolute():
        data = str((base / data).resolve())
    return EvaluationSpec(
        data=data,
        target=ev["target"],
        task=ev["task"],
        min_rows=ev["min_rows"],
        metrics=_custom_metrics(path, ev["metrics"], join(key, "metrics")),
        base_dir=str(base.resolve()),
        origin=(path, key),
    )


def _custom_metrics(path: str, table: Mapping[str, Any], key: str) -> dict[str, str]:
    from mlgate.promotion.measures import BUILTIN_METRICS

    for name, ref in table.items():
        if name in BUILTIN_METRICS:
            why = f"{name!r} is a built-in metric; give the custom metric another name"
            raise PolicyError(path, join(key, name), why)
        if not isinstance(ref, str) or not _CALLABLE.match(ref):
            raise PolicyError(path, join(key, name), f'must be "module:function", got {ref!r}')
    return {str(name): ref for name, ref in table.items()}


def _alias_gates(path: str, alias: str, specs: Any, key: str) -> tuple[GateSpec, ...]:
    try:
        check_alias(alias)
    except PolicyError as exc:
        raise PolicyError(path, key, exc.problem) from None
    if not isinstance(specs, list):
        raise PolicyError(path, key, f"must be an array of tables ([[{key}]]), got {kind(specs)}")
    out = tuple(parse_spec(g, path=path, key=f"{key}[{i}]") for i, g in enumerate(specs))
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise PolicyError(path, key, f"two gates are named {dup[0]!r}; give one a distinct name")
    return out


def quote_key(name: str) -> str:
    """``name`` as a TOML key: bare when TOML allows it, else quoted (``"x y"``)."""
    return name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'


def load_policy(path: str | os.PathLike[str] | None = None, *, start: str | None = None) -> Policy:
    """Load and validate a policy.

    Args:
        path: an ``mlgate.toml`` or ``pyproject.toml``. When None, search upward from ``start``
            (default: the working directory) for ``mlgate.toml``, then a ``pyproject.toml`` with a
            ``[tool.mlgate]`` table.

    Raises:
        PolicyError: the file is missing, is not valid TOML, or breaks a rule (file and key named).
    """
    if path is None:
        found = find_policy(Path(start) if start else Path.cwd())
        if found is None:
            raise PolicyError(
                POLICY_FILE,
                "",
                "no policy found: create mlgate.toml (or [tool.mlgate] in pyproject.toml) "
                "here or in a parent directory, or pass --policy",
            )
        path = found
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(str(p), "", "no such file") from None
    except OSError as exc:
        raise PolicyError(str(p), "", f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(str(p), "", f"not valid TOML: {exc}") from None
    if p.name == "pyproject.toml":
        tool = raw.get("tool", {})
        if not isinstance(tool, Mapping) or "mlgate" not in tool:
            raise PolicyError(str(p), "tool.mlgate", "no [tool.mlgate] table in this file")
        table = tool["mlgate"]
        if not isinstance(table, Mapping):
            raise PolicyError(str(p), "tool.mlgate", "must be a table")
        return _prefixed(table, str(p), p.parent)
    return parse_policy(raw, str(p), base=p.parent)


def _prefixed(table: Mapping[str, Any], path: str, base: Path) -> Policy:
    return parse_policy(table, path, base=base, prefix="tool.mlgate")


__all__ = [
    "DEFAULT_LEASE_TTL",
    "DEFAULT_LEDGER",
    "EvaluationSpec",
    "GateSpec",
    "ModelPolicy",
    "Policy",
    "find_policy",
    "load_policy",
    "parse_policy",
    "quote_key",
]
