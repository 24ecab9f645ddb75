"""What a gate type is made of, what it reads, and what it returns.

A gate type is a :class:`Gate`: its policy keys (a :class:`~mlgate.promotion.schema.Schema`),
the evidence it needs (:class:`Needs`, fetched by :mod:`mlgate.promotion.evidence`), and its
check, a pure function from a :class:`GateSpec` and the :class:`Evidence` to a
:class:`GateResult`. Nothing here does I/O.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlgate.keys import Tags
from mlgate.promotion.schema import Schema


@dataclass(frozen=True)
class GateSpec:
    """One configured gate: its type, its options (defaults filled in), where it was written."""

    type: str
    options: Mapping[str, Any]
    where: str  # "models.churn.gates.champion[1]" - for messages
    name: str

    def get(self, key: str, default: Any = None) -> Any:
        value = self.options.get(key)
        return default if value is None else value


@dataclass(frozen=True)
class Needs:
    """The evidence one gate needs; :mod:`mlgate.promotion.evidence` fetches only what some
    gate of the check needs. Each version's tags and logged metrics are always there."""

    #: metrics read for each version: evaluated on the evaluation data when it is given (both
    #: versions scored on the same rows, predictions kept for resampling), else as logged
    metrics: frozenset[str] = frozenset()
    #: each version's input signature (``VersionEvidence.signature``)
    signature: bool = False
    #: the candidate's artifacts hashed now (``VersionEvidence.artifact_digest_now``)
    artifact_digest: bool = False
    #: ``(path, role)``: the file fingerprinted the way the candidate's ``role`` data was recorded
    #: (``Evidence.frame_fingerprints`` for a frame, else ``Evidence.path_fingerprints``)
    data_files: tuple[tuple[str, str], ...] = ()
    #: the data files recorded at registration, hashed now (``Evidence.path_fingerprints``)
    recorded_data: bool = False
    #: the evaluation data scored, fingerprinted every way the training data may have been
    #: (``Evidence.scored_fingerprints``)
    scored_data: bool = False

    def __or__(self, other: Needs) -> Needs:
        return Needs(
            metrics=self.metrics | other.metrics,
            signature=self.signature or other.signature,
            artifact_digest=self.artifact_digest or other.artifact_digest,
            data_files=tuple(dict.fromkeys(self.data_files + other.data_files)),
            recorded_data=self.recorded_data or other.recorded_data,
            scored_data=self.scored_data or other.scored_data,
        )


def needs_nothing(spec: GateSpec) -> Needs:
    """For a gate that reads only tags and logged metrics."""
    return Needs()


@dataclass(frozen=True)
class Gate:
    """A gate type: the name policies give it, its keys, the evidence it needs, its check.

    ``schema`` lists the keys besides ``type`` and ``name`` (checked when the policy is loaded,
    and again before the check runs). ``check`` must be pure and fail closed: a missing, NaN or
    unreadable value is a failure with its reason; an exception it raises fails the gate.
    ``needs`` says, for one configured gate, what must be collected for it.
    """

    type: str
    schema: Schema
    check: Callable[[GateSpec, Evidence], GateResult]
    needs: Callable[[GateSpec], Needs] = needs_nothing


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


def result(spec: GateSpec, passed: bool, observed: Any, expected: str, reason: str) -> GateResult:
    """The verdict of ``spec``'s gate: what it saw, what it expected, why it passed or failed."""
    return GateResult(spec.name, spec.type, bool(passed), observed, expected, reason)


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
    """A number as reasons print it (6 significant digits)."""
    if isinstance(value, float):
        return f"{value + 0.0:.6g}"  # + 0.0: -0.0 prints as 0, never "-0"
    return str(value)


# --------------------------------------------------------------------------- evidence


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


def recorded_kind(tags: Mapping[str, str], role: str) -> str:
    """How the ``role`` fingerprint was taken: ``dataframe``, ``array``, ``file`` or
    ``directory``. For versions registered before mlgate recorded it: a column count means a
    frame, a byte size a file or directory (both compared by bytes), rows alone an array."""
    kind = tags.get(Tags.data(role, "kind"))
    if kind:
        return kind
    if Tags.data(role, "columns") in tags:
        return "dataframe"
    if Tags.data(role, "bytes") in tags:
        return "file"
    return "array" if Tags.data(role, "rows") in tags else "file"


# --------------------------------------------------------------------------- the decision


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
    #: the version already holds the alias: nothing to check, and promote leaves it unchanged
    already_there: bool = False

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def summary(self) -> str:
        """One line: what was decided and why."""
        head = f"{self.model} version {self.version} -> {self.alias}"
        if self.already_there:
            return f"{head}: unchanged (already there); no gates to run"
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
            "already_there": self.already_there,
            "checked_at": self.checked_at,
            "policy": self.policy_path,
            "evaluation": _jsonable(self.evaluation),
            "results": [r.to_dict() for r in self.results],
        }


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
