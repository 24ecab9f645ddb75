"""Register a model version with its lineage, in one step, from a notebook, a script or the CLI.

``register()`` logs the model (or takes one already logged), fingerprints the training and
evaluation data in full, hashes the model artifact directory, reads the git state and the
environment, and creates the model version *with* all of that as ``mlgate.*`` tags in the same
call, so no version ever exists without its lineage. The data sets are also logged as MLflow
dataset inputs of the run (with a truncated fingerprint as MLflow's digest) so the MLflow UI
shows them.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgate import __version__, lineage
from mlgate._mlflow import Store, VersionRecord
from mlgate.errors import NotFoundError, UsageError
from mlgate.fingerprint import Fingerprint, fingerprint, fingerprint_model_artifacts
from mlgate.lineage import Tags, compact_json

DataLike = Any  # a pandas DataFrame, a numpy array, or a path to a file or directory


@dataclass(frozen=True)
class Registration:
    """What ``register`` created: the version and the lineage it recorded."""

    version: VersionRecord
    model_uri: str
    run_id: str | None
    lineage: lineage.Lineage
    data: dict[str, Fingerprint]

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def number(self) -> str:
        return self.version.version


def _fingerprint_input(role: str, data: DataLike) -> tuple[Fingerprint, str | None]:
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        if not path.exists():
            raise NotFoundError(f"{role} data: no such file or directory: {path}")
        return fingerprint(path), str(path.resolve())
    return fingerprint(data), None


def _data_tags(role: str, fp: Fingerprint, source: str | None) -> dict[str, str]:
    # How the digest was taken (frame content or file bytes), and for a frame its column types,
    # so a data gate can fingerprint a policy's file the same way (read into a frame with these
    # types) instead of comparing a frame digest with file bytes.
    tags = {Tags.data(role, "fingerprint"): fp.digest, Tags.data(role, "kind"): fp.kind}
    if fp.schema is not None:
        schema = compact_json([list(pair) for pair in fp.schema])
        if len(schema) <= 5000:  # MLflow's tag value limit; a wider frame is read untyped
            tags[Tags.data(role, "schema")] = schema
    if fp.rows is not None:
        tags[Tags.data(role, "rows")] = str(fp.rows)
    if fp.columns is not None:
        tags[Tags.data(role, "columns")] = str(fp.columns)
    if fp.size_bytes is not None:
        tags[Tags.data(role, "bytes")] = str(fp.size_bytes)
    if source:
        tags[Tags.data(role, "source")] = source
    return tags


def _dataset(
    store: Store, role: str, data: DataLike, fp: Fingerprint, source: str | None, target: str | None
) -> Any:
    import pandas as pd

    name = f"{role}"
    if isinstance(data, pd.DataFrame):
        tgt = target if target in data.columns else None
        return store.pandas_dataset(data, name=name, digest=fp.short(), source=source, targets=tgt)
    if source:
        return store.path_dataset(name=name, digest=fp.short(), source=source)
    return None  # arrays: recorded in tags only; MLflow has no dataset type for a bare array


def _limit_json(values: Mapping[str, Any], limit: int = 5000) -> str:
    text = compact_json(values)
    if len(text) <= limit:
        return text
    kept: dict[str, Any] = {}
    for key in sorted(values):
        kept[key] = values[key]
        if len(compact_json(kept)) > limit - 40:
            kept.pop(key)
            break
    kept["_truncated"] = True
    return compact_json(kept)


def register(
    model: Any,
    *,
    name: str,
    train_data: DataLike | None = None,
    eval_data: DataLike | None = None,
    target: str | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    input_example: Any = None,
    signature: Any = None,
    run_id: str | None = None,
    experiment: str | None = None,
    tags: Mapping[str, str] | None = None,
    code_path: str | os.PathLike[str] | None = None,
    log_model_kwargs: Mapping[str, Any] | None = None,
    store: Store | None = None,
) -> Registration:
    """Register a model version with full lineage.

    Args:
        model: a fitted scikit-learn estimator or ``mlflow.pyfunc.PythonModel`` (logged for you),
            or the URI of a model already logged (``runs:/<run>/model``, ``models:/m-...``).
        name: the registered model name.
        train_data: training data (DataFrame, array, or path to a file/directory).
        eval_data: evaluation data (same forms).
        target: the label column in ``train_data``/``eval_data`` DataFrames (for MLflow's UI).
        params: parameters to log on the run and record on the version.
        metrics: metrics to log on the run and record on the version (these are what metric
            gates compare; they should be computed on ``eval_data``).
        input_example: logged with the model; a signature is inferred from it when the model
            is logged here and ``signature`` is not given.
        signature: an ``mlflow.models.ModelSignature`` for the logged model.
        run_id: the run to log into (default: the active run, else a new run).
        experiment: experiment for a new run (default ``mlgate``).
        tags: extra version tags (must not start with ``mlgate.``).
        code_path: where to read the git state (default: the working directory).
        log_model_kwargs: extra arguments for the flavor's ``log_model`` when mlgate logs the
            model (e.g. ``{"skops_trusted_types": [...]}`` for scikit-learn tree models).
        store: the tracking server to use (default: see :class:`mlgate.Store`).

    Returns:
        A :class:`Registration` with the new version and the recorded lineage.

    Raises:
        UsageError: bad arguments. NotFoundError: a data path or run does not exist.
        TrackingServerError / NotPermittedError: the server failed or refused.
    """
    if not name or not str(name).strip():
        raise UsageError("a registered model name is required (name=...)")
    if any(ch in name for ch in "/:"):
        raise UsageError(f"bad model name {name!r}: names cannot contain '/' or ':'")
    for key in tags or {}:
        if key.startswith(lineage.TAG_PREFIX):
            raise UsageError(f"tag {key!r}: the 'mlgate.' prefix is reserved for lineage")
    store = store or Store()

    # Fingerprint first: a bad data path fails before anything is written to the server.
    fps: dict[str, Fingerprint] = {}
    sources: dict[str, str | None] = {}
    inputs = {"train": train_data, "eval": eval_data}
    for role, data in inputs.items():
        if data is not None:
            fps[role], sources[role] = _fingerprint_input(role, data)

    datasets = []
    for role, data in inputs.items():
        if data is not None:
            ds = _dataset(store, role, data, fps[role], sources[role], target)
            if ds is not None:
                datasets.append((ds, "training" if role == "train" else "evaluation"))

    git = lineage.git_state(code_path)
    run_tags = {"mlgate.git.commit": git.commit}
    if isinstance(model, str):
        model_uri = model
        if model_uri.startswith("runs:/"):
            run_id = run_id or model_uri[len("runs:/") :].split("/", 1)[0]
        if run_id:
            store.get_run(run_id)  # NotFoundError early for a bad run id
            store.log_run_extras(
                run_id,
                params=dict(params or {}),
                metrics={k: float(v) for k, v in (metrics or {}).items()},
                datasets=datasets,
            )
    else:
        if signature is None and input_example is not None and hasattr(model, "predict"):
            signature = store.infer_signature(input_example, model.predict(input_example))
        model_uri, run_id = store.log_model(
            model,
            run_id=run_id,
            experiment=experiment,
            input_example=input_example,
            signature=signature,
            params=dict(params or {}),
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            datasets=datasets,
            run_tags=run_tags,
            log_model_kwargs=dict(log_model_kwargs or {}),
        )

    # Hash the artifacts exactly as the registry will serve them.
    local = store.download(model_uri)
    try:
        artifact = fingerprint_model_artifacts(local)
        env = lineage.environment(local)
    finally:
        shutil.rmtree(local, ignore_errors=True)

    run_metrics: dict[str, float] = {}
    run_params: dict[str, str] = {}
    if run_id:
        run = store.get_run(run_id)
        run_metrics, run_params = dict(run.metrics), dict(run.params)
    run_metrics.update({k: float(v) for k, v in (metrics or {}).items()})
    run_params.update({k: str(v) for k, v in (params or {}).items()})

    version_tags: dict[str, str] = {
        Tags.MLGATE_VERSION: __version__,
        Tags.GIT_COMMIT: git.commit,
        Tags.ARTIFACT_DIGEST: artifact.digest,
        Tags.ARTIFACT_FILES: str(artifact.files),
        Tags.ENV_PYTHON: env.python,
        Tags.ENV_PLATFORM: env.platform,
        Tags.ENV_PACKAGES: compact_json(env.packages),
        Tags.REGISTERED_BY: lineage.actor(),
        Tags.REGISTERED_AT: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        Tags.METRICS: _limit_json(run_metrics),
        Tags.PARAMS: _limit_json(run_params),
    }
    if git.present:
        version_tags[Tags.GIT_DIRTY] = "true" if git.dirty else "false"
        if git.branch:
            version_tags[Tags.GIT_BRANCH] = git.branch
        if git.remote:
            version_tags[Tags.GIT_REMOTE] = git.remote
    if env.requirements_digest:
        version_tags[Tags.ENV_REQUIREMENTS] = env.requirements_digest
    ci = lineage.ci_run_url()
    if ci:
        version_tags[Tags.CI_RUN_URL] = ci
    for role, fp in fps.items():
        version_tags.update(_data_tags(role, fp, sources[role]))
    version_tags.update(dict(tags or {}))

    version = store.register(model_uri, name, version_tags)
    return Registration(
        version=version,
        model_uri=model_uri,
        run_id=run_id,
        lineage=lineage.lineage_from_tags(
            version.name,
            version.version,
            version.tags,
            run_id=version.run_id,
            source=version.source,
            aliases=version.aliases,
        ),
        data=fps,
    )


def show(ref: str, *, store: Store | None = None) -> lineage.Lineage:
    """The lineage recorded for ``MODEL``, ``MODEL@ALIAS`` or ``MODEL/VERSION``."""
    from mlgate.registry import resolve

    store = store or Store()
    v = resolve(store, ref)
    return lineage.lineage_from_tags(
        v.name, v.version, v.tags, run_id=v.run_id, source=v.source, aliases=v.aliases
    )
