"""Collect what the gates need: all the I/O happens here, so the gates can stay pure.

Only what the configured gates use is fetched: signatures only for a signature gate, artifact
digests only for a lineage gate that verifies them, evaluation only for metric gates.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlgate.errors import MlgateError, NotFoundError
from mlgate.fingerprint import fingerprint_model_artifacts, fingerprint_path
from mlgate.lineage import Tags
from mlgate.promotion.evaluation import ModelFiles
from mlgate.promotion.gates import Column, EvaluationEvidence, Evidence, VersionEvidence
from mlgate.promotion.policy import GateSpec, ModelPolicy
from mlgate.registry.store import Store, VersionRecord

_METRIC_GATES = {"metric", "no_regression", "improvement", "bootstrap"}


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
        return fingerprint_model_artifacts(files.path(v)).digest
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


def _paths_to_fingerprint(
    specs: Sequence[GateSpec], candidate: VersionRecord
) -> tuple[list[str], dict[str, str]]:
    """(paths to hash as bytes, {path: role} of paths to read as the recorded frame)."""
    from mlgate.promotion.gates.data import recorded_kind

    paths: list[str] = []
    frames: dict[str, str] = {}
    for spec in specs:
        if spec.type != "data":
            continue
        for role in ("train", "eval"):
            if spec.get(f"{role}_path"):
                path = str(spec.get(f"{role}_path"))
                if recorded_kind(candidate.tags, role) == "dataframe":
                    frames.setdefault(path, role)
                else:
                    paths.append(path)
            source = candidate.tags.get(Tags.data(role, "source"))
            if spec.get("verify_recorded") and source:
                paths.append(source)
    return list(dict.fromkeys(paths)), frames


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
    files = ModelFiles(store)
    try:
        return _collect(
            store, policy, alias, candidate, specs, champion, eval_data, target, base_dir, files
        )
    finally:
        files.cleanup()


def _collect(
    store: Store,
    policy: ModelPolicy,
    alias: str,
    candidate: VersionRecord,
    specs: Sequence[GateSpec],
    champion: VersionRecord | None,
    eval_data: Any,
    target: str | None,
    base_dir: str | None,
    files: ModelFiles,
) -> tuple[Evidence, dict[str, Any] | None]:
    from mlgate.promotion.evaluation import evaluate

    types = {s.type for s in specs}
    want_signature = "signature" in types
    want_artifacts = any(s.type == "lineage" and s.get("verify_artifacts", True) for s in specs)

    evaluation = None
    summary = None
    spec_ev = policy.evaluation
    data = eval_data if eval_data is not None else spec_ev.data
    if data is not None and types & _METRIC_GATES:
        versions = [candidate] + ([champion] if champion is not None else [])
        evaluation = evaluate(
            store,
            versions,
            data,
            target=target or spec_ev.target,
            task=spec_ev.task,
            min_rows=spec_ev.min_rows,
            metrics=spec_ev.metrics,
            base_dir=spec_ev.base_dir,
            files=files,
            needed={str(s.get("metric")) for s in specs if s.type in _METRIC_GATES},
        )
        summary = evaluation.summary()

    def for_version(v: VersionRecord) -> VersionEvidence:
        return _version_evidence(
            store,
            v,
            want_signature=want_signature,
            want_artifacts=want_artifacts and v is candidate,
            evaluated=evaluation.metrics.get(v.version) if evaluation else None,
            evaluation_error=evaluation.errors.get(v.version) if evaluation else None,
            unevaluated=evaluation.unevaluated.get(v.version) if evaluation else None,
            files=files,
        )

    champion_ev = None
    champion_error = None
    if champion is not None:
        try:
            champion_ev = for_version(champion)
        except MlgateError as exc:
            champion_error = str(exc)

    def resolved(path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() or base_dir is None else Path(base_dir) / p

    byte_paths, frame_paths = _paths_to_fingerprint(specs, candidate)
    path_fps: dict[str, str] = {}
    for path in byte_paths:
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

    scored: list[str] = []
    if evaluation is not None:
        scored.append(evaluation.fingerprint)
        if isinstance(data, str | os.PathLike) and any(
            s.type == "data" and s.get("distinct_train_eval") for s in specs
        ):
            with contextlib.suppress(MlgateError):
                scored.append(fingerprint_path(Path(data)).digest)
            from mlgate.promotion.gates.data import recorded_kind

            if recorded_kind(candidate.tags, "train") == "dataframe":
                with contextlib.suppress(MlgateError):
                    scored.append(_frame_digest(Path(data), candidate.tags, "train"))

    eval_ev = None
    if evaluation is not None:
        eval_ev = EvaluationEvidence(
            fingerprint=evaluation.fingerprint,
            rows=evaluation.rows,
            task=evaluation.task,
            target=evaluation.target,
            y_true=evaluation.y_true,
            predictions=evaluation.predictions,
            min_rows=evaluation.min_rows,
        )
    evidence = Evidence(
        model=candidate.name,
        alias=alias,
        candidate=for_version(candidate),
        champion=champion_ev,
        champion_alias=policy.champion_alias,
        champion_error=champion_error,
        evaluation=eval_ev,
        path_fingerprints=path_fps,
        scored_fingerprints=tuple(dict.fromkeys(scored)),
        frame_fingerprints=frame_fps,
        min_rows=spec_ev.min_rows,
    )
    return evidence, summary
