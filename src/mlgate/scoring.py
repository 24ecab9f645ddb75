"""Metrics on arrays, and the paired bootstrap. Pure: arrays in, numbers out.

Classification: accuracy, balanced_accuracy, f1_macro, precision_macro, recall_macro,
error_rate. Regression: rmse, mse, mae, r2, median_absolute_error.
"""

from __future__ import annotations

import contextlib
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


def metrics_for(task: str) -> dict[str, Metric]:
    return CLASSIFICATION if task == "classification" else REGRESSION


def infer_task(y: np.ndarray) -> str:
    """Classification for labels (bool, integer, string, few distinct values), else regression."""
    if y.dtype.kind in "bOUS":
        return "classification"
    if y.dtype.kind in "iu":
        return (
            "classification" if len(np.unique(y)) <= max(20, int(len(y) ** 0.5)) else "regression"
        )
    return "regression"


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
