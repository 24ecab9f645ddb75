"""Like-for-like evaluation: score several model versions on the same rows.

Loads each version once (downloaded once, shared with the other evidence that needs the files),
predicts on the evaluation data without its target column, and computes
:mod:`mlgate.promotion.measures` metrics: label metrics from the pyfunc model's ``predict``,
probability metrics from the scikit-learn estimator's own ``predict_proba``, and the policy's
custom metrics. The data's fingerprint goes into the evidence, so a report always says which
rows the numbers come from.

The task (classification or regression) is the policy's ``task``; else what the estimators
say (``is_classifier`` / ``is_regressor``); else what the target alone settles (strings are
classes, fractional numbers are a regression target). Integer targets of a model that is not a
scikit-learn estimator settle nothing, and mlgate refuses rather than guess.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlgate.errors import MlgateError, NotFoundError, PolicyError, UsageError
from mlgate.fingerprint import fingerprint, fingerprint_model_artifacts
from mlgate.promotion.measures import PROBABILITY
from mlgate.registry.store import Store, VersionRecord

_READERS = {
    ".csv": "read_csv",
    ".parquet": "read_parquet",
    ".pq": "read_parquet",
    ".json": "read_json",
    ".jsonl": "read_json",
    ".feather": "read_feather",
}
#: Formats that store no column types: read with the types recorded for the frame.
_UNTYPED = {".csv", ".json", ".jsonl"}


def load_table(path: str | os.PathLike[str]) -> Any:
    """Read a CSV, Parquet, JSON (lines) or Feather file into a DataFrame."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"evaluation data: no such file: {p}")
    reader = _READERS.get(p.suffix.lower())
    if reader is None:
        raise UsageError(
            f"evaluation data {p}: unsupported format {p.suffix or '(none)'}",
            hint="use .csv, .parquet, .json/.jsonl or .feather",
        )
    kwargs: dict[str, Any] = {"lines": True} if p.suffix.lower() == ".jsonl" else {}
    try:
        return getattr(pd, reader)(p, **kwargs)
    except (OSError, ValueError) as exc:
        raise UsageError(f"evaluation data {p}: cannot read: {exc}") from None


def read_frame(path: str | os.PathLike[str], schema: Sequence[Sequence[str]] | None) -> Any:
    """Read a data file into the DataFrame it holds, to compare with a frame fingerprint.

    Typed formats (Parquet, Feather) are read as they are: their column types are part of the
    content. CSV and JSON store no types, so each column is parsed as the type recorded with the
    frame's fingerprint (``schema``: ``(name, dtype)`` pairs); a value that does not parse as
    that type is an error, never coerced. pandas writes floats to CSV in their shortest exact form
    and parses them back exactly, so a frame written with ``to_csv`` reads back bit for bit.
    """
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"no such file: {p}")
    suffix = p.suffix.lower()
    if suffix not in _READERS:
        raise UsageError(
            f"{p}: cannot read a {suffix or 'suffix-less'} file as a table",
            hint="use .csv, .parquet, .json/.jsonl or .feather",
        )
    try:
        if suffix not in _UNTYPED:
            return getattr(pd, _READERS[suffix])(p)
        dtypes = {str(n): str(t) for n, t in schema or ()}
        dates = [n for n, t in dtypes.items() if t.startswith("datetime64")]
        plain = {n: t for n, t in dtypes.items() if n not in dates}
        frame: Any
        if suffix == ".csv":
            frame = pd.read_csv(p, dtype=plain or None, parse_dates=dates or False)
        else:
            frame = pd.read_json(
                p, lines=suffix == ".jsonl", dtype=plain or True, convert_dates=dates or False
            )
        for n in dates:
            if n in frame.columns:
                frame[n] = frame[n].astype(dtypes[n])
        return frame
    except (OSError, ValueError, TypeError) as exc:
        how = " with the recorded column types" if schema and suffix in _UNTYPED else ""
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"cannot read {p}{how}: {first}") from None


class ModelFiles:
    """Each version's artifacts, downloaded at most once per check and removed afterwards.

    Evaluation loads the model from them, the lineage gate hashes them, the signature gate
    reads their MLmodel: one download serves all three.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._dirs: dict[str, str] = {}
        self._digests: dict[str, str] = {}

    def has(self, v: VersionRecord) -> bool:
        return v.ref in self._dirs

    def path(self, v: VersionRecord) -> str:
        if v.ref not in self._dirs:
            self._dirs[v.ref] = self.store.download(f"models:/{v.name}/{v.version}")
        return self._dirs[v.ref]

    def digest(self, v: VersionRecord) -> str:
        """The digest of the version's artifacts as downloaded (hashed once per check)."""
        if v.ref not in self._digests:
            self._digests[v.ref] = fingerprint_model_artifacts(self.path(v)).digest
        return self._digests[v.ref]

    def cleanup(self) -> None:
        for path in self._dirs.values():
            shutil.rmtree(path, ignore_errors=True)
        self._dirs.clear()
        self._digests.clear()


@dataclass
class Evaluation:
    """Predictions and metrics of each version on one evaluation set."""

    fingerprint: str
    rows: int
    task: str
    target: str
    y_true: np.ndarray
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    task_source: str = "policy"
    min_rows: int = 30
    #: version -> metric -> why it has no evaluated value
    unevaluated: dict[str, dict[str, str]] = field(default_factory=dict)
    #: version -> pinned requirements this environment does not match
    requirement_mismatches: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        out = {
            "fingerprint": self.fingerprint,
            "rows": self.rows,
            "task": self.task,
            "task_source": self.task_source,
            "target": self.target,
            "min_rows": self.min_rows,
            "metrics": self.metrics,
            "errors": self.errors,
        }
        if any(self.unevaluated.values()):
            out["unevaluated"] = {k: v for k, v in self.unevaluated.items() if v}
        if any(self.requirement_mismatches.values()):
            out["requirement_mismatches"] = {
                k: v for k, v in self.requirement_mismatches.items() if v
            }
        return out


def load_metric(name: str, ref: str, base_dir: str | None = None) -> Callable[..., Any]:
    """Import a custom metric ``module:function`` (the policy file's directory searched first)."""
    module_name, _, func_name = ref.partition(":")
    added = bool(base_dir) and base_dir not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(
            f"evaluation.metrics.{name}: cannot import {module_name!r}: {exc}",
            hint="put the module next to the policy file or install it in this environment",
        ) from None
    finally:
        if added:
            sys.path.remove(str(base_dir))
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise UsageError(f"evaluation.metrics.{name}: {module_name} has no function {func_name!r}")
    return fn  # type: ignore[no-any-return]


def _wants_proba(fn: Callable[..., Any]) -> tuple[bool, bool]:
    """(takes a third argument, requires it)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False, False
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return True, False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 3:
        return False, False
    return True, positional[2].default is inspect.Parameter.empty


def _custom_value(
    name: str, fn: Callable[..., Any], y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None
) -> tuple[float | None, str | None]:
    takes, needs = _wants_proba(fn)
    if needs and proba is None:
        return None, f"{name} needs y_proba, and this model has no predict_proba to give it"
    try:
        raw = fn(y, pred, proba) if takes and proba is not None else fn(y, pred)
        value = float(raw)
    except Exception as exc:  # noqa: BLE001 - a user's metric may raise anything
        return None, f"{name} raised {type(exc).__name__}: {exc}"
    if not np.isfinite(value):
        return None, f"{name} returned {value}"
    return value, None


def _estimator_task(estimator: Any) -> str | None:
    if estimator is None:
        return None
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        return "classification"
    if is_regressor(estimator):
        return "regression"
    return None


def _decide_task(
    task: str | None, y: np.ndarray, target: str, model: str, kinds: Mapping[str, str | None]
) -> tuple[str, str]:
    """(task, how it was decided)."""
    from mlgate.promotion import measures as scoring

    known = {v: k for v, k in kinds.items() if k}
    if task:
        # The policy may settle what the estimator cannot say, never contradict what it says:
        # a regressor scored for accuracy would compare floats for equality.
        wrong = {v: k for v, k in known.items() if k != task}
        if wrong:
            described = ", ".join(f"version {v} is a {k} model" for v, k in wrong.items())
            raise UsageError(
                f"the policy says task = {task!r}, but {described}",
                hint="fix evaluation.task in the policy (or remove it: mlgate reads the task "
                "from the estimator)",
            )
        return task, "policy"
    if len(set(known.values())) > 1:
        described = ", ".join(f"version {v} is a {k} model" for v, k in known.items())
        raise UsageError(
            f"{described}: they do not solve the same task, so mlgate will not compare them"
        )
    if known:
        return next(iter(known.values())), "estimator"
    from_target = scoring.task_from_target(y)
    if from_target:
        return from_target, "target"
    if not kinds:  # nothing loaded: the load errors are the story, not the task
        return "unknown", "none"
    raise UsageError(
        f"cannot tell whether {model} is a classification or a regression model: target "
        f"{target!r} holds integers and the model does not say (it is not a scikit-learn "
        "classifier or regressor)",
        hint='set task = "classification" or "regression" in the policy\'s evaluation section',
    )


def evaluate(
    store: Store,
    versions: list[VersionRecord],
    data: Any,
    *,
    target: str | None,
    task: str | None = None,
    min_rows: int = 30,
    metrics: Mapping[str, str] | None = None,
    base_dir: str | None = None,
    files: ModelFiles | None = None,
    needed: set[str] | None = None,
    target_origin: tuple[str, str] | None = None,
) -> Evaluation:
    """Score every version on ``data`` (a DataFrame or a path). A version that cannot be loaded or
    fails to predict gets an entry in ``errors`` instead of metrics (the gates then fail closed).

    Label metrics are always computed. Probability metrics (another pass of the model, through
    ``predict_proba``) and custom metrics only when named in ``needed`` (None: all of them).

    Raises:
        UsageError: no target column (a PolicyError naming ``target_origin``, the policy file
            and key, when given), no rows, missing target values, a custom metric that
            cannot be imported, or a task mlgate cannot tell (set ``task``).
    """
    frame = load_table(data) if isinstance(data, str | os.PathLike) else data
    if not target:
        raise UsageError("evaluation needs the target column name (evaluation.target / --target)")
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns[:20]))
        if len(frame.columns) > 20:
            columns += f", … ({len(frame.columns)} columns)"
        if target_origin is not None:  # the policy named it: say where
            path, key = target_origin
            where = f" of {data}" if isinstance(data, str | os.PathLike) else ""
            raise PolicyError(
                path, f"{key}.target", f"{target!r} is not a column{where} (columns: {columns})"
            )
        raise UsageError(
            f"evaluation data has no target column {target!r}", hint=f"columns: {columns}"
        )
    if len(frame) == 0:
        raise UsageError("evaluation data has no rows")
    missing = int(frame[target].isna().sum())
    if missing:
        raise UsageError(
            f"evaluation data: target column {target!r} has {missing} missing value"
            f"{'s' if missing != 1 else ''}",
            hint="drop or fill those rows in the evaluation file",
        )
    custom = {
        name: load_metric(name, ref, base_dir)
        for name, ref in (metrics or {}).items()
        if needed is None or name in needed
    }
    want_proba = needed is None or bool(custom) or any(m in needed for m in PROBABILITY)
    fp = fingerprint(frame).digest
    y = np.asarray(frame[target])
    x = frame.drop(columns=[target])

    own_files = files is None
    files = files or ModelFiles(store)
    try:
        return _score(files, versions, x, y, fp, target, task, min_rows, custom, want_proba)
    finally:
        # Some flavors read their files while predicting: remove them only afterwards.
        if own_files:
            files.cleanup()


@dataclass
class _Scored:
    """What running (or recalling) each version gave, before the task is decided."""

    done: dict[str, Any] = field(default_factory=dict)  # version -> Outputs
    kinds: dict[str, str | None] = field(default_factory=dict)  # every version that loaded
    load_errors: dict[str, str] = field(default_factory=dict)
    predict_errors: dict[str, str] = field(default_factory=dict)
    mismatches: dict[str, list[str]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # version -> its outputs' cache key


class _MissingInputs(UsageError):
    """Evaluation data lacks a column a version's signature requires: one error for the whole
    check, said once (each gate would otherwise fail on the same missing column)."""


class _PredictError(Exception):
    """A model loaded but its ``predict`` failed (the message is the evidence's error)."""

    def __init__(self, message: str, task: str | None) -> None:
        super().__init__(message)
        self.task = task


def _outputs(
    files: ModelFiles,
    versions: list[VersionRecord],
    x: Any,
    rows: int,
    fp: str,
    target: str,
    want_proba: bool,
) -> _Scored:
    """Each version's :class:`~mlgate.promotion.outputs.Outputs` on ``x``: from the outputs
    cache, else by loading and running the model (and then cached)."""
    from mlgate.promotion import outputs as cache
    from mlgate.registry.pyfunc import requirement_mismatches

    got = _Scored()
    for v in versions:
        if v.version in got.kinds or v.version in got.load_errors:
            continue
        try:
            path = files.path(v)
            got.mismatches[v.version] = requirement_mismatches(path)
            k = cache.key(files.digest(v), fp, target, path) if cache.enabled() else None
            if k:
                got.keys[v.version] = k
            hit = cache.get(k, rows, want_proba) if k else None
            if hit is None:
                hit = _run(path, x, rows, want_proba, v.version)
                if k:
                    cache.put(k, hit)
            got.done[v.version] = hit
            got.kinds[v.version] = hit.task
        except _MissingInputs:
            raise
        except _PredictError as exc:
            got.kinds[v.version] = exc.task
            got.predict_errors[v.version] = str(exc)
        except MlgateError as exc:
            got.load_errors[v.version] = str(exc)
        except Exception as exc:  # noqa: BLE001 - a flavor's loader may raise anything
            got.load_errors[v.version] = f"load failed: {type(exc).__name__}: {exc}"
    return got


def _run(path: str, x: Any, rows: int, want_proba: bool, version: str) -> Any:
    """Load the model in ``path`` and run it on ``x``: its Outputs.

    Probabilities are asked for when wanted, unless the estimator is a regressor (then the
    task is regression, or the check stops at the task conflict).
    """
    from mlgate.promotion.outputs import Outputs
    from mlgate.registry.pyfunc import load_for_evaluation, missing_inputs, schema_cause

    model, estimator = load_for_evaluation(path)
    lacking = missing_inputs(model, x.columns)
    if lacking:
        raise _MissingInputs(
            f"evaluation data is missing model inputs {lacking} (version {version}'s signature)",
            hint="evaluate on data with every input column the model takes",
        )
    task = _estimator_task(estimator)
    try:
        pred = np.asarray(model.predict(x))
        if pred.ndim > 1:
            pred = pred[:, 0] if pred.shape[1] == 1 else pred.argmax(axis=1)
        if len(pred) != rows:
            raise UsageError(f"returned {len(pred)} predictions for {rows} rows")
    except MlgateError as exc:
        raise _PredictError(str(exc), task) from None
    except Exception as exc:  # noqa: BLE001 - a model's own predict() may raise anything
        # one line, without MLflow's printout of the frame it refused
        cause = schema_cause(str(exc))
        raise _PredictError(f"predict failed: {type(exc).__name__}: {cause}", task) from None
    if not want_proba or task == "regression":
        return Outputs(task=task, pred=pred, proba_tried=want_proba)
    proba, classes, reason = _probabilities(estimator, x)
    return Outputs(task, pred, proba, classes, proba_tried=True, proba_reason=reason)


def _score(
    files: ModelFiles,
    versions: list[VersionRecord],
    x: Any,
    y: np.ndarray,
    fp: str,
    target: str,
    task: str | None,
    min_rows: int,
    custom: Mapping[str, Callable[..., Any]],
    want_proba: bool,
) -> Evaluation:
    scored = _outputs(files, versions, x, len(y), fp, target, want_proba)
    model = versions[0].name if versions else "?"
    task, how = _decide_task(task, y, target, model, scored.kinds)
    out = Evaluation(
        fingerprint=fp,
        rows=len(y),
        task=task,
        target=target,
        y_true=y,
        errors=scored.load_errors,
        task_source=how,
        min_rows=min_rows,
        requirement_mismatches=scored.mismatches,
    )
    for ver in scored.kinds:
        if ver in scored.predict_errors:
            out.errors[ver] = scored.predict_errors[ver]
            continue
        got = scored.done[ver]
        pred = got.pred
        try:
            values, why, proba = _builtin_metrics(task, y, got, want_proba, scored.keys.get(ver))
        except MlgateError as exc:
            out.errors[ver] = str(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - metrics of what a model returned may raise
            out.errors[ver] = f"predict failed: {type(exc).__name__}: {exc}"
            continue
        for name, fn in custom.items():
            value, problem = _custom_value(name, fn, y, pred, proba)
            if value is None:
                why[name] = str(problem)
            else:
                values[name] = value
        out.predictions[ver] = pred
        out.metrics[ver] = values
        out.unevaluated[ver] = why
    return out


def _builtin_metrics(
    task: str, y: np.ndarray, got: Any, want_proba: bool, key: str | None
) -> tuple[dict[str, float], dict[str, str], np.ndarray | None]:
    """(metric values, why a metric has no value, the probabilities custom metrics get).

    Label metrics, and probability metrics when wanted, from the outputs cache when it has
    them for these outputs and ``task``; else computed (and kept).
    """
    from mlgate.promotion import measures as scoring
    from mlgate.promotion import outputs as cache

    memo = cache.get_metrics(key, task)
    fresh = False
    if memo.get("label") is None:
        memo["label"], fresh = scoring.compute(task, y, got.pred), True
    values: dict[str, float] = dict(memo["label"])
    why: dict[str, str] = {}
    proba = None
    if task == "classification" and not want_proba:
        why.update(dict.fromkeys(scoring.PROBABILITY, "not needed by any gate of this check"))
    elif task == "classification":
        proba = got.proba
        if proba is None:
            why.update(dict.fromkeys(scoring.PROBABILITY, got.proba_reason))
        else:
            if memo.get("proba") is None:
                memo["proba"], fresh = list(scoring.compute_proba(y, proba, got.classes)), True
            more, unscored = memo["proba"]
            values.update(more)
            why.update(unscored)
    else:
        why.update(
            dict.fromkeys(scoring.PROBABILITY, "a probability metric; this is a regression task")
        )
    if fresh:
        cache.put_metrics(key, task, memo)
    return values, why, proba


def _probabilities(estimator: Any, x: Any) -> tuple[np.ndarray | None, Any, str]:
    """The estimator's own class probabilities on ``x``, or (None, None, why not)."""
    if estimator is None:
        return None, None, "no predict_proba: the model is not a scikit-learn estimator"
    if not hasattr(estimator, "predict_proba") or not hasattr(estimator, "classes_"):
        return None, None, f"{type(estimator).__name__} has no predict_proba"
    names = getattr(estimator, "feature_names_in_", None)
    try:
        rows = x[list(names)] if names is not None else x
        return np.asarray(estimator.predict_proba(rows)), np.asarray(estimator.classes_), ""
    except Exception as exc:  # noqa: BLE001 - the estimator's own method may raise anything
        return None, None, f"predict_proba failed: {type(exc).__name__}: {exc}"
