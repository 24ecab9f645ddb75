"""Per-version serving counters, rendered in Prometheus' text format (``/metrics``) and read back.

Counters live outside the serving state, so they survive version swaps; each series carries the
``model`` and ``version`` labels (and ``role``: champion/challenger at the time of the request).
Every request updates them once, on the event loop (:meth:`Telemetry.request`), so the hot path
is a few dictionary updates; the text is only built when ``/metrics`` is read.

With several workers (:mod:`mlgate.serving.workers`) each process counts its own requests;
:meth:`Telemetry.snapshot` is what a worker shares and :attr:`Telemetry.workers` gives every
worker's, which :meth:`Telemetry.render` sums, so that one scrape is the whole server.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_CLASSES = 50
OTHER_CLASS = "__other__"


class VersionCounters:
    """What one version has answered."""

    __slots__ = (
        "buckets",
        "classes",
        "errors",
        "latency_sum",
        "requests",
        "value_count",
        "value_sum",
    )

    def __init__(self) -> None:
        self.requests: dict[str, int] = defaultdict(int)  # by role
        self.errors: dict[str, int] = defaultdict(int)  # by status code
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.latency_sum = 0.0
        self.classes: dict[str, int] = {}
        self.value_sum = 0.0
        self.value_count = 0

    def count_predictions(self, predictions: Any) -> None:
        """Classes (labels) or the sum of numeric values of one response's predictions."""
        values = predictions if type(predictions) is np.ndarray else _array(predictions)
        if values is None or values.ndim != 1 or values.size == 0:
            return
        kind = values.dtype.kind
        if kind == "f" and values.size <= 32:  # small responses: Python's sum beats NumPy's
            total = sum(values.tolist())
            if math.isfinite(total):
                self.value_sum += total
                self.value_count += values.size
                return
        if kind in "fc":
            finite = values[np.isfinite(values)]
            self.value_sum += float(finite.sum())
            self.value_count += int(finite.size)
            return
        classes = self.classes
        if values.size <= 32:  # small responses: a loop beats np.unique's sort
            for value in values.tolist():
                label = str(value)
                count = classes.get(label)
                if count is not None:
                    classes[label] = count + 1
                elif len(classes) < MAX_CLASSES:
                    classes[label] = 1
                else:
                    classes[OTHER_CLASS] = classes.get(OTHER_CLASS, 0) + 1
            return
        labels, counts = np.unique(values.astype(str), return_counts=True)
        for label, n in zip(labels.tolist(), counts.tolist(), strict=True):
            key = label if label in classes or len(classes) < MAX_CLASSES else OTHER_CLASS
            classes[key] = classes.get(key, 0) + int(n)


def _array(predictions: Any) -> Any:
    try:
        return np.asarray(predictions)
    except (ValueError, TypeError):
        return None


class Telemetry:
    """Thread-safe counters for every version this process has served, for one model."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._lock = threading.Lock()
        self._versions: dict[str, VersionCounters] = defaultdict(VersionCounters)
        self.shadow_requests: dict[str, int] = defaultdict(int)
        self.shadow_disagreements: dict[str, int] = defaultdict(int)
        self.shadow_errors: dict[str, int] = defaultdict(int)
        self.refused_requests = 0
        #: Every worker's snapshot (this one's too), summed by :meth:`render`; None: one process.
        #: Each has its ``worker`` slot, and ``live`` False when read from a gone worker's file.
        self.workers: Callable[[], list[dict[str, Any]]] | None = None

    def snapshot(self) -> dict[str, Any]:
        """Every counter as plain JSON-able data (what :meth:`add` sums)."""
        with self._lock:
            return {
                "versions": {
                    v: {
                        "requests": dict(c.requests),
                        "errors": dict(c.errors),
                        "buckets": list(c.buckets),
                        "latency_sum": c.latency_sum,
                        "classes": dict(c.classes),
                        "value_sum": c.value_sum,
                        "value_count": c.value_count,
                    }
                    for v, c in self._versions.items()
                },
                "shadow_requests": dict(self.shadow_requests),
                "shadow_disagreements": dict(self.shadow_disagreements),
                "shadow_errors": dict(self.shadow_errors),
                "refused_requests": self.refused_requests,
            }

    def add(self, snapshot: dict[str, Any]) -> None:
        """Add another process's :meth:`snapshot` to these counters."""
        with self._lock:
            for v, data in snapshot.get("versions", {}).items():
                c = self._versions[v]
                for role, n in data["requests"].items():
                    c.requests[role] += n
                for code, n in data["errors"].items():
                    c.errors[code] += n
                c.buckets = [a + b for a, b in zip(c.buckets, data["buckets"], strict=True)]
                c.latency_sum += data["latency_sum"]
                for label, n in data["classes"].items():
                    key = (
                        label if label in c.classes or len(c.classes) < MAX_CLASSES else OTHER_CLASS
                    )
                    c.classes[key] = c.classes.get(key, 0) + n
                c.value_sum += data["value_sum"]
                c.value_count += data["value_count"]
            for name in ("shadow_requests", "shadow_disagreements", "shadow_errors"):
                mine = getattr(self, name)
                for v, n in snapshot.get(name, {}).items():
                    mine[v] += n
            self.refused_requests += snapshot.get("refused_requests", 0)

    def request(
        self, version: str, role: str, status: int, seconds: float, predictions: Any = None
    ) -> None:
        """One answered request (and its predictions, when it has some)."""
        with self._lock:
            c = self._versions[version]
            c.requests[role] += 1
            if status >= 400:
                c.errors[str(status)] += 1
            c.latency_sum += seconds
            c.buckets[bisect_left(BUCKETS, seconds)] += 1
            if predictions is not None:
                c.count_predictions(predictions)

    def shadow(self, version: str, *, agreed: bool | None) -> None:
        """One request scored in shadow: ``agreed`` None when the shadow failed."""
        with self._lock:
            self.shadow_requests[version] += 1
            if agreed is None:
                self.shadow_errors[version] += 1
            elif not agreed:
                self.shadow_disagreements[version] += 1

    def refused(self) -> None:
        """One request refused before it was routed to a version (4xx)."""
        with self._lock:
            self.refused_requests += 1

    def render(self) -> str:
        """Every counter in Prometheus' text exposition format (version 0.0.4), summed with the
        other workers' (:attr:`workers`) when there are some."""
        if self.workers is None:
            return self._render()
        whole = Telemetry(self.model)
        per_slot: dict[str, int] = defaultdict(int)
        snapshots = self.workers()
        for snapshot in snapshots:
            whole.add(snapshot)
            per_slot[str(snapshot.get("worker"))] += sum(
                sum(data["requests"].values()) for data in snapshot.get("versions", {}).values()
            )
        out = _Exposition(self.model)
        out.family("mlgate_workers", "gauge", "Worker processes whose counters this scrape sums.")
        out.sample("mlgate_workers", sum(1 for s in snapshots if s.get("live", True)))
        out.family("mlgate_worker_requests_total", "counter", "Requests answered, by worker slot.")
        for slot, n in sorted(per_slot.items()):
            out.sample("mlgate_worker_requests_total", n, worker=slot)
        return whole._render(out)

    def _render(self, out: _Exposition | None = None) -> str:
        out = out or _Exposition(self.model)
        with self._lock:
            versions = sorted(self._versions.items())
            out.family(
                "mlgate_requests_total", "counter", "Requests answered, by version and role."
            )
            for v, c in versions:
                for role, n in sorted(c.requests.items()):
                    out.sample("mlgate_requests_total", n, version=v, role=role)
            out.family(
                "mlgate_errors_total", "counter", "Error responses, by version and status code."
            )
            for v, c in versions:
                for code, n in sorted(c.errors.items()):
                    out.sample("mlgate_errors_total", n, version=v, code=code)
            out.family("mlgate_request_seconds", "histogram", "Request latency, by version.")
            for v, c in versions:
                cumulative = 0
                for bound, n in zip([*BUCKETS, math.inf], c.buckets, strict=True):
                    cumulative += n
                    le = "+Inf" if bound == math.inf else f"{bound:g}"
                    out.sample("mlgate_request_seconds_bucket", cumulative, version=v, le=le)
                out.sample("mlgate_request_seconds_sum", f"{c.latency_sum:.6f}", version=v)
                out.sample("mlgate_request_seconds_count", cumulative, version=v)
            out.family(
                "mlgate_predictions_total", "counter", "Predictions by class (classification)."
            )
            for v, c in versions:
                for label, n in sorted(c.classes.items()):
                    out.sample("mlgate_predictions_total", n, version=v, **{"class": label})
            out.family(
                "mlgate_prediction_value",
                "summary",
                "Sum and count of numeric predictions (regression).",
            )
            for v, c in versions:
                if c.value_count:
                    out.sample("mlgate_prediction_value_sum", f"{c.value_sum:.6g}", version=v)
                    out.sample("mlgate_prediction_value_count", c.value_count, version=v)
            out.family("mlgate_shadow_requests_total", "counter", "Requests scored in shadow.")
            for v, n in sorted(self.shadow_requests.items()):
                out.sample("mlgate_shadow_requests_total", n, version=v)
                out.sample(
                    "mlgate_shadow_disagreements_total",
                    self.shadow_disagreements.get(v, 0),
                    version=v,
                )
                out.sample("mlgate_shadow_errors_total", self.shadow_errors.get(v, 0), version=v)
            out.family(
                "mlgate_invalid_requests_total", "counter", "Requests refused before routing (4xx)."
            )
            out.sample("mlgate_invalid_requests_total", self.refused_requests)
        return out.text()


class _Exposition:
    """Prometheus text format lines; every sample carries the ``model`` label first."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, value: object, **labels: str) -> None:
        pairs = [("model", self.model), *labels.items()]
        text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs)
        self.lines.append(f"{name}{{{text}}} {value}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse_prometheus(text: str) -> dict[str, dict[str, float]]:
    """Read mlgate's own /metrics back: ``{version: {"requests", "errors", "latency_sum",
    "latency_count", "p_le_<bound>": cumulative}}`` (used by rollout)."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for line in text.splitlines():
        if not line or line.startswith("#") or "{" not in line:
            continue
        name, _, rest = line.partition("{")
        labels_text, _, value_text = rest.rpartition("}")
        labels = dict(_label_pairs(labels_text))
        version = labels.get("version")
        if version is None:
            continue
        try:
            value = float(value_text.strip())
        except ValueError:
            continue
        row = out[version]
        if name == "mlgate_requests_total":
            row["requests"] += value
        elif name == "mlgate_errors_total":
            row["errors"] += value
            if labels.get("code", "").startswith("5"):
                row["server_errors"] += value
        elif name == "mlgate_request_seconds_sum":
            row["latency_sum"] += value
        elif name == "mlgate_request_seconds_count":
            row["latency_count"] += value
        elif name == "mlgate_request_seconds_bucket":
            row[f"le_{labels.get('le')}"] += value
    return {v: dict(r) for v, r in out.items()}


def _label_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for part in text.split('",'):
        key, _, value = part.partition("=")
        pairs.append((key.strip(), value.strip().strip('"')))
    return pairs
