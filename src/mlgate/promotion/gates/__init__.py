"""Promotion gates: pure functions from evidence to a verdict.

Each gate takes its :class:`~mlgate.promotion.policy.GateSpec` and the :class:`Evidence` collected for a
candidate (by :mod:`mlgate.promotion.evidence`, which does all the I/O) and returns a :class:`GateResult`
with what it saw, what it expected and why it passed or failed. Gates fail closed: a missing or
NaN metric, an unreadable champion, an unknown gate type, or an exception inside a gate is a
failure with a reason, never a pass.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlgate.promotion.policy import GateSpec


@dataclass(frozen=True)
class GateResult:
    """The verdict of one gate."""

    name: str
    type: str
    passed: bool
    observed: Any
    expected: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "passed": self.passed,
            "observed": _jsonable(self.observed),
            "expected": self.expected,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Column:
    """One input column of a model signature."""

    name: str
    type: str
    required: bool = True


@dataclass(frozen=True)
class VersionEvidence:
    """What is known about one model version when the gates run."""

    version: str
    tags: Mapping[str, str] = field(default_factory=dict)
    logged: Mapping[str, float] = field(default_factory=dict)
    evaluated: Mapping[str, float] = field(default_factory=dict)
    logged_eval_fingerprint: str | None = None
    signature: tuple[Column, ...] | None = None
    signature_error: str | None = None
    artifact_digest_now: str | None = None
    artifact_error: str | None = None
    evaluation_error: str | None = None
    #: metric -> why the evaluation has no value for it (evaluation data was given)
    unevaluated: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationEvidence:
    """Like-for-like evaluation: both versions scored on the same rows."""

    fingerprint: str
    rows: int
    task: str
    target: str
    y_true: Any  # numpy array
    predictions: Mapping[str, Any]  # version -> numpy array
    min_rows: int = 30


@dataclass(frozen=True)
class Evidence:
    """Everything the gates may look at. Built by mlgate.promotion.evidence; read-only here."""

    model: str
    alias: str
    candidate: VersionEvidence
    champion: VersionEvidence | None
    champion_alias: str = "champion"
    champion_error: str | None = None
    evaluation: EvaluationEvidence | None = None
    #: path -> fingerprint of the file's bytes (or directory manifest), or "error: ..."
    path_fingerprints: Mapping[str, str] = field(default_factory=dict)
    #: Fingerprints of the evaluation data scored for this check, taken every way the recorded
    #: training digest may have been (table content, file bytes, the file read as the recorded
    #: frame), so ``distinct_train_eval`` can tell when the rows scored are the training rows.
    scored_fingerprints: tuple[str, ...] = ()
    #: path -> fingerprint of the table the file holds, read the way the recorded frame was
    #: written (see mlgate.promotion.evaluation.read_frame), or "error: ..."
    frame_fingerprints: Mapping[str, str] = field(default_factory=dict)
    #: comparison gates refuse fewer evaluation rows than this
    min_rows: int = 30

    @property
    def first_promotion(self) -> bool:
        return self.champion is None and self.champion_error is None


@dataclass(frozen=True)
class Decision:
    """The outcome of all gates for one candidate and one target alias."""

    model: str
    version: str
    alias: str
    champion_version: str | None
    first_promotion: bool
    results: tuple[GateResult, ...]
    checked_at: str
    policy_path: str | None = None
    evaluation: Mapping[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def summary(self) -> str:
        """One line: what was decided and why."""
        head = f"{self.model} version {self.version} -> {self.alias}"
        if self.passed:
            n = len(self.results)
            return f"{head}: passed ({n} gate{'s' if n != 1 else ''})"
        names = ", ".join(r.name for r in self.failed)
        return f"{head}: rejected by {names}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "passed": self.passed,
            "champion_version": self.champion_version,
            "first_promotion": self.first_promotion,
            "checked_at": self.checked_at,
            "policy": self.policy_path,
            "evaluation": _jsonable(self.evaluation),
            "results": [r.to_dict() for r in self.results],
        }


GateFn = Callable[[GateSpec, Evidence], GateResult]


def result(spec: GateSpec, passed: bool, observed: Any, expected: str, reason: str) -> GateResult:
    return GateResult(spec.name, spec.type, bool(passed), observed, expected, reason)


def run_gates(specs: Sequence[GateSpec], evidence: Evidence) -> tuple[GateResult, ...]:
    """Run every gate; an exception inside a gate is that gate's failure, not a crash."""
    from mlgate.promotion.gates import data, lineage, metrics, signature

    table: dict[str, GateFn] = {
        "metric": metrics.threshold,
        "no_regression": metrics.versus_champion,
        "improvement": metrics.versus_champion,
        "bootstrap": metrics.bootstrap,
        "data": data.fingerprints,
        "signature": signature.compatible,
        "lineage": lineage.recorded,
    }
    out = []
    for spec in specs:
        fn = table.get(spec.type)
        if fn is None:
            out.append(
                result(spec, False, None, "a known gate type", f"unknown gate type {spec.type!r}")
            )
            continue
        try:
            out.append(fn(spec, evidence))
        except Exception as exc:  # noqa: BLE001 - fail closed: a broken gate must not pass
            out.append(
                result(
                    spec, False, None, "the gate to run", f"gate error: {type(exc).__name__}: {exc}"
                )
            )
    return tuple(out)


def usable(value: float | None) -> bool:
    """A metric value a gate may trust: present and a finite number.

    MLflow stores an infinite metric as the largest float (1.797e308), so that counts as
    infinite too: a logged ``r2 = inf`` must never pass ``min = 0.5``.
    """
    return (
        value is not None
        and isinstance(value, int | float)
        and math.isfinite(value)
        and abs(value) < sys.float_info.max
    )


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return _jsonable(value.item())
    return value


__all__ = [
    "Column",
    "Decision",
    "EvaluationEvidence",
    "Evidence",
    "GateResult",
    "VersionEvidence",
    "run_gates",
]
