"""The promotion policy: which gates guard which alias, and how to evaluate.

Found as ``mlgate.toml`` or ``[tool.mlgate]`` in ``pyproject.toml``, walking up from the working
directory, or passed explicitly. Parsed with ``tomllib`` only (no code runs while it is read;
custom metrics are imported only when an evaluation scores them) and validated strictly: an
unknown key, a wrong type or an impossible value raises :class:`~mlgate.errors.PolicyError`
naming the file and the key path.

Example::

    ledger_experiment = "mlgate-ledger"     # where ledger events live (default shown)
    lease_ttl = 60                          # seconds a promotion may hold the model's lease

    [models.churn]                          # or [default] for every model not listed
    champion_alias = "champion"             # defaults shown
    challenger_alias = "challenger"

    [models.churn.evaluation]               # optional: score candidate and champion on the same rows
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

import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgate.config import POLICY_FILE, find_policy
from mlgate.errors import PolicyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_LEDGER = "mlgate-ledger"
DEFAULT_LEASE_TTL = 60.0

#: Metrics whose direction mlgate knows. Anything else needs ``greater_is_better`` in the gate.
GREATER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "balanced_accuracy": True,
    "f1": True,
    "f1_macro": True,
    "f1_micro": True,
    "f1_weighted": True,
    "precision": True,
    "precision_macro": True,
    "recall": True,
    "recall_macro": True,
    "roc_auc": True,
    "auc": True,
    "average_precision": True,
    "r2": True,
    "explained_variance": True,
    "rmse": False,
    "mse": False,
    "mae": False,
    "mape": False,
    "median_absolute_error": False,
    "log_loss": False,
    "loss": False,
    "error_rate": False,
    "brier_score": False,
}

TASKS = ("classification", "regression")
DEFAULT_MIN_ROWS = 30


# --------------------------------------------------------------------------- typed policy


@dataclass(frozen=True)
class GateSpec:
    """One configured gate: its type, its options, and where it was written."""

    type: str
    options: Mapping[str, Any]
    where: str  # "models.churn.gates.champion[1]" - for messages
    name: str

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


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


# --------------------------------------------------------------------------- validation helpers


class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> PolicyError:
        return PolicyError(self.path, key, problem)

    def table(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a table, got {_kind(value)}")
        return value

    def only(self, table: Mapping[str, Any], key: str, allowed: set[str]) -> None:
        for k in table:
            if k not in allowed:
                hint = f"; allowed: {', '.join(sorted(allowed))}" if allowed else ""
                raise self.fail(_join(key, k), f"unknown key{hint}")

    def string(self, table: Mapping[str, Any], key: str, name: str, default: Any = None) -> Any:
        value = table.get(name, default)
        if value is default:
            return default
        if not isinstance(value, str) or not value.strip():
            raise self.fail(_join(key, name), f"must be a non-empty string, got {_kind(value)}")
        return value

    def number(
        self,
        table: Mapping[str, Any],
        key: str,
        name: str,
        default: Any = None,
        *,
        check: Callable[[float], bool] | None = None,
        rule: str = "",
    ) -> Any:
        value = table.get(name, default)
        if value is default:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(_join(key, name), f"must be a number, got {_kind(value)}")
        if not math.isfinite(value):
            raise self.fail(_join(key, name), "must be finite")
        if check is not None and not check(float(value)):
            raise self.fail(_join(key, name), f"must be {rule}, got {value}")
        return float(value)

    def integer(
        self, table: Mapping[str, Any], key: str, name: str, default: int, *, minimum: int
    ) -> int:
        value = table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(_join(key, name), f"must be an integer, got {_kind(value)}")
        if value < minimum:
            raise self.fail(_join(key, name), f"must be at least {minimum}, got {value}")
        return value

    def boolean(self, table: Mapping[str, Any], key: str, name: str, default: Any = None) -> Any:
        value = table.get(name, default)
        if value is default:
            return default
        if not isinstance(value, bool):
            raise self.fail(_join(key, name), f"must be true or false, got {_kind(value)}")
        return value

    def alias(self, value: Any, key: str) -> str:
        from mlgate.errors import UsageError
        from mlgate.registry.refs import validate_alias

        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {_kind(value)}")
        try:
            return validate_alias(value)
        except UsageError as exc:
            raise self.fail(key, exc.message) from None


def _kind(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return names.get(type(value), type(value).__name__)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


# --------------------------------------------------------------------------- gate schemas

_COMMON = {"type", "name"}


def _direction(c: _Checker, g: Mapping[str, Any], key: str, metric: str) -> None:
    gib = c.boolean(g, key, "greater_is_better")
    if gib is None and metric not in GREATER_IS_BETTER:
        raise c.fail(
            _join(key, "greater_is_better"),
            f"mlgate does not know whether higher {metric!r} is better; set true or false",
        )


def _gate_metric(c: _Checker, g: Mapping[str, Any], key: str) -> None:
    c.only(g, key, _COMMON | {"metric", "min", "max"})
    c.string(g, key, "metric") or _missing(c, key, "metric")
    lo, hi = c.number(g, key, "min"), c.number(g, key, "max")
    if lo is None and hi is None:
        raise c.fail(key, "a metric gate needs min, max or both")
    if lo is not None and hi is not None and lo > hi:
        raise c.fail(_join(key, "min"), f"min ({lo}) is greater than max ({hi}): no value can pass")


def _gate_versus(c: _Checker, g: Mapping[str, Any], key: str) -> None:
    kind = g["type"]
    amount = "tolerance" if kind == "no_regression" else "min_improvement"
    c.only(g, key, _COMMON | {"metric", amount, "relative", "greater_is_better"})
    metric = c.string(g, key, "metric") or _missing(c, key, "metric")
    if kind == "no_regression":
        c.number(g, key, amount, 0.0, check=lambda v: v >= 0, rule="zero or more")
    else:
        c.number(g, key, amount, 0.0)
    c.boolean(g, key, "relative", False)
    _direction(c, g, key, metric)


def _gate_bootstrap(c: _Checker, g: Mapping[str, Any], key: str) -> None:
    c.only(
        g,
        key,
        _COMMON
        | {"metric", "confidence", "samples", "min_improvement", "seed", "greater_is_better"},
    )
    metric = c.string(g, key, "metric") or _missing(c, key, "metric")
    c.number(g, key, "confidence", 0.95, check=lambda v: 0.5 <= v < 1, rule="in [0.5, 1)")
    c.integer(g, key, "samples", 1000, minimum=100)
    c.integer(g, key, "seed", 0, minimum=0)
    c.number(g, key, "min_improvement", 0.0)
    _direction(c, g, key, metric)


def _gate_data(c: _Checker, g: Mapping[str, Any], key: str) -> None:
    from mlgate.fingerprint import is_fingerprint

    opts = {
        "train_fingerprint",
        "eval_fingerprint",
        "train_path",
        "eval_path",
        "distinct_train_eval",
        "verify_recorded",
    }
    c.only(g, key, _COMMON | opts)
    if not any(k in g for k in opts):
        raise c.fail(key, f"a data gate needs at least one of {', '.join(sorted(opts))}")
    for name in ("train_fingerprint", "eval_fingerprint"):
        value = c.string(g, key, name)
        if value is not None and not is_fingerprint(value):
            raise c.fail(_join(key, name), "must look like blake3:<64 hex characters>")
    for name in ("train_path", "eval_path"):
        c.string(g, key, name)
    c.boolean(g, key, "distinct_train_eval")
    c.boolean(g, key, "verify_recorded")


def _gate_signature(c: _Checker, g: Mapping[str, Any], key: str) -> None:
    c.only(g, key, _COMMON | {"allow_missing"})
    c.boolean(g, key, "allow_missing", False)


def _gate_lineage(c: _Checker, g: Mapping[str, Any], key: str) -> None:
    c.only(
        g, key, _COMMON | {"require_commit", "require_clean", "verify_artifacts", "require_data"}
    )
    for name in ("require_commit", "require_clean", "verify_artifacts"):
        c.boolean(g, key, name, True)
    roles = g.get("require_data", [])
    if not isinstance(roles, list) or any(r not in ("train", "eval") for r in roles):
        raise c.fail(_join(key, "require_data"), 'must be a list of "train" and/or "eval"')


def _missing(c: _Checker, key: str, name: str) -> Any:
    raise c.fail(_join(key, name), "is required")


GATE_TYPES: dict[str, Callable[[_Checker, Mapping[str, Any], str], None]] = {
    "metric": _gate_metric,
    "no_regression": _gate_versus,
    "improvement": _gate_versus,
    "bootstrap": _gate_bootstrap,
    "data": _gate_data,
    "signature": _gate_signature,
    "lineage": _gate_lineage,
}


_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _custom_metrics(c: _Checker, raw: Any, key: str) -> dict[str, str]:
    from mlgate.promotion.measures import BUILTIN_METRICS

    table = c.table(raw, key)
    out: dict[str, str] = {}
    for name, ref in table.items():
        k = _join(key, name)
        if name in BUILTIN_METRICS:
            raise c.fail(k, f"{name!r} is a built-in metric; give the custom metric another name")
        if not isinstance(ref, str) or not _CALLABLE.match(ref):
            raise c.fail(k, f'must be "module:function", got {ref!r}')
        out[str(name)] = ref
    return out


def _gate_name(g: Mapping[str, Any]) -> str:
    if isinstance(g.get("name"), str):
        return str(g["name"])
    kind = str(g["type"])
    if "metric" in g:
        return f"{kind}:{g['metric']}"
    return kind


# --------------------------------------------------------------------------- parsing


def _model_policy(c: _Checker, name: str, raw: Any, key: str, base: Path) -> ModelPolicy:
    t = c.table(raw, key)
    c.only(t, key, {"champion_alias", "challenger_alias", "gates", "evaluation"})
    champion = c.alias(t.get("champion_alias", "champion"), _join(key, "champion_alias"))
    challenger = c.alias(t.get("challenger_alias", "challenger"), _join(key, "challenger_alias"))
    if champion == challenger:
        raise c.fail(_join(key, "challenger_alias"), "must differ from champion_alias")
    ev_raw = c.table(t.get("evaluation", {}), _join(key, "evaluation"))
    ek = _join(key, "evaluation")
    c.only(ev_raw, ek, {"data", "target", "task", "min_rows", "metrics"})
    data = c.string(ev_raw, ek, "data")
    min_rows = c.integer(ev_raw, ek, "min_rows", DEFAULT_MIN_ROWS, minimum=1)
    custom = _custom_metrics(c, ev_raw.get("metrics", {}), _join(ek, "metrics"))
    task = c.string(ev_raw, ek, "task")
    if task is not None and task not in TASKS:
        raise c.fail(_join(ek, "task"), f'must be "classification" or "regression", got {task!r}')
    target = c.string(ev_raw, ek, "target")
    if data is not None and target is None:
        raise c.fail(_join(ek, "target"), "is required when evaluation.data is set")
    if data is not None and not Path(data).is_absolute():
        data = str((base / data).resolve())
    gates_raw = c.table(t.get("gates", {}), _join(key, "gates"))
    gates: dict[str, tuple[GateSpec, ...]] = {}
    for alias, specs in gates_raw.items():
        gk = _join(_join(key, "gates"), alias)
        c.alias(alias, gk)
        if not isinstance(specs, list):
            raise c.fail(gk, f"must be an array of tables ([[{gk}]]), got {_kind(specs)}")
        out = []
        for i, g in enumerate(specs):
            ik = f"{gk}[{i}]"
            g = c.table(g, ik)
            kind = g.get("type")
            if kind not in GATE_TYPES:
                raise c.fail(
                    _join(ik, "type"),
                    f"unknown gate type {kind!r}; known: {', '.join(sorted(GATE_TYPES))}",
                )
            GATE_TYPES[kind](c, g, ik)
            if "name" in g:
                c.string(g, ik, "name")
            out.append(GateSpec(type=kind, options=dict(g), where=ik, name=_gate_name(g)))
        names = [s.name for s in out]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise c.fail(gk, f"two gates are named {sorted(dup)[0]!r}; give one a distinct name")
        gates[alias] = tuple(out)
    return ModelPolicy(
        name=name,
        champion_alias=champion,
        challenger_alias=challenger,
        gates=gates,
        evaluation=EvaluationSpec(
            data=data,
            target=target,
            task=task,
            min_rows=min_rows,
            metrics=custom,
            base_dir=str(base.resolve()),
        ),
    )


def parse_policy(data: Mapping[str, Any], path: str, *, base: Path | None = None) -> Policy:
    """Validate a policy that was already parsed from TOML (``path`` is for messages)."""
    c = _Checker(path)
    base = base or Path(path).parent
    c.only(data, "", {"ledger_experiment", "lease_ttl", "default", "models"})
    ledger = c.string(data, "", "ledger_experiment", DEFAULT_LEDGER)
    ttl = c.number(
        data,
        "",
        "lease_ttl",
        DEFAULT_LEASE_TTL,
        check=lambda v: 1 <= v <= 3600,
        rule="between 1 and 3600 seconds",
    )
    default = None
    if "default" in data:
        default = _model_policy(c, "*", data["default"], "default", base)
    models_raw = c.table(data.get("models", {}), "models")
    models = {
        name: _model_policy(c, name, raw, f"models.{_quote(name)}", base)
        for name, raw in models_raw.items()
    }
    return Policy(
        path=path, models=models, default=default, ledger_experiment=ledger, lease_ttl=ttl
    )


def _quote(name: str) -> str:
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
    try:
        return parse_policy(table, path, base=base)
    except PolicyError as exc:
        raise PolicyError(path, _join("tool.mlgate", exc.key), exc.problem) from None


def greater_is_better(spec: GateSpec) -> bool:
    """The direction of a gate's metric: the gate's setting, else mlgate's table."""
    value = spec.get("greater_is_better")
    if value is not None:
        return bool(value)
    return GREATER_IS_BETTER.get(str(spec.get("metric")), True)
