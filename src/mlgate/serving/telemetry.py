"""Per-version serving metrics, rendered in Prometheus' text format.

Counters live outside the serving state, so they survive version swaps; each series carries the
``version`` label (and ``role``: champion/challenger at the time of the request).
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_CLASSES = 50


@dataclass
class VersionMetrics:
    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # by role
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # by status code
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    latency_sum: float = 0.0
    latency_count: int = 0
    classes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    value_sum: float = 0.0
    value_count: int = 0


class Metrics:
    """Thread-safe counters for every version this process has served."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._v: dict[str, VersionMetrics] = defaultdict(VersionMetrics)
        self.shadow_requests: dict[str, int] = defaultdict(int)
        self.shadow_disagreements: dict[str, int] = defaultdict(int)
        self.shadow_errors: dict[str, int] = defaultdict(int)
        self.invalid_requests = 0

    def observe(self, version: str, role: str, status: int, seconds: float) -> None:
        with self._lock:
            m = self._v[version]
            m.requests[role] += 1
            if status >= 400:
                m.errors[str(status)] += 1
            m.latency_sum += seconds
            m.latency_count += 1
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    m.buckets[i] += 1
                    break
            else:
                m.buckets[-1] += 1

    def observe_predictions(self, version: str, predictions: Any) -> None:
        try:
            values = np.asarray(predictions)
        except (ValueError, TypeError):
            return
        if values.ndim != 1 or values.size == 0:
            return
        with self._lock:
            m = self._v[version]
            if values.dtype.kind in "fc":
                finite = values[np.isfinite(values)]
                m.value_sum += float(finite.sum())
                m.value_count += int(finite.size)
            else:
                items: Any
                if values.size <= 32:  # one-row requests: a loop beats np.unique's sort
                    tally: dict[str, int] = {}
                    for item in values.tolist():
                        tally[str(item)] = tally.get(str(item), 0) + 1
                    items = tally.items()
                else:
                    labels, counts = np.unique(values.astype(str), return_counts=True)
                    items = zip(labels.tolist(), counts.tolist(), strict=True)
                for label, count in items:
                    full = label in m.classes or len(m.classes) < MAX_CLASSES
                    m.classes[label if full else "__other__"] += int(count)

    def shadow(self, version: str, *, agreed: bool | None) -> None:
        with self._lock:
            self.shadow_requests[version] += 1
            if agreed is None:
                self.shadow_errors[version] += 1
            elif not agreed:
                self.shadow_disagreements[version] += 1

    def invalid(self) -> None:
        with self._lock:
            self.invalid_requests += 1

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Plain numbers per version (what ``mlgate rollout`` compares)."""
        with self._lock:
            out = {}
            for v, m in self._v.items():
                out[v] = {
                    "requests": sum(m.requests.values()),
                    "errors": sum(m.errors.values()),
                    "latency_sum": m.latency_sum,
                    "latency_count": m.latency_count,
                    "buckets": list(m.buckets),
                }
            return out

    def render(self, model: str) -> str:
        out = _Exposition(model)
        with self._lock:
            versions = sorted(self._v.items())
            out.family(
                "mlgate_requests_total", "counter", "Requests answered, by version and role."
            )
            for v, m in versions:
                for role, n in sorted(m.requests.items()):
                    out.sample("mlgate_requests_total", n, version=v, role=role)
            out.family(
                "mlgate_errors_total", "counter", "Error responses, by version and status code."
            )
            for v, m in versions:
                for code, n in sorted(m.errors.items()):
                    out.sample("mlgate_errors_total", n, version=v, code=code)
            out.family("mlgate_request_seconds", "histogram", "Request latency, by version.")
            for v, m in versions:
                cumulative = 0
                for bound, n in zip([*BUCKETS, math.inf], m.buckets, strict=True):
                    cumulative += n
                    le = "+Inf" if bound == math.inf else f"{bound:g}"
                    out.sample("mlgate_request_seconds_bucket", cumulative, version=v, le=le)
                out.sample("mlgate_request_seconds_sum", f"{m.latency_sum:.6f}", version=v)
                out.sample("mlgate_request_seconds_count", m.latency_count, version=v)
            out.family(
                "mlgate_predictions_total", "counter", "Predictions by class (classification)."
            )
            for v, m in versions:
                for label, n in sorted(m.classes.items()):
                    out.sample("mlgate_predictions_total", n, version=v, **{"class": label})
            out.family(
                "mlgate_prediction_value",
                "summary",
                "Sum and count of numeric predictions (regression).",
            )
            for v, m in versions:
                if m.value_count:
                    out.sample("mlgate_prediction_value_sum", f"{m.value_sum:.6g}", version=v)
                    out.sample("mlgate_prediction_value_count", m.value_count, version=v)
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
            out.sample("mlgate_invalid_requests_total", self.invalid_requests)
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
