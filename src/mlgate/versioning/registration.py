"""Register a model version with its lineage, in one step, from a notebook, a script or the CLI.

``register()`` logs the model (or takes one already logged), fingerprints the training and
evaluation data in full, hashes the model artifact directory, reads the git state and the
environment, and creates the model version *with* all of that as ``mlgate.*`` tags in the same
call, so no version ever exists without its lineage. The data sets are also logged as MLflow
dataset inputs of the run (with a truncated fingerprint as MLflow's digest) so the MLflow UI
shows them.

The git state is the training code's: the checkout that logs the model when ``register`` logs
it, else the training run's own ``mlflow.source.git.*`` tags; only when the run has none is the
current checkout recorded, labelled as such (``mlgate.git.source``).

``attach()`` adds the same lineage to a version registered with plain MLflow, without creating a
new one; ``show()`` reads it back, completed with what MLflow recorded on the run.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgate import lineage
from mlgate._version import __version__
from mlgate.errors import NotFoundError, UsageError
from mlgate.fingerprint import Fingerprint, fingerprint, fingerprint_model_artifacts
from mlgate.keys import TAG_PREFIX, Tags
from mlgate.lineage import compact_json
from mlgate.promotion.ledger import (
    AttachEvent,
    Ledger,
    RegistrationEvent,
    attach_event,
    registration_event,
)
from mlgate.registry.store import Store, VersionRecord, logged_model_id

DataLike = Any  # a pandas DataFrame, a numpy array, or a path to a file or directory


@dataclass(frozen=True)
class Registration:
    """What ``register`` created: the version, the lineage it recorded, and its ledger event."""

    version: VersionRecord
    model_uri: str
    run_id: str | None
    lineage: lineage.Lineage
    data: dict[str, Fingerprint]
    event: RegistrationEvent | None = None

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


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise UsageError("a registered model name is required (name=...)")
    bad = sorted({ch for ch in name if ch in "/:@"})
    if bad:
        raise UsageError(
            f"bad model name {name!r}: names cannot contain {' or '.join(repr(c) for c in bad)}",
            hint="mlgate refers to versions as MODEL/VERSION and MODEL@ALIAS",
        )
    if name != name.strip():
        raise UsageError(
            f"bad model name {name!r}: names cannot start or end with whitespace",
            hint=f"every reference to a model is read without it: use {name.strip()!r}",
        )
    return name


def _check_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """Metrics as finite floats; anything else is a :class:`UsageError` naming the metric."""
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        if not isinstance(key, str) or not key.strip():
            raise UsageError(f"metric name {key!r}: a metric needs a non-empty name")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise UsageError(f"metric {key!r}: {value!r} is not a number ({type(value).__name__})")
        number = float(value)
        if not math.isfinite(number):
            raise UsageError(
                f"metric {key!r} is {number}: only finite numbers can be recorded and gated"
            )
        out[key] = number
    return out


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    """The run's metrics a gate could trust: NaN and infinities (which MLflow stores as the
    largest float) are left out of the version's snapshot, so a gate on them fails closed as
    "not recorded" instead of reading 1.8e308 as a number."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if math.isfinite(float(v)) and abs(float(v)) < sys.float_info.max
    }


def _refuse_rewrites(logged: Mapping[str, float], given: Mapping[str, float], run_id: str) -> None:
    """A metric the training run already logged is its record: never overwrite it."""
    for key, value in given.items():
        if key in logged and float(logged[key]) != value:
            raise UsageError(
                f"run {run_id} already logged {key} = {logged[key]:g}; mlgate will not "
                f"overwrite the training run's record with {value:g}",
                hint=f"drop --metric {key}, or record the new number under another name",
            )


def _check_fitted(model: Any) -> None:
    """A scikit-learn estimator must be fitted before it is logged (MLflow would save it)."""
    try:
        from sklearn.base import BaseEstimator
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return
    if not isinstance(model, BaseEstimator):
        return
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise UsageError(
            f"this {type(model).__name__} is not fitted",
            hint="call fit(...) before mlgate.register",
        ) from None
    except TypeError:  # not an estimator check_is_fitted understands: let MLflow decide
        return


def _logged_model_uri(store: Store, run_id: str, artifact_path: str) -> str:
    """``runs:/RUN/PATH`` as the URI of the model the run logged under that name.

    MLflow 3 keeps a logged model's files outside the run's artifacts; given ``runs:/`` it warns
    that the run "has no artifacts" and then falls back to the logged model. mlgate resolves the
    name itself, and a name the run did not log is an error that lists what it did log.
    """
    logged = store.logged_models(run_id)
    for name, uri in reversed(logged):  # the newest model of that name
        if name == artifact_path:
            return uri
    if store.run_has_artifacts(run_id, artifact_path):  # a model saved as plain run artifacts
        return f"runs:/{run_id}/{artifact_path}"
    names = ", ".join(f"{name} ({uri})" for name, uri in logged)
    raise NotFoundError(
        f"run {run_id} has no model at {artifact_path!r}",
        hint=f"it logged: {names}; pass --artifact-path NAME" if logged else "it logged no model",
    )


def _source_run(store: Store, model_uri: str, run_id: str | None) -> tuple[str, str | None]:
    """The model URI to register and the run that logged it (None when there is none)."""
    if model_uri.startswith("runs:/"):
        rest = model_uri[len("runs:/") :]
        uri_run, _, path = rest.partition("/")
        if not uri_run or not path.strip("/"):
            raise UsageError(f"bad model URI {model_uri!r}", hint="use runs:/RUN_ID/MODEL_NAME")
        if run_id and run_id != uri_run:
            raise UsageError(f"run_id {run_id} does not match the model URI {model_uri}")
        store.get_run(uri_run)  # NotFoundError early for a bad run id
        return _logged_model_uri(store, uri_run, path.strip("/")), uri_run
    logged = logged_model_id(model_uri)
    if logged and not run_id:
        run_id = store.logged_model_run(logged)
    if run_id:
        store.get_run(run_id)
    return model_uri, run_id


def _git_lineage(
    store: Store, run_id: str | None, code_path: Any, *, logged_here: bool
) -> tuple[lineage.GitState, str]:
    """The training code's git state, and where it was read (``lineage.GIT_SOURCE_TEXT``)."""
    if logged_here:
        return lineage.git_state(code_path), lineage.GIT_FROM_CHECKOUT
    if run_id:
        from_run = lineage.git_from_run(store.get_run(run_id).tags)
        if from_run is not None:
            return from_run, lineage.GIT_FROM_RUN
    return lineage.git_state(code_path), lineage.GIT_FROM_REGISTRATION


def _git_tags(git: lineage.GitState, source: str) -> dict[str, str]:
    tags = {Tags.GIT_COMMIT: git.commit, Tags.GIT_SOURCE: source}
    if git.present:
        if git.dirty is not None:
            tags[Tags.GIT_DIRTY] = "true" if git.dirty else "false"
        if git.branch:
            tags[Tags.GIT_BRANCH] = git.branch
        if git.remote:
            tags[Tags.GIT_REMOTE] = git.remote
    return tags


def _env_tags(env: lineage.Environment) -> dict[str, str]:
    tags = {Tags.ENV_PYTHON: env.python, Tags.ENV_PACKAGES: compact_json(env.packages)}
    if env.platform:
        tags[Tags.ENV_PLATFORM] = env.platform
    if env.requirements_digest:
        tags[Tags.ENV_REQUIREMENTS] = env.requirements_digest
    return {k: v for k, v in tags.items() if v}


def _fingerprint_all(
    inputs: Mapping[str, DataLike],
) -> tuple[dict[str, Fingerprint], dict[str, str | None]]:
    fps: dict[str, Fingerprint] = {}
    sources: dict[str, str | None] = {}
    for role, data in inputs.items():
        if data is not None:
            fps[role], sources[role] = _fingerprint_input(role, data)
    return fps, sources


def _artifact_facts(
    store: Store, model_uri: str, *, declared_env: bool
) -> tuple[Fingerprint, lineage.Environment]:
    """The artifact digest of ``model_uri`` as the registry serves it, and the environment:
    this interpreter's (``register``), or what the model declares (``attach``)."""
    local = store.download(model_uri)
    try:
        artifact = fingerprint_model_artifacts(local)
        env = lineage.model_environment(local) if declared_env else lineage.environment(local)
    finally:
        shutil.rmtree(local, ignore_errors=True)
    return artifact, env


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _check_arguments(
    model: Any, name: Any, metrics: Mapping[str, Any] | None, tags: Mapping[str, str] | None
) -> tuple[str, dict[str, float]]:
    """Refuse bad arguments before anything is read or written: the name, metrics and tags, and
    an estimator that is not fitted."""
    name = _check_name(name)
    clean_metrics = _check_metrics(metrics)
    for key in tags or {}:
        if key.startswith(TAG_PREFIX):
            raise UsageError(f"tag {key!r}: the 'mlgate.' prefix is reserved for lineage")
    if not isinstance(model, str):
        _check_fitted(model)
    return name, clean_metrics


def _datasets(
    store: Store,
    inputs: Mapping[str, DataLike],
    fps: Mapping[str, Fingerprint],
    sources: Mapping[str, str | None],
    target: str | None,
) -> list[tuple[Any, str]]:
    """The MLflow dataset inputs (with their context) that the run records the data as."""
    datasets = []
    for role, data in inputs.items():
        if data is not None:
            ds = _dataset(store, role, data, fps[role], sources[role], target)
            if ds is not None:
                datasets.append((ds, "training" if role == "train" else "evaluation"))
    return datasets


@dataclass(frozen=True)
class _Logged:
    """The model to register, the run that logged it, and the training code's git state."""

    model_uri: str
    run_id: str | None
    git: lineage.GitState
    git_source: str


def _log_here(
    store: Store,
    model: Any,
    *,
    run_id: str | None,
    experiment: str | None,
    input_example: Any,
    signature: Any,
    params: Mapping[str, Any] | None,
    metrics: dict[str, float],
    datasets: list[tuple[Any, str]],
    code_path: Any,
    log_model_kwargs: Mapping[str, Any] | None,
) -> _Logged:
    """Log a model object (with params, metrics, data and the checkout's commit) to a run."""
    git, git_source = _git_lineage(store, None, code_path, logged_here=True)
    if signature is None and input_example is not None:
        signature = store.signature_from_example(model, input_example)
    model_uri, run_id = store.log_model(
        model,
        run_id=run_id,
        experiment=experiment,
        input_example=input_example,
        signature=signature,
        params=dict(params or {}),
        metrics=metrics,
        datasets=datasets,
        run_tags={Tags.GIT_COMMIT: git.commit},
        log_model_kwargs=dict(log_model_kwargs or {}),
    )
    return _Logged(model_uri, run_id, git, git_source)


def _take_logged(
    store: Store,
    model_uri: str,
    *,
    run_id: str | None,
    params: Mapping[str, Any] | None,
    metrics: dict[str, float],
    datasets: list[tuple[Any, str]],
    code_path: Any,
) -> _Logged:
    """A model already logged: its run gets the extras (never a rewritten metric)."""
    model_uri, run_id = _source_run(store, model_uri, run_id)
    git, git_source = _git_lineage(store, run_id, code_path, logged_here=False)
    if run_id and metrics:
        _refuse_rewrites(store.get_run(run_id).metrics, metrics, run_id)
    if run_id:
        store.log_run_extras(run_id, params=dict(params or {}), metrics=metrics, datasets=datasets)
    return _Logged(model_uri, run_id, git, git_source)


def _log_model(
    store: Store,
    model: Any,
    *,
    run_id: str | None,
    experiment: str | None,
    input_example: Any,
    signature: Any,
    params: Mapping[str, Any] | None,
    metrics: dict[str, float],
    datasets: list[tuple[Any, str]],
    code_path: Any,
    log_model_kwargs: Mapping[str, Any] | None,
) -> _Logged:
    """Log ``model`` here, or take the one a URI names."""
    if isinstance(model, str):
        return _take_logged(
            store,
            model,
            run_id=run_id,
            params=params,
            metrics=metrics,
            datasets=datasets,
            code_path=code_path,
        )
    return _log_here(
        store,
        model,
        run_id=run_id,
        experiment=experiment,
        input_example=input_example,
        signature=signature,
        params=params,
        metrics=metrics,
        datasets=datasets,
        code_path=code_path,
        log_model_kwargs=log_model_kwargs,
    )


def _version_tags(
    store: Store,
    logged: _Logged,
    metrics: dict[str, float],
    params: Mapping[str, Any] | None,
    fps: Mapping[str, Fingerprint],
    sources: Mapping[str, str | None],
    tags: Mapping[str, str] | None,
) -> tuple[dict[str, str], str]:
    """Every ``mlgate.*`` lineage tag of the new version (the artifact digest taken from the
    files as the registry serves them), and the caller's own tags; and the artifact digest."""
    artifact, env = _artifact_facts(store, logged.model_uri, declared_env=False)
    run_metrics: dict[str, float] = {}
    run_params: dict[str, str] = {}
    if logged.run_id:
        run = store.get_run(logged.run_id)
        run_metrics, run_params = _finite(run.metrics), dict(run.params)
    run_metrics.update(metrics)
    run_params.update({k: str(v) for k, v in (params or {}).items()})

    version_tags: dict[str, str] = {
        Tags.MLGATE_VERSION: __version__,
        **_git_tags(logged.git, logged.git_source),
        Tags.ARTIFACT_DIGEST: artifact.digest,
        Tags.ARTIFACT_FILES: str(artifact.files),
        **_env_tags(env),
        Tags.REGISTERED_BY: lineage.actor(),
        Tags.REGISTERED_AT: _now(),
        Tags.METRICS: _limit_json(run_metrics),
        Tags.PARAMS: _limit_json(run_params),
    }
    ci = lineage.ci_run_url()
    if ci:
        version_tags[Tags.CI_RUN_URL] = ci
    for role, fp in fps.items():
        version_tags.update(_data_tags(role, fp, sources[role]))
    version_tags.update(dict(tags or {}))
    return version_tags, artifact.digest


def _ledger(store: Store, policy: Any) -> Ledger:
    """The ledger named by ``policy`` (a Policy, a path, or None: search upward)."""
    from mlgate.promotion.workflow import ledger_for

    return ledger_for(store, policy)


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
    policy: Any = None,
    store: Store | None = None,
) -> Registration:
    """Register a model version with full lineage, and record it in the ledger.

    Args:
        model: a fitted scikit-learn estimator or ``mlflow.pyfunc.PythonModel`` (logged for you),
            or the URI of a model already logged (``runs:/<run>/<name>``, ``models:/m-...``).
        name: the registered model name (no ``/``, ``:`` or ``@``).
        train_data: training data (DataFrame, array, or path to a file/directory).
        eval_data: evaluation data (same forms).
        target: the label column in ``train_data``/``eval_data`` DataFrames (for MLflow's UI).
        params: parameters to log on the run and record on the version.
        metrics: metrics to log on the run and record on the version (these are what metric
            gates compare; they should be computed on ``eval_data``). Finite numbers only.
        input_example: logged with the model; a signature is inferred from it when the model
            is logged here and ``signature`` is not given.
        signature: an ``mlflow.models.ModelSignature`` for the logged model.
        run_id: the run to log into (default: the active run, else a new run).
        experiment: experiment for a new run (default ``mlgate``).
        tags: extra version tags (must not start with ``mlgate.``).
        code_path: where to read the git state when the model is logged here (default: the
            working directory). A model given by URI takes its run's git tags instead.
        log_model_kwargs: extra arguments for the flavor's ``log_model`` when mlgate logs the
            model. scikit-learn's own types (trees) are trusted for skops automatically.
        policy: a policy (or its path) naming the ledger experiment (default: search upward).
        store: the tracking server (default: see :class:`mlgate.Store`). Registering is what
            creates a SQLite store that does not exist yet.

    Returns:
        A :class:`Registration` with the new version, the recorded lineage and the
        :class:`~mlgate.promotion.ledger.RegistrationEvent` (unrecorded, ``record_id`` None, if
        the server refused the ledger write: the version exists either way).

    Raises:
        UsageError: bad arguments (name, metrics, an unfitted estimator). NotFoundError: a data
            path, run or logged model does not exist. TrackingServerError / NotPermittedError:
            the server failed or refused.
    """
    name, clean_metrics = _check_arguments(model, name, metrics, tags)
    store = store or Store()
    ledger = _ledger(store, policy)  # a malformed policy fails before anything is written

    # Fingerprint first: a bad data path fails before anything is written to the server.
    inputs = {"train": train_data, "eval": eval_data}
    fps, sources = _fingerprint_all(inputs)
    datasets = _datasets(store, inputs, fps, sources, target)
    logged = _log_model(
        store,
        model,
        run_id=run_id,
        experiment=experiment,
        input_example=input_example,
        signature=signature,
        params=params,
        metrics=clean_metrics,
        datasets=datasets,
        code_path=code_path,
        log_model_kwargs=log_model_kwargs,
    )
    version_tags, digest = _version_tags(store, logged, clean_metrics, params, fps, sources, tags)
    version = store.register(logged.model_uri, name, version_tags)
    event = registration_event(
        version.name,
        version.version,
        run_id=logged.run_id,
        model_uri=logged.model_uri,
        artifact_digest=digest,
    )
    return Registration(
        version=version,
        model_uri=logged.model_uri,
        run_id=logged.run_id,
        lineage=_lineage(version),
        data=fps,
        event=ledger.append_if_permitted(event),
    )


def _lineage(v: VersionRecord) -> lineage.Lineage:
    return lineage.lineage_from_tags(
        v.name, v.version, v.tags, run_id=v.run_id, source=v.source, aliases=v.aliases
    )


@dataclass(frozen=True)
class Attachment:
    """What ``attach`` did: the tags it wrote (empty when the version already had them all)."""

    version: VersionRecord
    lineage: lineage.Lineage
    written: dict[str, str]
    replaced: dict[str, tuple[str, str]]
    event: AttachEvent | None = None  # the ledger event, when something was written

    @property
    def changed(self) -> bool:
        return bool(self.written)


#: Recorded facts that ``attach`` never overwrites with a different value unless forced.
_GUARDED = (
    Tags.ARTIFACT_DIGEST,
    Tags.data("train", "fingerprint"),
    Tags.data("eval", "fingerprint"),
)


def _group(key: str) -> str:
    """Tags that describe one fact together: the artifact, or one data role."""
    if key.startswith("mlgate.artifact."):
        return "artifact"
    if key.startswith("mlgate.data."):
        return ".".join(key.split(".")[:3])
    return key


def _version_to_attach(store: Store, ref: str) -> VersionRecord:
    from mlgate.registry.refs import parse_ref, resolve

    parsed = parse_ref(ref)
    if parsed.version is None and parsed.alias is None:
        raise UsageError(
            f"say which version of {ref!r} to attach to (MODEL/VERSION or MODEL@ALIAS)"
        )
    return resolve(store, parsed)


def _observed_lineage(
    store: Store, v: VersionRecord, train_data: DataLike | None, eval_data: DataLike | None
) -> dict[str, str]:
    """The lineage tags ``v`` should have: its artifacts' digest, the environment the model
    declares, its run's git state, metrics and params (where not recorded), the data's
    fingerprints."""
    fps, sources = _fingerprint_all({"train": train_data, "eval": eval_data})
    artifact, env = _artifact_facts(store, f"models:/{v.name}/{v.version}", declared_env=True)
    wanted: dict[str, str] = {
        Tags.ARTIFACT_DIGEST: artifact.digest,
        Tags.ARTIFACT_FILES: str(artifact.files),
        **_env_tags(env),
    }
    run = store.get_run(v.run_id) if v.run_id else None
    if Tags.GIT_COMMIT not in v.tags:
        git = lineage.git_from_run(run.tags) if run else None
        if git is not None:
            wanted.update(_git_tags(git, lineage.GIT_FROM_RUN))
    if run is not None:
        if Tags.METRICS not in v.tags:
            wanted[Tags.METRICS] = _limit_json(_finite(run.metrics))
        if Tags.PARAMS not in v.tags:
            wanted[Tags.PARAMS] = _limit_json(run.params)
    for role, fp in fps.items():
        wanted.update(_data_tags(role, fp, sources[role]))
    return wanted


def _tags_to_write(
    v: VersionRecord, wanted: Mapping[str, str], force: bool
) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """What attach writes, and the recorded values it replaces (refused unless ``force``)."""
    replaced = {
        key: (v.tags[key], value)
        for key, value in wanted.items()
        if key in _GUARDED and v.tags.get(key) not in (None, value)
    }
    if replaced and not force:
        key, (old, new) = next(iter(replaced.items()))
        raise UsageError(
            f"{v.ref} records {key} = {old}, but its artifacts/data now give {new}: refusing to "
            "overwrite recorded lineage",
            hint="if the recorded value is wrong, run again with --force (recorded in the ledger)",
        )
    # Attach adds what is missing; recorded facts stay as they are, except a guarded group
    # (the artifact, one data role) that --force replaces as a whole.
    forced = {_group(k) for k in replaced}
    written = {
        k: val
        for k, val in wanted.items()
        if k not in v.tags or (_group(k) in forced and v.tags[k] != val)
    }
    return written, replaced


def _finish_interrupted(ledger: Ledger, v: VersionRecord, but: str | None = None) -> None:
    """Settle the ``pending`` attach events of ``v`` whose tags it now holds: an attach that was
    interrupted after (or finished by a rerun after) writing them, which ``status`` would
    otherwise report forever. One whose tags are still missing stays pending."""
    for e in ledger.events(v.name, outcome="pending", kind=AttachEvent.kind, limit=50):
        if e.record_id == but or not isinstance(e, AttachEvent) or e.version != v.version:
            continue
        if e.written and all(key in v.tags for key in e.written):
            ledger.settle(e, "attached", f"{e.message} (finished by a later attach)")


def attach(
    ref: str,
    *,
    train_data: DataLike | None = None,
    eval_data: DataLike | None = None,
    force: bool = False,
    reason: str = "",
    policy: Any = None,
    store: Store | None = None,
) -> Attachment:
    """Add mlgate's lineage to an existing version (e.g. one registered with plain MLflow).

    Computes the artifact digest from the version's artifacts, fingerprints the given data,
    reads the environment from the model's ``python_env.yaml``/``requirements.txt`` and the git
    state from its run's ``mlflow.source.git.*`` tags, and writes them as ``mlgate.*`` tags on the
    same version. Idempotent: tags that already hold the value are left alone, and a second call
    writes nothing. A recorded artifact digest or data fingerprint with a *different* value is
    never overwritten unless ``force``; every call that writes is recorded in the ledger.

    Args:
        ref: ``MODEL/VERSION`` or ``MODEL@ALIAS``.
        train_data, eval_data: data to fingerprint (DataFrame, array or path).
        force: overwrite a different recorded digest (recorded in the ledger, with ``reason``).
        reason: why; stored in the ledger event.
        policy: a policy (or its path) naming the ledger experiment (default: search upward).

    Returns:
        An :class:`Attachment`; its ``event`` is the
        :class:`~mlgate.promotion.ledger.AttachEvent` (None when nothing was written).

    Raises:
        NotFoundError: the version or a data path does not exist. UsageError: the version
            records a different digest and ``force`` is not set.
    """
    store = store or Store()
    v = _version_to_attach(store, ref)
    written, replaced = _tags_to_write(v, _observed_lineage(store, v, train_data, eval_data), force)
    if not written:
        _finish_interrupted(_ledger(store, policy), v)
        return Attachment(version=v, lineage=_lineage(v), written={}, replaced={})
    written.update({Tags.ATTACHED_BY: lineage.actor(), Tags.ATTACHED_AT: _now()})
    if Tags.MLGATE_VERSION not in v.tags:
        written[Tags.MLGATE_VERSION] = __version__
    ledger = _ledger(store, policy)
    # Recorded before the tags are written and settled after, like an alias move, so no write
    # of lineage is ever missing from the ledger (an interrupted one stays "pending").
    pending = ledger.append(
        attach_event(v.name, v.version, written=tuple(written), forced=replaced, reason=reason)
    )
    store.set_version_tags(v.name, v.version, written)
    event = ledger.settle(pending, "attached")
    now = store.get_version(v.name, v.version)
    _finish_interrupted(ledger, now, but=event.record_id)
    return Attachment(
        version=now, lineage=_lineage(now), written=written, replaced=replaced, event=event
    )


def show(ref: str, *, store: Store | None = None) -> lineage.Lineage:
    """The lineage recorded for ``MODEL``, ``MODEL@ALIAS`` or ``MODEL/VERSION``.

    Fields mlgate did not record (a version registered with plain MLflow) are read from the
    version's run where MLflow recorded them (git tags, params, metrics) and named in
    ``Lineage.from_run``.
    """
    from mlgate.registry.refs import resolve

    store = store or Store()
    v = resolve(store, ref)
    info = _lineage(v)
    needs_run = not info.git.present or not info.metrics or not info.params
    if v.run_id and needs_run:
        try:
            run = store.get_run(v.run_id)
        except NotFoundError:  # the run was deleted: show what the version holds
            return info
        info = lineage.with_run_facts(info, run.tags, run.metrics, run.params)
    return info
