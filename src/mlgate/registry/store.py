"""Registry and tracking: the one class that calls ``MlflowClient``.

Everything else in mlgate works with the small typed records below (``VersionRecord``,
``RunRecord``, ...) and with :class:`Store`'s methods. Failures are translated by
:mod:`mlgate.registry._translate`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgate import config
from mlgate.errors import (
    AlreadyExistsError,
    NoStoreError,
    NotFoundError,
    TrackingServerError,
    UsageError,
)
from mlgate.registry._translate import _calling
from mlgate.registry.pyfunc import load_local_pyfunc

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# MLflow retries a failing HTTP call 7 times with a doubling backoff (minutes in all) and waits
# 120 s for an answer. A promotion in CI should fail in seconds, so mlgate lowers the defaults;
# a user's own setting of these variables always wins.
_RETRIES = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
# What mlflow.set_tracking_uri/set_registry_uri write besides module state (see Store._fluent).
_FLUENT_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_FLUENT_LOCK = threading.RLock()
#: MLflow's own output during mlgate's calls goes here, at DEBUG (see quiet_mlflow).
_CHATTER = logging.getLogger("mlgate.mlflow")
_NO_RUN_URL = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


class _Forward(logging.Handler):
    """Hands MLflow's log records to the ``mlgate.mlflow`` logger at DEBUG."""

    def emit(self, record: logging.LogRecord) -> None:
        _CHATTER.debug("%s: %s", record.name, record.getMessage())


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's chatter during one of mlgate's calls (its warnings, its INFO lines, the
    "Successfully registered model" it prints) goes to the ``mlgate.mlflow`` logger at DEBUG
    instead of stderr: the library never prints.

    Only MLflow's own stream is silenced, and only for the call: the caller's warning filters,
    its logging configuration and MLflow's stream are as they were afterwards.
    """
    from mlflow.utils import logging_utils

    stream = logging_utils.MLFLOW_LOGGING_STREAM
    mlflow_log = logging.getLogger("mlflow")
    forward = _Forward()
    with _FLUENT_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        was = stream.enabled
        saved_env = {_NO_RUN_URL: os.environ.get(_NO_RUN_URL)}
        stream.enabled = False
        os.environ[_NO_RUN_URL] = "true"  # "View run ... at: URL", printed to stdout
        mlflow_log.addHandler(forward)
        try:
            yield
        finally:
            mlflow_log.removeHandler(forward)
            restore_environ(saved_env)
            stream.enabled = was
            for w in caught:
                _CHATTER.debug("%s: %s", w.category.__name__, w.message)


def restore_environ(saved: dict[str, str | None]) -> None:
    """Put environment variables back as ``saved`` had them (None: the variable was unset)."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


@dataclass(frozen=True)
class VersionRecord:
    """A registered model version, as mlgate needs it."""

    name: str
    version: str
    run_id: str | None
    source: str
    model_id: str | None
    status: str
    created_ms: int
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class ModelRecord:
    """A registered model: its aliases (alias -> version) and tags."""

    name: str
    aliases: dict[str, str]
    tags: dict[str, str]


@dataclass(frozen=True)
class RunRecord:
    """A tracking run: what gates read from it."""

    run_id: str
    experiment_id: str
    start_ms: int
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


def _version_record(mv: Any) -> VersionRecord:
    return VersionRecord(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id or None,
        source=mv.source or "",
        model_id=getattr(mv, "model_id", None) or logged_model_id(mv.source or ""),
        status=str(mv.status),
        created_ms=int(mv.creation_timestamp or 0),
        tags=dict(mv.tags or {}),
        aliases=tuple(getattr(mv, "aliases", ()) or ()),
    )


def logged_model_id(source: str) -> str | None:
    """MLflow 3 versions made from a logged model have source ``models:/m-<id>``."""
    if source.startswith("models:/m-") and "/" not in source[len("models:/") :]:
        return source[len("models:/") :]
    return None


def _run_record(run: Any) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        start_ms=int(run.info.start_time or 0),
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        tags=dict(run.data.tags),
    )


def _run_record_json(run: dict[str, Any]) -> RunRecord:
    """A run of the REST API's JSON answer (proto3 JSON: fields at their default are left out)."""
    info, data = run.get("info", {}), run.get("data", {})

    def pairs(items: list[dict[str, Any]], default: Any) -> dict[str, Any]:
        return {i["key"]: i.get("value", default) for i in items}

    return RunRecord(
        run_id=info.get("run_id") or info.get("run_uuid", ""),
        experiment_id=str(info.get("experiment_id", "")),
        start_ms=int(info.get("start_time") or 0),
        metrics={k: float(v) for k, v in pairs(data.get("metrics", []), 0.0).items()},
        params=pairs(data.get("params", []), ""),
        tags=pairs(data.get("tags", []), ""),
    )


class Store:
    """Typed access to one MLflow tracking server and its model registry.

    Args:
        tracking_uri: where to connect. Default: ``$MLFLOW_TRACKING_URI``, else a URI set with
            ``mlflow.set_tracking_uri`` in this process, else the embedded SQLite store.
    """

    def __init__(self, tracking_uri: str | None = None) -> None:
        retries = os.environ.get(_RETRIES)
        #: The user set their own retry budget (e.g. to ride out a server restart): then a
        #: refused connection is retried like any other failure, not refused at once.
        self._user_retries = retries is not None and retries != _HTTP_DEFAULTS[_RETRIES]
        for key, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        self.uri = tracking_uri or _resolve_uri()
        self._client: MlflowClient | None = None

    # ------------------------------------------------------------------ plumbing
    @property
    def display_uri(self) -> str:
        """The URI with any credentials hidden."""
        return config.redact(self.uri)

    @property
    def client(self) -> MlflowClient:
        return self._connect(create=False)

    def _connect(self, *, create: bool) -> MlflowClient:
        """The client, made on first use after checking the store can be there.

        Only the calls that start a model's history (logging a model, registering a version)
        pass ``create=True``: every other call on a SQLite file that does not exist reports
        "no tracking store" instead of leaving an empty database behind.
        """
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._check_reachable(create=create)
            with quiet_mlflow(), _calling(f"connecting to {self.display_uri}"):
                self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    def _check_reachable(self, *, create: bool) -> None:
        """Fail in one line, before MLflow's retries, when the store cannot be there.

        A SQLite file that does not exist is "no tracking store" unless ``create`` (so a
        read-only command never leaves an empty database behind). An HTTP server that
        refuses the connection fails at once (MLflow would retry for seconds, then print a
        400-character error) unless the user set ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` to wait
        for a restarting server; 5xx answers and timeouts keep MLflow's bounded retries.
        """
        db = config.sqlite_path(self.uri) or _file_store_path(self.uri)
        if db is not None:
            if db.exists():
                return
            if not create:
                elsewhere = next(
                    (p / db.name for p in db.resolve().parent.parents if (p / db.name).is_file()),
                    None,
                )
                hint = (
                    f"there is one at {elsewhere}: run from there, set MLGATE_HOME, or add an "
                    "mlgate.toml beside it"
                    if elsewhere is not None
                    else "register a model first (that creates it), or point "
                    "MLFLOW_TRACKING_URI / --tracking-uri at your tracking server"
                )
                raise NoStoreError(f"no tracking store at {db}", hint=hint)
            db.parent.mkdir(parents=True, exist_ok=True)
            return
        if not self._user_retries:
            _preflight(self.uri, self.display_uri)

    @contextlib.contextmanager
    def _fluent(self) -> Iterator[None]:
        """MLflow's fluent API (``log_model``, ``register_model``, ``models:/`` downloads), which
        follows global state, pointed at this store for one call, and put back afterwards.

        ``mlflow.set_tracking_uri`` also writes ``$MLFLOW_TRACKING_URI`` into the process's
        environment, so left set it would redirect the user's own ``mlflow`` calls and the next
        ``Store()`` of a notebook to whichever store mlgate used last. The lock keeps two
        threads' calls from restoring each other's state mid-call.
        """
        import mlflow
        from mlflow.tracking._model_registry import utils as registry_state
        from mlflow.tracking._tracking_service import utils as tracking_state

        self.client  # noqa: B018 - creates the client (and the embedded store's directory)
        with _FLUENT_LOCK, quiet_mlflow():
            saved_env = {k: os.environ.get(k) for k in _FLUENT_ENV}
            saved = (tracking_state._tracking_uri, registry_state._registry_uri)
            mlflow.set_tracking_uri(self.uri)
            mlflow.set_registry_uri(self.uri)
            try:
                yield
            finally:
                tracking_state._tracking_uri, registry_state._registry_uri = saved
                restore_environ(saved_env)

    # ------------------------------------------------------------------ registered models
    def get_model(self, name: str) -> ModelRecord:
        with _calling(f"registered model {name!r}"):
            rm = self.client.get_registered_model(name)
        aliases = {str(k): str(v) for k, v in (rm.aliases or {}).items()}
        return ModelRecord(name=rm.name, aliases=aliases, tags=dict(rm.tags or {}))

    def model_exists(self, name: str) -> bool:
        try:
            self.get_model(name)
        except NotFoundError:
            return False
        return True

    def ensure_model(self, name: str, description: str | None = None) -> None:
        try:
            with _calling(f"registered model {name!r}"):
                self.client.create_registered_model(name, description=description)
        except AlreadyExistsError:
            pass

    def create_model_exclusive(self, name: str, tags: dict[str, str], description: str) -> bool:
        """Create a registered model; False if the name is taken (atomic on the server)."""
        try:
            with _calling(f"registered model {name!r}"):
                self.client.create_registered_model(name, tags=tags, description=description)
        except AlreadyExistsError:
            return False
        return True

    def delete_model(self, name: str) -> bool:
        """Delete a registered model; False when it did not exist."""
        try:
            with _calling(f"registered model {name!r}"):
                self.client.delete_registered_model(name)
        except NotFoundError:
            return False
        return True

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        with _calling(f"tag {key!r} on registered model {name!r}"):
            self.client.set_registered_model_tag(name, key, value)

    # ------------------------------------------------------------------ versions and aliases
    def get_version(self, name: str, version: str | int) -> VersionRecord:
        with _calling(f"model version {name}/{version}"):
            return _version_record(self.client.get_model_version(name, str(version)))

    def artifact_location(self, name: str, version: str) -> str:
        """Where the version's files really are (``s3://…``, ``mlflow-artifacts:/…``, a path),
        as opposed to its ``models:/`` source."""
        with _calling(f"artifact location of {name}/{version}"):
            return str(self.client.get_model_version_download_uri(name, str(version)))

    def version_by_alias(self, name: str, alias: str) -> VersionRecord | None:
        """The version behind ``name@alias``; None when the alias is not set.

        Only ``RESOURCE_DOES_NOT_EXIST`` for an existing model means "not set"; a missing model
        raises :class:`NotFoundError` and a broken server raises, so neither is mistaken for a
        first promotion.
        """
        model = self.get_model(name)  # NotFoundError if the model itself is missing
        if alias not in model.aliases:
            return None
        try:
            with _calling(f"alias {name}@{alias}"):
                return _version_record(self.client.get_model_version_by_alias(name, alias))
        except NotFoundError:
            return None

    def search_versions(self, name: str) -> list[VersionRecord]:
        """Every version of a model, newest first (all pages)."""
        out: list[VersionRecord] = []
        token: str | None = None
        safe = name.replace("'", "\\'")
        with _calling(f"versions of {name!r}"):
            while True:
                page = self.client.search_model_versions(
                    f"name = '{safe}'", max_results=10_000, page_token=token
                )
                out.extend(_version_record(mv) for mv in page)
                token = page.token
                if not token:
                    break
        out.sort(key=lambda v: int(v.version), reverse=True)
        return out

    def latest_version(self, name: str) -> VersionRecord | None:
        """The highest-numbered version of a model (one small query, however many versions)."""
        safe = name.replace("'", "\\'")
        with _calling(f"versions of {name!r}"):
            page = self.client.search_model_versions(
                f"name = '{safe}'", max_results=1, order_by=["version_number DESC"]
            )
        return _version_record(page[0]) if page else None

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        with _calling(f"tags on model version {name}/{version}"):
            for key, value in tags.items():
                self.client.set_model_version_tag(name, version, key, value)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        with _calling(f"moving {name}@{alias} to version {version}"):
            self.client.set_registered_model_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        try:
            with _calling(f"deleting alias {name}@{alias}"):
                self.client.delete_registered_model_alias(name, alias)
        except NotFoundError:
            pass

    def register(self, model_uri: str, name: str, tags: dict[str, str]) -> VersionRecord:
        """Create a model version with its tags in one call (the version never lacks them)."""
        import mlflow

        self._connect(create=True)
        with self._fluent(), _calling(f"registering {model_uri} as {name!r}"):
            mv = mlflow.register_model(model_uri, name, tags=tags, await_registration_for=300)
        return self.get_version(name, str(mv.version))

    # ------------------------------------------------------------------ runs and experiments
    def get_run(self, run_id: str) -> RunRecord:
        with _calling(f"run {run_id}"):
            return _run_record(self.client.get_run(run_id))

    def experiment_id(self, name: str, *, create: bool = True) -> str | None:
        """The id of the experiment called ``name``; created when missing and ``create``."""
        with _calling(f"experiment {name!r}"):
            exp = self.client.get_experiment_by_name(name)
            if exp is not None:
                if exp.lifecycle_stage == "deleted":
                    self.client.restore_experiment(exp.experiment_id)
                return str(exp.experiment_id)
            if not create:
                return None
        location = None
        if config.is_embedded(self.uri):
            location = config.embedded_artifact_root(self.uri).as_uri()
        try:
            with _calling(f"experiment {name!r}"):
                return str(self.client.create_experiment(name, artifact_location=location))
        except AlreadyExistsError:  # created by a racing process: use theirs
            with _calling(f"experiment {name!r}"):
                raced = self.client.get_experiment_by_name(name)
            if raced is None:
                raise TrackingServerError(
                    f"experiment {name!r} vanished while being created"
                ) from None
            return str(raced.experiment_id)

    def create_record_run(
        self, experiment_id: str, run_name: str, tags: dict[str, str], start_ms: int
    ) -> str:
        """Create a finished run that only carries tags: how ledger events are stored."""
        with _calling("writing a ledger event"):
            run = self.client.create_run(
                experiment_id, start_time=start_ms, tags=tags, run_name=run_name
            )
            # update_run, not set_terminated: the latter prints a "View run" URL to stdout for
            # every event, which would land in a notebook cell or in --json output.
            self.client.update_run(run.info.run_id, status="FINISHED")
        return str(run.info.run_id)

    def set_run_tags(self, run_id: str, tags: dict[str, str]) -> None:
        with _calling(f"updating ledger event {run_id}"):
            for key, value in tags.items():
                self.client.set_tag(run_id, key, value)

    def search_runs(
        self,
        experiment_id: str,
        filter_string: str,
        *,
        order_by: list[str] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs of one experiment matching a filter, across pages, up to ``limit``."""
        out: list[RunRecord] = []
        token: str | None = None
        rest = self._rest_search()
        with _calling("searching runs"):
            while True:
                want = 1000 if limit is None else min(1000, limit - len(out))
                if rest is not None:
                    records, token = rest(experiment_id, filter_string, want, order_by, token)
                    out.extend(records)
                else:
                    page = self.client.search_runs(
                        [experiment_id],
                        filter_string=filter_string,
                        max_results=want,
                        order_by=order_by,
                        page_token=token,
                    )
                    out.extend(_run_record(r) for r in page)
                    token = page.token
                if not token or (limit is not None and len(out) >= limit):
                    break
        return out

    def _rest_search(self) -> Any:
        """A search_runs that reads the server's JSON answer directly, for MLflow's REST store.

        MLflow's client turns the answer into protobuf messages and then into ``Run`` objects:
        for 1,000 ledger events that took 0.16-0.27 s of CPU here, against 0.02 s for the JSON
        itself (``mlgate history`` of a long ledger is mostly that). The request goes through
        MLflow's own ``http_request`` with the store's credentials, so authentication, TLS
        settings, retries and workspace headers are MLflow's. None for any other store
        (SQLite, Databricks): those take the client's path.
        """
        from mlflow.protos.service_pb2 import SearchRuns
        from mlflow.store.tracking.rest_store import RestStore
        from mlflow.utils import rest_utils

        store = getattr(getattr(self.client, "_tracking_client", None), "store", None)
        info = getattr(RestStore, "_METHOD_TO_INFO", {}).get(SearchRuns)
        if type(store) is not RestStore or info is None:
            return None
        endpoint, method = info

        def search(
            experiment_id: str,
            filter_string: str,
            max_results: int,
            order_by: list[str] | None,
            token: str | None,
        ) -> tuple[list[RunRecord], str | None]:
            body: dict[str, Any] = {
                "experiment_ids": [str(experiment_id)],
                "filter": filter_string,
                "run_view_type": "ACTIVE_ONLY",
                "max_results": max_results,
                "order_by": list(order_by or []),
            }
            if token:
                body["page_token"] = token
            response = rest_utils.http_request(  # type: ignore[no-untyped-call]
                host_creds=store.get_host_creds(),
                endpoint=endpoint,
                method=method,
                json=body,
                raise_on_status=False,
            )
            data = rest_utils.verify_rest_response(response, endpoint).json()
            runs = [_run_record_json(r) for r in data.get("runs", [])]
            return runs, data.get("next_page_token") or None

        return search

    def logged_models(self, run_id: str) -> list[tuple[str, str]]:
        """The models a run logged, as ``(name, "models:/m-<id>")``, oldest first."""
        run = self.get_run(run_id)
        safe = run_id.replace("'", "")
        with _calling(f"logged models of run {run_id}"):
            found = self.client.search_logged_models(
                experiment_ids=[run.experiment_id],
                filter_string=f"source_run_id = '{safe}'",
                order_by=[{"field_name": "creation_timestamp", "ascending": True}],
            )
        return [(str(m.name), f"models:/{m.model_id}") for m in found]

    def logged_model_run(self, model_id: str) -> str | None:
        """The run that logged ``models:/m-<id>`` (None when it was logged outside a run)."""
        with _calling(f"logged model {model_id}"):
            found = self.client.get_logged_model(model_id)
        return str(found.source_run_id) if found.source_run_id else None

    def run_has_artifacts(self, run_id: str, path: str) -> bool:
        """True when the run's own artifact store has files under ``path``."""
        with _calling(f"artifacts of run {run_id}"):
            return bool(self.client.list_artifacts(run_id, path))

    # ------------------------------------------------------------------ models and artifacts
    def download(self, uri: str, dst: str | None = None) -> str:
        """Download artifacts at ``uri`` (``runs:/``, ``models:/``, ...) to a local directory."""
        import mlflow

        dst = dst or tempfile.mkdtemp(prefix="mlgate-artifacts-")
        with self._fluent(), _calling(f"downloading {uri}"):
            return str(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=dst, tracking_uri=self.uri
                )
            )

    def load_pyfunc(self, uri: str) -> Any:
        with self._fluent():
            return load_local_pyfunc(uri)

    def log_model(
        self,
        model: Any,
        *,
        run_id: str | None,
        experiment: str | None,
        input_example: Any = None,
        signature: Any = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        datasets: list[tuple[Any, str]] | None = None,
        run_tags: dict[str, str] | None = None,
        log_model_kwargs: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        """Log ``model`` (sklearn or ``mlflow.pyfunc.PythonModel``) with its params, metrics and
        datasets in a run; returns ``(model_uri, run_id)``.

        Uses ``run_id`` when given, the caller's active run when there is one, else a new run in
        ``experiment`` that is ended afterwards.
        """
        import mlflow

        self._connect(create=True)
        with self._fluent(), _calling("logging the model"):
            active = mlflow.active_run()
            if run_id is not None and (active is None or active.info.run_id != run_id):
                ctx: Any = mlflow.start_run(run_id=run_id)
            elif active is not None:
                ctx = contextlib.nullcontext(active)
            else:
                exp_id = self.experiment_id(experiment or "mlgate")
                ctx = mlflow.start_run(experiment_id=exp_id)
            with ctx as run:
                if run_tags:
                    mlflow.set_tags(run_tags)
                if params:
                    mlflow.log_params(params)
                if metrics:
                    mlflow.log_metrics(metrics)
                for dataset, context in datasets or []:
                    mlflow.log_input(dataset, context=context)
                flavor = _flavor_module(model)
                kwargs = dict(log_model_kwargs or {})
                if flavor.__name__ == "mlflow.sklearn":
                    kwargs = _skops_kwargs(model, kwargs)
                # mlflow.pyfunc.log_model's first positional slot is the deprecated
                # artifact_path: a PythonModel goes in python_model= (artifacts, code paths
                # and the rest come through log_model_kwargs).
                slot = {"python_model": model} if flavor.__name__ == "mlflow.pyfunc" else {}
                info = flavor.log_model(
                    *(() if slot else (model,)),
                    name="model",
                    **slot,
                    signature=signature,
                    input_example=input_example,
                    **kwargs,
                )
                return str(info.model_uri), str(run.info.run_id)

    def log_run_extras(
        self,
        run_id: str,
        *,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        datasets: list[tuple[Any, str]] | None = None,
    ) -> None:
        """Log params, metrics and dataset inputs to an existing run."""
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        with quiet_mlflow(), _calling(f"logging to run {run_id}"):
            self.client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
                params=[Param(k, str(v)) for k, v in (params or {}).items()],
            )
            if datasets:
                from mlflow.entities import DatasetInput, InputTag

                inputs = [
                    DatasetInput(ds._to_mlflow_entity(), [InputTag("mlflow.data.context", ctx)])
                    for ds, ctx in datasets
                ]
                self.client.log_inputs(run_id, inputs)

    @staticmethod
    def pandas_dataset(
        df: Any, *, name: str, digest: str, source: str | None, targets: str | None
    ) -> Any:
        from mlflow.data.pandas_dataset import from_pandas

        extra: dict[str, Any] = {"source": source} if source else {}
        with quiet_mlflow():
            return from_pandas(df, name=name, digest=digest, targets=targets, **extra)

    @staticmethod
    def path_dataset(*, name: str, digest: str, source: str) -> Any:
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        with quiet_mlflow():
            # mypy sees MetaDataset.profile as abstract; MLflow implements it as a property.
            return MetaDataset(  # type: ignore[abstract]
                source=resolve_dataset_source(source), name=name, digest=digest
            )

    def model_info(self, uri: str) -> Any:
        """MLflow's ModelInfo (flavors, signature) for a model URI."""
        import mlflow.models

        with self._fluent(), _calling(f"reading model metadata of {uri}"):
            return mlflow.models.get_model_info(uri)

    def input_schema(self, uri: str) -> list[tuple[str, str, bool]] | None:
        """The model's input columns as ``(name, type, required)``; None without a signature."""
        info = self.model_info(uri)
        sig = getattr(info, "signature", None)
        if sig is None or sig.inputs is None:
            return None
        cols: list[tuple[str, str, bool]] = []
        for i, spec in enumerate(sig.inputs.inputs):
            name = getattr(spec, "name", None) or f"input{i}"
            kind = getattr(spec, "type", None)
            type_name = getattr(kind, "name", None) or str(kind)
            if hasattr(spec, "shape") and not hasattr(spec, "required"):
                type_name = f"{type_name}{list(spec.shape)}"
            cols.append((str(name), str(type_name), bool(getattr(spec, "required", True))))
        return cols

    @staticmethod
    def signature_from_example(model: Any, input_example: Any) -> Any:
        """The signature of ``model`` on ``input_example``; None for a ``PythonModel``, whose
        ``predict`` takes a context first: MLflow infers its signature from the example (or
        the type hints) when it logs it."""
        import mlflow.pyfunc

        if isinstance(model, mlflow.pyfunc.PythonModel) or not hasattr(model, "predict"):
            return None
        from mlflow.models import infer_signature

        return infer_signature(input_example, model.predict(input_example))

    @staticmethod
    def infer_signature(model_input: Any, model_output: Any) -> Any:
        from mlflow.models import infer_signature

        return infer_signature(model_input, model_output)


#: Packages whose own types mlgate trusts when it saves a model with skops: the user already
#: runs their code to train, and their types are what every tree model holds.
_TRUSTED_PACKAGES = ("sklearn.", "numpy.", "scipy.")


def _skops_kwargs(model: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``log_model`` arguments that let MLflow's default (skops) format save ``model``.

    skops refuses to load any type not on an allow-list, and scikit-learn's own tree types
    (``sklearn.tree._tree.Tree``) are not on it, so forests and gradient boosting fail to log
    unless the caller trusts them. mlgate trusts the types of scikit-learn, numpy and scipy that
    this model holds; another package's type is named in a :class:`UsageError` that says how to
    trust it through :func:`mlgate.register` (the caller never wrote the ``log_model`` call).
    """
    if "skops_trusted_types" in kwargs or kwargs.get("serialization_format", "skops") != "skops":
        return kwargs
    try:
        import skops.io
    except ImportError:  # MLflow then saves with another format: nothing to trust
        return kwargs
    try:
        untrusted = list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    except Exception:  # noqa: BLE001 - skops cannot save it at all: let MLflow say why
        return kwargs
    if not untrusted:
        return kwargs
    foreign = [t for t in untrusted if not t.startswith(_TRUSTED_PACKAGES)]
    if foreign:
        raise UsageError(
            f"the model holds types that MLflow's skops format only loads when trusted: "
            f"{', '.join(foreign)}",
            hint="if you trust them, pass log_model_kwargs={'skops_trusted_types': [...]} to "
            "mlgate.register (or serialization_format='cloudpickle'), or log the model yourself "
            "and register its URI",
        )
    return {**kwargs, "skops_trusted_types": untrusted}


def _flavor_module(model: Any) -> Any:
    """The MLflow flavor module that can log ``model``."""
    import mlflow.pyfunc

    if isinstance(model, mlflow.pyfunc.PythonModel):
        return mlflow.pyfunc
    module = type(model).__module__.split(".")[0]
    if module == "sklearn" or (hasattr(model, "get_params") and hasattr(model, "predict")):
        import mlflow.sklearn

        return mlflow.sklearn
    raise UsageError(
        f"mlgate cannot log a {type(model).__name__} directly",
        hint="log it with its MLflow flavor and pass the model URI or run id to mlgate.register",
    )


def _file_store_path(uri: str) -> Path | None:
    """The directory of MLflow's legacy file store (a plain path or ``file:`` URI), else None."""
    import urllib.parse

    if uri.startswith("file:"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(uri).path))
    if "://" not in uri and not uri.startswith(("sqlite:", "databricks", "uc:")):
        return Path(uri)
    return None


_CONNECT_TIMEOUT = 2.0
#: The longest a server that accepted the connection may stay silent (see answer_timeout).
_ANSWER_TIMEOUT = 10.0


def _preflight(uri: str, display: str) -> None:
    """One TCP connect to an http(s) tracking server: refused or unresolvable fails at once."""
    import socket
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    if urllib.request.getproxies() and not urllib.request.proxy_bypass(parts.hostname):
        return  # requests goes through the proxy; a direct connect proves nothing
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        conn = socket.create_connection((parts.hostname, port), timeout=_CONNECT_TIMEOUT)
    except ConnectionRefusedError:
        reason = "connection refused"
    except socket.gaierror:
        reason = f"cannot resolve host {parts.hostname!r}"
    except TimeoutError:
        reason = f"no answer within {_CONNECT_TIMEOUT:g} s"
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    else:
        with conn:
            wait = answer_timeout()
            if _answers(conn, parts, wait):
                return
        reason = f"no answer in {wait:g} s"
    raise TrackingServerError(f"cannot reach the tracking server at {display}: {reason}")


def answer_timeout() -> float:
    """Seconds a server that accepted the connection has to start answering mlgate's first
    request: 10, or ``$MLFLOW_HTTP_REQUEST_TIMEOUT`` as the user set it (longer too: a server
    behind scale-to-zero may take a while to wake). mlgate's own default for that variable
    (30 s per try, for MLflow's calls) does not count as the user's choice."""
    raw = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or ""
    if raw in ("", _HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"]):
        return _ANSWER_TIMEOUT
    try:
        timeout = float(raw)
    except ValueError:
        return _ANSWER_TIMEOUT
    return timeout if timeout > 0 else _ANSWER_TIMEOUT


def _answers(conn: Any, parts: Any, wait: float) -> bool:
    """Whether the server starts answering a ``HEAD /health`` within ``wait`` seconds.

    A server that accepts connections and never answers would otherwise hold every MLflow call
    for its timeout, once per retry (4 x 30 s and the backoff: over two minutes). Any answer
    counts, even an error status or a failed TLS handshake: only silence is refused, so a slow
    but live server is never failed here.
    """
    import ssl

    try:
        conn.settimeout(wait)
        if parts.scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname = False  # liveness only: MLflow checks the certificate
            context.verify_mode = ssl.CERT_NONE
            conn = context.wrap_socket(conn, server_hostname=parts.hostname)
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        conn.sendall(f"HEAD /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        conn.recv(1)
    except TimeoutError:
        return False
    except OSError:  # reset, TLS refused...: the server is there; MLflow reports the rest
        return True
    return True


def _resolve_uri() -> str:
    """$MLFLOW_TRACKING_URI, else a URI the user set with mlflow.set_tracking_uri, else embedded.

    Raises :class:`UsageError` when the variable is set but empty, or when the embedded default
    is refused (in CI); see :mod:`mlgate.config`.
    """
    explicit = config.explicit_tracking_uri()
    if explicit:
        return explicit
    try:
        import sys

        if "mlflow" in sys.modules:
            from mlflow.tracking._tracking_service import utils

            if utils.is_tracking_uri_set():  # type: ignore[no-untyped-call]
                return str(utils.get_tracking_uri())
    except (ImportError, AttributeError):
        pass
    return config.embedded_default()
