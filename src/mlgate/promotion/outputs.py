"""A model version's outputs on evaluation data, cached by everything that determines them.

A check scores candidate and champion on the same rows. Loading a model costs more than all the
rest of a check (a scikit-learn model in MLflow's default skops format imports every estimator
module of scikit-learn: ~1.7 s, measured), and the same version is scored on the same data again
and again: the champion at every check against it, a candidate at ``check`` and then at
``promote``, every CI rerun. So what a model *returned* is kept, keyed by what determines it:

* the digest of the model's artifacts as downloaded for this check (never the digest recorded at
  registration: files changed on the server are a new key, and the lineage gate reports them),
* the fingerprint of the evaluation frame and the target column's name (together: the rows the
  model was given),
* the environment that ran it: Python's version, the machine, mlgate's version, and the installed
  version of every package the model's ``requirements.txt`` names plus the scientific stack
  (numpy, pandas, scikit-learn, scipy, pyarrow, MLflow, skops, cloudpickle).

Only outputs are kept (predictions, class probabilities, the estimator's task); metrics, custom
metrics and gates are computed afresh each time from them. A failed load or predict is never
kept. Entries are ``.npz`` files read without pickle, under ``$MLGATE_CACHE_DIR/outputs``;
``MLGATE_OUTPUTS_CACHE=0`` turns the cache off. The cache assumes what MLflow serving assumes: a
model's predictions are a function of its artifacts, its input and its packages (a model that
reads code or files from outside its artifacts, or draws random numbers, should turn it off).
Any problem reading or writing the cache is a miss, never an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from mlgate import config
from mlgate._version import __version__

#: Changing what is stored or how the key is made: bump, and old entries are never read.
FORMAT = "mlgate-outputs/1"
ENV = "MLGATE_OUTPUTS_CACHE"
#: Packages whose version is in every key, whatever the model's requirements name.
STACK = (
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "pyarrow",
    "mlflow",
    "mlflow-skinny",
    "skops",
    "cloudpickle",
)
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class Outputs:
    """What one model version returned on one evaluation frame.

    Attributes:
        task: ``classification``/``regression`` as the estimator says, None when it says
            nothing (not a scikit-learn estimator).
        pred: the predictions, one per row (a 2-D answer already reduced to labels).
        proba: the estimator's class probabilities, when asked for and available.
        classes: the estimator's ``classes_`` (with ``proba``).
        proba_tried: whether probabilities were asked for at all.
        proba_reason: why ``proba`` is None after being asked for ("" when it is not).
    """

    task: str | None
    pred: np.ndarray
    proba: np.ndarray | None = None
    classes: np.ndarray | None = None
    proba_tried: bool = False
    proba_reason: str = ""


def enabled() -> bool:
    """False when ``MLGATE_OUTPUTS_CACHE`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def environment(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The interpreter and the installed versions of the packages a model's outputs depend on."""
    from mlgate.registry.pyfunc import canonical_name, installed_version

    names = set(STACK)
    with contextlib.suppress(OSError, UnicodeDecodeError):
        text = (Path(model_dir) / "requirements.txt").read_text(encoding="utf-8")
        for line in text.splitlines():
            m = _REQUIREMENT.match(line)
            if m:
                names.add(m.group(1))
    canonical = sorted({canonical_name(n) for n in names})
    return {
        "python": sys.version,
        "machine": f"{sys.platform}/{platform.machine()}",
        "mlgate": __version__,
        "packages": {n: installed_version(n) or "-" for n in canonical},
    }


def key(artifact_digest: str, frame_fingerprint: str, target: str, model_dir: str) -> str:
    """The cache key of one version's outputs on one frame (hex)."""
    import blake3

    parts = {
        "format": FORMAT,
        "artifacts": artifact_digest,
        "data": frame_fingerprint,
        "target": target,
        "environment": environment(model_dir),
    }
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return str(blake3.blake3(text.encode()).hexdigest())


def _path(k: str) -> Path:
    return config.cache_dir() / "outputs" / k[:2] / f"{k}.npz"


def _storable(a: np.ndarray | None) -> bool:
    # Numbers and booleans only: object arrays would need pickle to read back.
    return a is None or a.dtype.kind in "biuf"


def get(k: str, rows: int, want_proba: bool) -> Outputs | None:
    """The outputs stored under ``k``, or None (absent, unreadable, or without probabilities
    that are now wanted)."""
    if not enabled():
        return None
    try:
        with np.load(_path(k), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT or (want_proba and not meta["proba_tried"]):
                return None
            out = Outputs(
                task=meta["task"],
                pred=z["pred"],
                proba=z["proba"] if "proba" in z.files else None,
                classes=z["classes"] if "classes" in z.files else None,
                proba_tried=bool(meta["proba_tried"]),
                proba_reason=str(meta["proba_reason"]),
            )
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    return out if len(out.pred) == rows else None


def put(k: str, out: Outputs) -> None:
    """Store ``out`` under ``k`` (atomically); outputs that need pickle are not stored."""
    if not enabled() or not all(map(_storable, (out.pred, out.proba, out.classes))):
        return
    meta = {
        "format": FORMAT,
        "task": out.task,
        "proba_tried": out.proba_tried,
        "proba_reason": out.proba_reason,
    }
    arrays: dict[str, Any] = {"meta": np.array(json.dumps(meta)), "pred": out.pred}
    if out.proba is not None and out.classes is not None:
        arrays["proba"], arrays["classes"] = out.proba, out.classes
    _write(_path(k), lambda fh: np.savez(fh, **arrays))


def _write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write a file atomically (a reader sees the old one or the whole new one); any failure
    leaves nothing behind and is ignored."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            Path(tmp).replace(path)
        except BaseException:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
            raise
    except (OSError, ValueError, TypeError):
        return


def _metrics_path(k: str, task: str) -> Path:
    return _path(k).with_suffix(f".{task}.json")


def get_metrics(k: str | None, task: str) -> dict[str, Any]:
    """The built-in metrics stored for the outputs under ``k`` scored as ``task`` ({} if none).

    They are a function of the outputs, the target values (both fixed by ``k``) and the task:
    keeping them spares importing scikit-learn's metrics (about half a second) on a hit.
    """
    if not k or not enabled():
        return {}
    try:
        data = json.loads(_metrics_path(k, task).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("format") == FORMAT else {}


def put_metrics(k: str | None, task: str, data: dict[str, Any]) -> None:
    """Store the built-in metrics of the outputs under ``k`` scored as ``task``."""
    if not k or not enabled():
        return
    text = json.dumps({**data, "format": FORMAT}).encode()
    _write(_metrics_path(k, task), lambda fh: fh.write(text))
