"""Metrics on arrays, and the paired bootstrap. Pure: arrays in, numbers out.

Classification: accuracy, balanced_accuracy, f1_macro, precision_macro, recall_macro,
error_rate; from ``predict_proba``: roc_auc, log_loss, average_precision, brier_score.
Regression: rmse, mse, mae, r2, median_absolute_error.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray], float]


def _sk(name: str, **kwargs: Any) -> Metric:
    def fn(y: np.ndarray, p: np.ndarray) -> float:
        import sklearn.metrics as skm

        return float(getattr(skm, name)(y, p, **kwargs))

    fn.__name__ = name
    return fn


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(y == p))


def _mse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((y.astype(float) - p.astype(float)) ** 2))


CLASSIFICATION: dict[str, Metric] = {
    "accuracy": _accuracy,
    "error_rate": lambda y, p: 1.0 - _accuracy(y, p),
    "balanced_accuracy": _sk("balanced_accuracy_score"),
    "f1_macro": _sk("f1_score", average="macro", zero_division=0),
    "precision_macro": _sk("precision_score", average="macro", zero_division=0),
    "recall_macro": _sk("recall_score", average="macro", zero_division=0),
}

REGRESSION: dict[str, Metric] = {
    "rmse": lambda y, p: float(np.sqrt(_mse(y, p))),
    "mse": _mse,
    "mae": lambda y, p: float(np.mean(np.abs(y.astype(float) - p.astype(float)))),
    "r2": _sk("r2_score"),
    "median_absolute_error": _sk("median_absolute_error"),
}


#: Classification metrics computed from the model's class probabilities (``predict_proba``).
PROBABILITY = ("roc_auc", "log_loss", "average_precision", "brier_score")

BUILTIN_METRICS = frozenset(CLASSIFICATION) | frozenset(REGRESSION) | frozenset(PROBABILITY)


def metrics_for(task: str) -> dict[str, Metric]:
    """The label metrics of ``task`` (the ones a paired bootstrap can resample)."""
    return CLASSIFICATION if task == "classification" else REGRESSION


def task_from_target(y: np.ndarray) -> str | None:
    """The task when the target alone settles it, else None.

    Labels that are not numbers (strings, booleans) can only be classes, and numbers with a
    fractional part can only be a regression target. Integers can be either (counts, prices in
    cents, or class ids), so they settle nothing.
    """
    if y.dtype.kind in "bOUST":
        return "classification"
    if y.dtype.kind == "f" and len(y) and not np.all(np.mod(y, 1) == 0):
        return "regression"
    return None


def compute_proba(
    y: np.ndarray, proba: np.ndarray, classes: np.ndarray
) -> tuple[dict[str, float], dict[str, str]]:
    """The probability metrics, and why any of them could not be computed.

    ``proba`` has one column per entry of ``classes`` (the estimator's ``classes_`` order). For
    two classes the positive class is ``classes[1]``, as in scikit-learn; with more, roc_auc is
    one-vs-rest and average_precision the macro average.
    """
    import sklearn.metrics as skm
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.preprocessing import label_binarize

    values: dict[str, float] = {}
    why: dict[str, str] = {}
    classes = np.asarray(classes)
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        reason = f"predict_proba returned shape {proba.shape} for {len(classes)} classes"
        return values, dict.fromkeys(PROBABILITY, reason)
    unknown = sorted(map(str, set(np.unique(y).tolist()) - set(classes.tolist())))
    if unknown:
        reason = (
            f"evaluation labels {', '.join(unknown[:5])} are not among the model's classes "
            f"({', '.join(map(str, classes.tolist()[:10]))})"
        )
        return values, dict.fromkeys(PROBABILITY, reason)
    if len(classes) == 2:
        pos = proba[:, 1]
        yb = (y == classes[1]).astype(int)
        fns: dict[str, Callable[[], float]] = {
            "roc_auc": lambda: skm.roc_auc_score(yb, pos),
            "log_loss": lambda: skm.log_loss(y, proba, labels=classes),
            "average_precision": lambda: skm.average_precision_score(yb, pos),
            "brier_score": lambda: skm.brier_score_loss(yb, pos),
        }
    else:
        onehot = label_binarize(y, classes=classes)
        fns = {
            "roc_auc": lambda: skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes),
            "log_loss": lambda: skm.log_loss(y, proba, labels=classes),
            "average_precision": lambda: skm.average_precision_score(onehot, proba),
            "brier_score": lambda: float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
        }
    for name, fn in fns.items():
        try:
            with warnings.catch_warnings():
                # An undefined metric (no positive row) is a reason, not a number to gate on.
                warnings.simplefilter("error", category=UndefinedMetricWarning)
                value = float(fn())
        except (ValueError, TypeError, UndefinedMetricWarning) as exc:
            why[name] = f"{name} cannot be computed: {(str(exc).splitlines() or [''])[0]}"
            continue
        if math.isfinite(value):
            values[name] = value
        else:
            why[name] = f"{name} is {value} on these rows"
    return values, why


def compute(task: str, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Every metric mlgate knows for ``task``."""
    if task == "classification" and y.dtype.kind != p.dtype.kind:
        # A model may answer with floats (1.0) for integer labels (1): compare as the label type.
        with contextlib.suppress(TypeError, ValueError):
            p = p.astype(y.dtype)
    return {name: fn(y, p) for name, fn in metrics_for(task).items()}


@dataclass(frozen=True)
class BootstrapResult:
    """Improvement of candidate over baseline (positive = better), with its interval."""

    metric: str
    observed: float
    lower: float
    upper: float
    confidence: float
    samples: int
    rows: int


def paired_bootstrap(
    task: str,
    metric: str,
    y: np.ndarray,
    candidate: np.ndarray,
    baseline: np.ndarray,
    *,
    greater_is_better: bool,
    confidence: float = 0.95,
    samples: int = 1000,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile interval of ``metric(candidate) - metric(baseline)`` over resampled rows.

    Both models are scored on the *same* resampled rows each time (paired), so the interval is
    about the difference, not two independent noisy estimates. The sign is oriented so that a
    positive improvement is better whichever way the metric points.
    """
    fn = metrics_for(task)[metric]
    n = len(y)
    if n == 0:
        raise ValueError("no rows to resample")
    sign = 1.0 if greater_is_better else -1.0
    observed = sign * (fn(y, candidate) - fn(y, baseline))
    rng = np.random.default_rng(seed)
    diffs = np.empty(samples)
    fast = _fast_rowwise(metric, y, candidate, baseline)
    batch = max(1, min(samples, 4_000_000 // max(n, 1)))
    done = 0
    while done < samples:
        k = min(batch, samples - done)
        idx = rng.integers(0, n, size=(k, n))
        if fast is not None:
            a, b, finish = fast
            diffs[done : done + k] = sign * (
                finish(a[idx].mean(axis=1)) - finish(b[idx].mean(axis=1))
            )
        else:
            for j in range(k):
                rows = idx[j]
                diffs[done + j] = sign * (
                    fn(y[rows], candidate[rows]) - fn(y[rows], baseline[rows])
                )
        done += k
    alpha = 1.0 - confidence
    lower, upper = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(
        metric=metric,
        observed=float(observed),
        lower=float(lower),
        upper=float(upper),
        confidence=confidence,
        samples=samples,
        rows=n,
    )


def _fast_rowwise(
    metric: str, y: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]] | None:
    """Metrics that are a function of a per-row mean resample as a vectorised gather."""
    ident: Callable[[np.ndarray], np.ndarray] = lambda m: m  # noqa: E731
    if metric == "accuracy":
        return (y == a).astype(float), (y == b).astype(float), ident
    if metric == "error_rate":
        return (y != a).astype(float), (y != b).astype(float), ident
    yf = y.astype(float)
    if metric == "mse":
        return (yf - a.astype(float)) ** 2, (yf - b.astype(float)) ** 2, ident
    if metric == "rmse":
        return (yf - a.astype(float)) ** 2, (yf - b.astype(float)) ** 2, np.sqrt
    if metric == "mae":
        return np.abs(yf - a.astype(float)), np.abs(yf - b.astype(float)), ident
    return None
