"""Collect what the gates need: all the I/O happens here, so the gates can stay pure.

Only what the configured gates say they need (:class:`~mlgate.promotion.gates.Needs`, from each
gate type's module) is fetched: signatures only for a signature gate, artifact digests only for
a lineage gate that verifies them, an evaluation only for gates that read metrics, data files
only for the data gates that name them. Nothing fetched is ever replaced by a guess: what
cannot be read is recorded as an error, and the gate that needs it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgate.errors import MlgateError, NotFoundError, PolicyError
from mlgate.fingerprint import fingerprint_model_artifacts, fingerprint_path
from mlgate.keys import Tags
from mlgate.promotion.evaluation import ModelFiles
from mlgate.promotion.gates import (
    Column,
    EvaluationEvidence,
    Evidence,
    GateSpec,
    Needs,
    VersionEvidence,
)
from mlgate.promotion.gates.base import recorded_kind
from mlgate.promotion.gates.registry import resolve
from mlgate.promotion.policy import ModelPolicy
from mlgate.registry.store import Store, VersionRecord

if TYPE_CHECKING:
    from mlgate.promotion.evaluation import Evaluation


def _logged_metrics(store: Store, v: VersionRecord) -> dict[str, float]:
    """The metrics snapshot taken at registration, else the run's current metrics."""
    snap = v.tags.get(Tags.METRICS)
    if snap:
        try:
            return {str(k): float(x) for k, x in json.loads(snap).items() if k != "_truncated"}
        except (ValueError, TypeError, AttributeError):
            pass
    if v.run_id:
        try:
            return dict(store.get_run(v.run_id).metrics)
        except NotFoundError:
            return {}
    return {}


def artifact_digest(store: Store, v: VersionRecord, files: ModelFiles | None = None) -> str:
    """Hash the version's artifacts the way registration did (downloaded once per check)."""
    if files is not None:
        return files.digest(v)
    local = store.download(f"models:/{v.name}/{v.version}")
    try:
        return fingerprint_model_artifacts(local).digest
    finally:
        shutil.rmtree(local, ignore_errors=True)


def _version_evidence(
    store: Store,
    v: VersionRecord,
    *,
    want_signature: bool,
    want_artifacts: bool,
    evaluated: dict[str, float] | None,
    evaluation_error: str | None,
    unevaluated: dict[str, str] | None,
    files: ModelFiles,
) -> VersionEvidence:
    digest_now = art_error = None
    if want_artifacts:
        try:
            digest_now = artifact_digest(store, v, files)
        except MlgateError as exc:
            art_error = str(exc)
    signature: tuple[Column, ...] | None = None
    sig_error = None
    if want_signature:
        try:
            # The MLmodel file of artifacts already downloaded, else one small remote read.
            where = files.path(v) if files.has(v) else f"models:/{v.name}/{v.version}"
            cols = store.input_schema(where)
            signature = None if cols is None else tuple(Column(*c) for c in cols)
        except MlgateError as exc:
            sig_error = f"cannot read the signature: {exc}"
    return VersionEvidence(
        version=v.version,
        tags=dict(v.tags),
        logged=_logged_metrics(store, v),
        evaluated=evaluated or {},
        logged_eval_fingerprint=v.tags.get(Tags.data("eval", "fingerprint")),
        signature=signature,
        signature_error=sig_error,
        artifact_digest_now=digest_now,
        artifact_error=art_error,
        evaluation_error=evaluation_error,
        unevaluated=unevaluated or {},
    )


def _frame_digest(path: Path, tags: dict[str, str], role: str) -> str:
    from mlgate.fingerprint import fingerprint
    from mlgate.promotion.evaluation import read_frame

    schema = None
    text = tags.get(Tags.data(role, "schema"))
    if text:
        try:
            schema = [(str(n), str(t)) for n, t in json.loads(text)]
        except (ValueError, TypeError):
            schema = None
    return fingerprint(read_frame(path, schema)).digest


def needs(specs: Sequence[GateSpec]) -> Needs:
    """What the gates of this check need, from each gate type's declaration.

    A spec its type refuses (or whose ``needs`` raises) adds nothing: :func:`run_gates` fails it.
    """
    total = Needs()
    for spec in specs:
        try:
            gate, spec = resolve(spec)
            total = total | gate.needs(spec)
        except Exception:  # noqa: BLE001, S112 - that gate fails closed when it runs
            continue
    return total


def collect(
    store: Store,
    policy: ModelPolicy,
    alias: str,
    candidate: VersionRecord,
    specs: Sequence[GateSpec],
    *,
    champion: VersionRecord | None,
    eval_data: Any = None,
    target: str | None = None,
    base_dir: str | None = None,
) -> tuple[Evidence, dict[str, Any] | None]:
    """Build the :class:`Evidence` for ``candidate`` against ``champion`` (already resolved).

    Returns the evidence and a JSON-ready summary of the evaluation (None when none ran).
    Each version's artifacts are downloaded at most once, whichever gates need them.
    """
    want = needs(specs)
    data = eval_data if eval_data is not None else policy.evaluation.data
    files = ModelFiles(store)
    try:
        evaluation = _evaluation(store, policy, candidate, champion, data, target, want, files)
        versions = _Versions(store, candidate, want, evaluation, files)
        champion_ev, champion_error = versions.champion(champion)
        path_fps, frame_fps = _file_fingerprints(want, candidate, base_dir)
        evidence = Evidence(
            model=candidate.name,
            alias=alias,
            candidate=versions.of(candidate),
            champion=champion_ev,
            champion_alias=policy.champion_alias,
            champion_error=champion_error,
            evaluation=_evaluation_evidence(evaluation),
            path_fingerprints=path_fps,
            scored_fingerprints=_scored_fingerprints(want, evaluation, data, candidate),
            frame_fingerprints=frame_fps,
            min_rows=policy.evaluation.min_rows,
        )
    finally:
        files.cleanup()
    return evidence, evaluation.summary() if evaluation is not None else None


def _evaluation(
    store: Store,
    policy: ModelPolicy,
    candidate: VersionRecord,
    champion: VersionRecord | None,
    data: Any,
    target: str | None,
    want: Needs,
    files: ModelFiles,
) -> Evaluation | None:
    """Candidate and champion scored on the same rows, when there are rows and a gate reads
    metrics; else None."""
    from mlgate.promotion.evaluation import evaluate

    if data is None or not want.metrics:
        return None
    spec = policy.evaluation
    from_policy = isinstance(data, str) and data == spec.data
    if from_policy:
        _check_policy_file(spec)
    return evaluate(
        store,
        [candidate] + ([champion] if champion is not None else []),
        data,
        target=target or spec.target,
        task=spec.task,
        min_rows=spec.min_rows,
        metrics=spec.metrics,
        base_dir=spec.base_dir,
        files=files,
        needed=set(want.metrics),
        target_origin=spec.origin if from_policy and not target else None,
    )


def _check_policy_file(spec: Any) -> None:
    """The policy's evaluation file exists, or a PolicyError naming the policy file and key."""
    if spec.origin is not None and not Path(spec.data).is_file():
        path, key = spec.origin
        raise PolicyError(path, f"{key}.data", f"no such file: {spec.data}")


class _Versions:
    """Each version's evidence: what it recorded, what the evaluation found, what is needed."""

    def __init__(
        self,
        store: Store,
        candidate: VersionRecord,
        want: Needs,
        evaluation: Evaluation | None,
        files: ModelFiles,
    ) -> None:
        self.store, self.candidate, self.want = store, candidate, want
        self.evaluation, self.files = evaluation, files

    def of(self, v: VersionRecord) -> VersionEvidence:
        e = self.evaluation
        return _version_evidence(
            self.store,
            v,
            want_signature=self.want.signature,
            want_artifacts=self.want.artifact_digest and v is self.candidate,
            evaluated=e.metrics.get(v.version) if e else None,
            evaluation_error=e.errors.get(v.version) if e else None,
            unevaluated=e.unevaluated.get(v.version) if e else None,
            files=self.files,
        )

    def champion(self, v: VersionRecord | None) -> tuple[VersionEvidence | None, str | None]:
        """(the champion's evidence, why it cannot be read): both None when there is none."""
        if v is None:
            return None, None
        try:
            return self.of(v), None
        except MlgateError as exc:
            return None, str(exc)


def _file_fingerprints(
    want: Needs, candidate: VersionRecord, base_dir: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """(path -> digest of its bytes, path -> digest of the frame it holds), each value
    ``"error: ..."`` when the file cannot be fingerprinted.

    A named file is read as a frame when the candidate's data of its role was recorded from a
    frame, else hashed as bytes; the files recorded at registration are hashed as bytes.
    """
    byte_paths: list[str] = []
    frame_paths: dict[str, str] = {}
    for path, role in want.data_files:
        if recorded_kind(candidate.tags, role) == "dataframe":
            frame_paths.setdefault(path, role)
        else:
            byte_paths.append(path)
    if want.recorded_data:
        for role in ("train", "eval"):
            source = candidate.tags.get(Tags.data(role, "source"))
            if source:
                byte_paths.append(source)

    def resolved(path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() or base_dir is None else Path(base_dir) / p

    path_fps: dict[str, str] = {}
    for path in dict.fromkeys(byte_paths):
        try:
            path_fps[path] = fingerprint_path(resolved(path)).digest
        except MlgateError as exc:
            path_fps[path] = f"error: {exc}"
    frame_fps: dict[str, str] = {}
    for path, role in frame_paths.items():
        try:
            frame_fps[path] = _frame_digest(resolved(path), candidate.tags, role)
        except MlgateError as exc:
            frame_fps[path] = f"error: {exc}"
    return path_fps, frame_fps


def _scored_fingerprints(
    want: Needs, evaluation: Evaluation | None, data: Any, candidate: VersionRecord
) -> tuple[str, ...]:
    """The evaluation data scored, fingerprinted as a table and, when a gate needs it and it is
    a file, as its bytes and as the frame the training data was recorded as."""
    if evaluation is None:
        return ()
    scored = [evaluation.fingerprint]
    if want.scored_data and isinstance(data, str | os.PathLike):
        with contextlib.suppress(MlgateError):
            scored.append(fingerprint_path(Path(data)).digest)
        if recorded_kind(candidate.tags, "train") == "dataframe":
            with contextlib.suppress(MlgateError):
                scored.append(_frame_digest(Path(data), candidate.tags, "train"))
    return tuple(dict.fromkeys(scored))


def _evaluation_evidence(evaluation: Evaluation | None) -> EvaluationEvidence | None:
    if evaluation is None:
        return None
    return EvaluationEvidence(
        fingerprint=evaluation.fingerprint,
        rows=evaluation.rows,
        task=evaluation.task,
        target=evaluation.target,
        y_true=evaluation.y_true,
        predictions=evaluation.predictions,
        min_rows=evaluation.min_rows,
    )
