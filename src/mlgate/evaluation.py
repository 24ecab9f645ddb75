"""Like-for-like evaluation: score several model versions on the same rows.

Loads each version as an MLflow pyfunc model, predicts on the evaluation data without its target
column, and computes :mod:`mlgate.scoring` metrics. The data's fingerprint goes into the evidence,
so a report always says which rows the numbers come from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlgate._mlflow import Store, VersionRecord
from mlgate.errors import MlgateError, NotFoundError, UsageError
from mlgate.fingerprint import fingerprint

_READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".pq": "read_parquet",
            ".json": "read_json", ".jsonl": "read_json", ".feather": "read_feather"}  # fmt: skip


def load_table(path: str | os.PathLike[str]) -> Any:
    """Read a CSV, Parquet, JSON (lines) or Feather file into a DataFrame."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"evaluation data: no such file: {p}")
    reader = _READERS.get(p.suffix.lower())
    if reader is None:
        raise UsageError(f"evaluation data {p}: unsupported format {p.suffix or '(none)'}",
                         hint="use .csv, .parquet, .json/.jsonl or .feather")  # fmt: skip
    kwargs: dict[str, Any] = {"lines": True} if p.suffix.lower() == ".jsonl" else {}
    try:
        return getattr(pd, reader)(p, **kwargs)
    except (OSError, ValueError) as exc:
        raise UsageError(f"evaluation data {p}: cannot read: {exc}") from None


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

    def summary(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "rows": self.rows, "task": self.task,
                "target": self.target, "metrics": self.metrics, "errors": self.errors}  # fmt: skip


def evaluate(
    store: Store,
    versions: list[VersionRecord],
    data: Any,
    *,
    target: str | None,
    task: str | None = None,
) -> Evaluation:
    """Score every version on ``data`` (a DataFrame or a path). A version that cannot be loaded or
    fails to predict gets an entry in ``errors`` instead of metrics (the gates then fail closed).
    """
    from mlgate import scoring

    frame = load_table(data) if isinstance(data, str | os.PathLike) else data
    if not target:
        raise UsageError("evaluation needs the target column name (evaluation.target / --target)")
    if target not in frame.columns:
        raise UsageError(f"evaluation data has no target column {target!r}",
                         hint=f"columns: {', '.join(map(str, frame.columns[:20]))}")  # fmt: skip
    if len(frame) == 0:
        raise UsageError("evaluation data has no rows")
    fp = fingerprint(frame).digest
    y = np.asarray(frame[target])
    x = frame.drop(columns=[target])
    task = task or scoring.infer_task(y)
    out = Evaluation(fingerprint=fp, rows=len(frame), task=task, target=target, y_true=y)
    for v in versions:
        if v.version in out.predictions or v.version in out.errors:
            continue
        try:
            model = store.load_pyfunc(f"models:/{v.name}/{v.version}")
            pred = np.asarray(model.predict(x))
            if pred.ndim > 1:
                pred = pred[:, 0] if pred.shape[1] == 1 else pred.argmax(axis=1)
            if len(pred) != len(y):
                raise UsageError(f"returned {len(pred)} predictions for {len(y)} rows")
            out.predictions[v.version] = pred
            out.metrics[v.version] = scoring.compute(task, y, pred)
        except MlgateError as exc:
            out.errors[v.version] = str(exc)
        except Exception as exc:  # noqa: BLE001 - a model's own predict() may raise anything
            out.errors[v.version] = f"predict failed: {type(exc).__name__}: {exc}"
    return out
