"""One function per use case: everything the ``mlgate`` command does, callable from Python.

Every command of the CLI is one call of a function here, and a notebook can make the same call.
The functions hold no logic of their own beyond checking and normalising their arguments (each
argument against its annotation, before anything is read or written: a wrong one is a
:class:`~mlgate.errors.UsageError` naming it, what it expects and what it got); each delegates to
the package that owns the use case (:mod:`mlgate.versioning`, :mod:`mlgate.promotion`,
:mod:`mlgate.deploy`, :mod:`mlgate.serving`). They share one shape:

* the model (a name, ``NAME/VERSION`` or ``NAME@ALIAS``) first, then keyword arguments only;
* ``store``: a :class:`~mlgate.registry.store.Store`, a tracking URI, or None
  (``$MLFLOW_TRACKING_URI``, else the embedded store) — every function that reads the registry;
* ``policy``: a :class:`~mlgate.promotion.policy.Policy`, a path to a policy file, or None
  (search upward from the working directory) — every function the policy shapes;
* ``actor``: who is acting, recorded in the ledger and on the version (None: the CI user, else
  the OS user) — every function that writes.

Progress (image builds, rollout steps, the server starting) is logged at INFO on the
``mlgate.build``, ``mlgate.rollout`` and ``mlgate.serve`` loggers; nothing here prints.
Errors are :mod:`mlgate.errors` classes. Importing this module is cheap: each function imports
what it delegates to when it is called.

    >>> import mlgate
    >>> mlgate.traffic("churn", weight=10, reason="canary")
    >>> mlgate.rollout("churn", ["http://serve-0:8080"], steps=[10, 50, 100])
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mlgate._arguments import Between, checker, deferred
from mlgate.errors import UsageError

if TYPE_CHECKING:
    from mlgate.deploy.build import BuildResult
    from mlgate.deploy.engine import Engine
    from mlgate.deploy.export import Export, ExportOptions
    from mlgate.deploy.tools import ToolsResult
    from mlgate.deploy.wheelhouse import Runner
    from mlgate.fingerprint import Fingerprint
    from mlgate.lineage import Lineage
    from mlgate.promotion.gates import Decision
    from mlgate.promotion.ledger import Event
    from mlgate.promotion.policy import Policy
    from mlgate.promotion.rollout import RolloutResult, RolloutState
    from mlgate.promotion.workflow import Status
    from mlgate.registry.store import Store
    from mlgate.serving.server import ServeConfig
    from mlgate.versioning.registration import Attachment, Registration


class _Current:
    _describe = "mlgate.CURRENT"

    def __repr__(self) -> str:
        return "CURRENT"


#: ``promote(expected=CURRENT)``: move only if the alias still points where it did when the
#: check started (the default). A version number, or None for "must not be set", instead.
CURRENT: Any = _Current()

#: The server says where it listens here (the CLI prints it on stderr).
_serve_log = logging.getLogger("mlgate.serve.start")

#: The kinds of ledger event (``history(kind=...)``, ``mlgate history --kind``).
EventKind = Literal["promote", "rollback", "traffic", "rollout", "register", "attach", "build"]
#: ``traffic(mode=...)``, ``serve(mode=...)``: the challenger answers its share, or only
#: scores copies.
TrafficMode = Literal["split", "shadow"]
Percent = Annotated[float, Between(0, 100)]

#: Every function below checks its arguments against its annotations before doing anything (a
#: wrong one is a UsageError naming it); these resolve the names imported for type checkers only.
_checked = checker(
    {
        "Store": deferred("mlgate.registry.store", "Store"),
        "Policy": deferred("mlgate.promotion.policy", "Policy"),
        "Engine": deferred("mlgate.deploy.engine", "Engine"),
        "ExportOptions": deferred("mlgate.deploy.export", "ExportOptions"),
        "Runner": Callable,
    }
)


def _store(store: Store | str | None) -> Store | None:
    """A Store for a tracking URI; a Store or None as they are (None: the packages' default)."""
    if isinstance(store, str):
        from mlgate.registry.store import Store

        return Store(store)
    return store


def _uri(store: Store | str | None) -> str | None:
    return store if store is None or isinstance(store, str) else store.uri


@contextlib.contextmanager
def _acting(actor: str | None) -> Iterator[None]:
    """Everything recorded inside the block names ``actor`` (None: the CI or OS user)."""
    from mlgate.lineage import acting_as

    if actor is not None and (not actor.strip() or "\n" in actor):
        raise UsageError(f"actor {actor!r}: give a non-empty name on one line")
    with acting_as(actor.strip() if actor is not None else None):
        yield


# --------------------------------------------------------------------------- lineage
@_checked
def fingerprint(data: Any, *, include_index: bool = False, no_cache: bool = False) -> Fingerprint:
    """The full-content BLAKE3 fingerprint of a DataFrame, Series, array, file or directory.

    A file's value equals what ``b3sum`` prints; a directory's covers every file's relative
    path and content. Unchanged files are served from the stat cache unless ``no_cache``.
    """
    from mlgate.fingerprint import fingerprint as run

    return run(data, include_index=include_index, use_cache=not no_cache)


@_checked
def register(
    model: Any,
    *,
    name: str,
    train_data: Any = None,
    eval_data: Any = None,
    target: str | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    input_example: Any = None,
    signature: Any = None,
    run: str | None = None,
    experiment: str | None = None,
    tags: Mapping[str, str] | None = None,
    code_path: str | os.PathLike[str] | None = None,
    log_model_kwargs: Mapping[str, Any] | None = None,
    policy: Policy | str | os.PathLike[str] | None = None,
    store: Store | str | None = None,
    actor: str | None = None,
) -> Registration:
    """Register a model version with full lineage (``mlgate register``).

    ``model`` is a fitted estimator or ``PythonModel`` (logged for you), or the URI of a model
    already logged (``runs:/RUN/NAME``, ``models:/m-...``). ``run``: the id of the run that
    logged it (``--run``), or the run to log the estimator into. See
    :func:`mlgate.versioning.registration.register` for every argument (``run`` is its
    ``run_id``).
    """
    from mlgate.versioning.registration import register as do

    with _acting(actor):
        return do(
            model,
            name=name,
            train_data=train_data,
            eval_data=eval_data,
            target=target,
            params=params,
            metrics=metrics,
            input_example=input_example,
            signature=signature,
            run_id=run,
            experiment=experiment,
            tags=tags,
            code_path=code_path,
            log_model_kwargs=log_model_kwargs,
            policy=policy,
            store=_store(store),
        )


@_checked
def attach(
    model: str,
    *,
    train_data: Any = None,
    eval_data: Any = None,
    force: bool = False,
    reason: str = "",
    policy: Policy | str | os.PathLike[str] | None = None,
    store: Store | str | None = None,
    actor: str | None = None,
) -> Attachment:
    """Add mlgate's lineage to a version registered with plain MLflow (``mlgate attach``).

    ``model`` is ``NAME/VERSION`` or ``NAME@ALIAS``. Idempotent; a different recorded digest or
    data fingerprint is refused unless ``force`` (recorded in the ledger).
    """
    from mlgate.versioning.registration import attach as run

    with _acting(actor):
        return run(
            model,
            train_data=train_data,
            eval_data=eval_data,
            force=force,
            reason=reason,
            policy=policy,
            store=_store(store),
        )


@_checked
def show(model: str, *, store: Store | str | None = None) -> Lineage:
    """The lineage recorded for ``NAME``, ``NAME@ALIAS`` or ``NAME/VERSION`` (``mlgate show``)."""
    from mlgate.versioning.registration import show as run

    return run(model, store=_store(store))


# --------------------------------------------------------------------------- promotion
@_checked
def check(
    model: str,
    version: str | int | None = None,
    *,
    to: str,
    eval_data: Any = None,
    target: str | None = None,
    policy: Policy | str | os.PathLike[str] | None = None,
    store: Store | str | None = None,
) -> Decision:
    """Run the policy's gates for promoting a version to alias ``to``; changes nothing.

    ``model`` may name the version itself (``NAME/VERSION``, ``NAME@ALIAS``) when ``version``
    is not given. ``eval_data`` and ``target`` override the policy's evaluation section.
    """
    from mlgate.promotion.workflow import check as run

    return run(
        model,
        version,
        to=to,
        policy=policy,
        eval_data=eval_data,
        target=target,
        store=_store(store),
    )


@_checked
def promote(
    model: str,
    version: str | int | None = None,
    *,
    to: str,
    expected: str | int | _Current | None = CURRENT,
    reason: str = "",
    eval_data: Any = None,
    target: str | None = None,
    dry_run: bool = False,
    lease_ttl: float | None = None,
    policy: Policy | str | os.PathLike[str] | None = None,
    store: Store | str | None = None,
    actor: str | None = None,
) -> Event:
    """Check the gates, then move ``model@to`` to the version, guarded and recorded.

    The alias moves only if it points at ``expected`` (default: where it pointed when the check
    started). Returns the ledger event; raises ``GateRejected`` (with the decision and event)
    when a gate says no, ``ConflictError``/``LeaseHeldError`` when the alias moved meanwhile.
    """
    from mlgate.promotion.workflow import promote as run

    moving = {} if expected is CURRENT else {"expected": expected}
    with _acting(actor):
        return run(
            model,
            version,
            to=to,
            reason=reason,
            policy=policy,
            eval_data=eval_data,
            target=target,
            dry_run=dry_run,
            lease_ttl=lease_ttl,
            store=_store(store),
            **moving,
        )


@_checked
def rollback(
    model: str,
    *,
    alias: str | None = None,
    version: str | int | None = None,
    reason: str = "",
    dry_run: bool = False,
    lease_ttl: float | None = None,
    force: bool = False,
    policy: Policy | str | os.PathLike[str] | None = None,
    store: Store | str | None = None,
    actor: str | None = None,
) -> Event:
    """Move ``alias`` (default: the champion alias) back to the version it held before.

    ``version`` names a version the ledger shows holding the alias before (any other needs
    ``force``: a rollback runs no gates).
    """
    from mlgate.promotion.workflow import rollback as run

    with _acting(actor):
        return run(
            model,
            alias=alias,
            to_version=version,
            reason=reason,
            policy=policy,
            dry_run=dry_run,
            lease_ttl=lease_ttl,
            force=force,
            store=_store(store),
        )


@_checked
def history(
    model: str,
    *,
    alias: str | None = None,
    kind: EventKind | None = None,
    limit: Annotated[int, Between(1)] | None = None,
    policy: Policy | str | os.PathLike[str] | None = None,
    store: Store | str | None = None,
) -> list[Event]:
    """The ledger's events for ``model`` (optionally of one alias or one kind: ``promote``,
    ``rollback``, ``traffic``, ``rollout``, ``register``, ``attach``, ``build``), newest first."""
    from mlgate.promotion.workflow import history as run

    return run(model, alias=alias, kind=kind, limit=limit, policy=policy, store=_store(store))


@_checked
def status(
    model: str,
    *,
    policy: Policy | str | os.PathLike[str] | None = None,
    store: Store | str | None = None,
) -> Status:
    """A model's aliases and versions, the traffic setting, and when and why each last moved."""
    from mlgate.promotion.workflow import status as run

    return run(model, policy=policy, store=_store(store))


@_checked
def traffic(
    model: str,
    *,
    weight: Percent,
    mode: TrafficMode = "split",
    reason: str = "",
    force: bool = False,
    policy: Policy | str | os.PathLike[str] | None = None,
    store: Store | str | None = None,
    actor: str | None = None,
) -> Event:
    """Set the percent of requests the challenger answers (``split``) or scores copies of
    (``shadow``); every ``mlgate serve`` follows within a poll. Recorded in the ledger.

    A weight above 0 with no challenger alias set is refused unless ``force``.
    """
    from mlgate.promotion.traffic import set_traffic
    from mlgate.promotion.workflow import resolve_policy
    from mlgate.registry.store import Store

    pol = resolve_policy(policy, required=False)
    with _acting(actor):
        return set_traffic(
            _store(store) or Store(),
            model,
            weight=weight,
            mode=mode,
            reason=reason,
            ledger_experiment=pol.ledger_experiment,
            alias=pol.for_model(model).challenger_alias,
            force=force,
        )


@_checked
def rollout(
    model: str,
    endpoints: Sequence[str],
    *,
    steps: Sequence[Percent] = (5, 25, 50, 100),
    min_requests: Annotated[int, Between(1)] = 200,
    min_seconds: Annotated[float, Between(0)] = 30.0,
    max_seconds: Annotated[float, Between(1)] = 900.0,
    max_error_delta: Annotated[float, Between(0)] = 0.01,
    max_latency_ratio: Annotated[float, Between(1)] = 1.5,
    poll: Annotated[float, Between(0.1)] = 2.0,
    policy: Policy | str | os.PathLike[str] | None = None,
    store: Store | str | None = None,
    actor: str | None = None,
) -> RolloutResult:
    """Shift traffic to the challenger step by step on the endpoints' live ``/metrics``; promote
    it at the end, or roll back (``GateRejected``) when a step breaches its bounds. Blocks.

    Resumes a rollout interrupted half-way (its state is in the registry). A step is judged
    after ``min_requests`` challenger requests and ``min_seconds``; one without enough traffic
    by ``max_seconds`` rolls back. Each step is logged on the ``mlgate.rollout`` logger.
    """
    from mlgate.promotion import rollout as ro

    bounds = ro.Bounds(
        min_requests=min_requests,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        max_error_rate_delta=max_error_delta,
        max_latency_ratio=max_latency_ratio,
    )
    with _acting(actor):
        return ro.rollout(
            model,
            list(endpoints),
            steps=list(steps),
            bounds=bounds,
            policy=policy,
            store=_store(store),
            poll=poll,
        )


@_checked
def rollout_status(model: str, *, store: Store | str | None = None) -> RolloutState | None:
    """The state of ``model``'s rollout as the registry holds it (None: never started)."""
    from mlgate.promotion import rollout as ro
    from mlgate.registry.store import Store

    return ro.read_state(_store(store) or Store(), model)


@_checked
def abort_rollout(
    model: str,
    *,
    reason: str = "",
    policy: Policy | str | os.PathLike[str] | None = None,
    store: Store | str | None = None,
    actor: str | None = None,
) -> RolloutResult:
    """Stop the running rollout of ``model``: challenger traffic to 0%, recorded (the result
    carries the state and the events)."""
    from mlgate.promotion import rollout as ro

    with _acting(actor):
        return ro.abort(model, reason=reason, policy=policy, store=_store(store))


# --------------------------------------------------------------------------- deploy
@_checked
def build(
    model: str,
    *,
    repo: str = "mlgate",
    tag: str = "{model}-v{version}",
    base_image: str | None = None,
    python_version: str | None = None,
    offline: bool = False,
    wheelhouse: str | os.PathLike[str] | None = None,
    no_download: bool = False,
    ca_bundle: str | os.PathLike[str] | None = None,
    platform: str | None = None,
    network: str | None = None,
    full_mlflow: bool = False,
    no_verify: bool = False,
    no_check: bool = False,
    no_cache: bool = False,
    push: bool = False,
    record: bool = True,
    engine: Engine | None = None,
    docker_host: str | None = None,
    pip_runner: Runner | None = None,
    store: Store | str | None = None,
    actor: str | None = None,
) -> BuildResult:
    """Build (and optionally push) the serving image of one model version (``mlgate build``).

    Args:
        model: ``MODEL@ALIAS`` or ``MODEL/VERSION``. An alias is resolved once.
        repo, tag: the image is tagged ``repo:tag``; ``tag`` is a template with ``{model}``
            and ``{version}``.
        base_image: default ``python:MAJOR.MINOR-slim`` for the model's Python.
        python_version: the image's Python (``MAJOR.MINOR``); default the model's.
        offline, wheelhouse, no_download: download every wheel on the host first (into the
            cache, or into ``wheelhouse``) and build with no network; ``no_download`` uses the
            wheelhouse alone (air-gapped).
        ca_bundle: a CA bundle pip inside the build trusts (online builds behind TLS
            interception). It is used in the build stage only, never left in the image.
        platform: the target platform, e.g. ``linux/arm64``.
        network: the build's network (``host`` where the engine has no bridge); offline
            builds always run with none.
        full_mlflow: install the full ``mlflow`` package rather than ``mlflow-skinny``.
        no_verify: build even artifacts that differ from the recorded digest (or have none).
        no_check: skip running ``serve --check`` in the model layer's container (with no
            network) before it is committed, which proves the model loads and its digest
            verifies inside the image.
        no_cache: build every layer anew. push: push the image (the repository names the
            registry). record: write the image to the version's ``mlgate.image`` tag.
        engine: a connected :class:`~mlgate.deploy.engine.Engine` to build with (left open).
            Default: a connection to ``docker_host`` (else ``$DOCKER_HOST``, else the default
            socket), closed at the end.
        pip_runner: runs pip to fill an offline build's wheelhouse
            (:data:`mlgate.deploy.wheelhouse.Runner`; default: a subprocess).

    Progress is logged at INFO on the ``mlgate.build`` logger.

    Raises:
        NotFoundError: no such model, version or alias. UsageError: bad options, no pyfunc
        flavor. IntegrityError: artifacts changed since registration. DockerError: engine
        unreachable, build, check or push failed.
    """
    from mlgate.deploy.build import build as run

    with _acting(actor):
        return run(
            model,
            store=_store(store),
            repository=repo,
            tag=tag,
            base_image=base_image,
            python=python_version,
            offline=offline,
            wheelhouse=wheelhouse,
            allow_download=not no_download,
            ca_bundle=ca_bundle,
            platform=platform,
            network_mode=network,
            full_mlflow=full_mlflow,
            verify=not no_verify,
            check=not no_check,
            nocache=no_cache,
            push=push,
            record=record,
            engine=engine,
            docker_host=docker_host,
            pip_runner=pip_runner,
        )


@_checked
def build_tools_image(
    *,
    repo: str | None = None,
    tag: str | None = None,
    base_image: str | None = None,
    python_version: str | None = None,
    offline: bool = False,
    wheelhouse: str | os.PathLike[str] | None = None,
    no_download: bool = False,
    ca_bundle: str | os.PathLike[str] | None = None,
    platform: str | None = None,
    network: str | None = None,
    full_mlflow: bool = False,
    no_cache: bool = False,
    push: bool = False,
    engine: Engine | None = None,
    docker_host: str | None = None,
) -> ToolsResult:
    """Build the image pipeline steps run mlgate in (``mlgate build --tools-image``): mlgate and
    ``mlflow-skinny``, no model, on the same runtime layers as :func:`build`.

    Args:
        repo, tag: default ``mlgate-tools:<mlgate version>`` (``tag`` may use
            ``{version}``, mlgate's). The other options mean what they mean for :func:`build`;
            ``python_version`` defaults to this machine's Python, whose package versions are
            pinned.

    Raises:
        UsageError: bad options. DockerError: engine unreachable, build, check or push failed.
    """
    from mlgate.deploy import tools

    return tools.build_tools_image(
        repository=repo or tools.TOOLS_REPOSITORY,
        tag=tag or tools.TOOLS_TAG,
        base_image=base_image,
        python=python_version,
        offline=offline,
        wheelhouse=wheelhouse,
        allow_download=not no_download,
        ca_bundle=ca_bundle,
        platform=platform,
        network_mode=network,
        full_mlflow=full_mlflow,
        nocache=no_cache,
        push=push,
        engine=engine,
        docker_host=docker_host,
    )


@_checked
def export(
    target: str,
    model: str,
    *,
    options: ExportOptions | None = None,
    policy: Policy | str | os.PathLike[str] | None = None,
    store: Store | str | None = None,
    **fields: Any,
) -> Export:
    """Kubernetes (``k8s``), KServe or Seldon manifests for ``model`` from one registry read.

    ``fields`` set :class:`~mlgate.deploy.export.ExportOptions` fields (``namespace="ml"``,
    ``replicas=3``, ...) over ``options``. Without ``options``, the champion and challenger
    aliases are the policy's. The same registry state always gives the same YAML.
    """
    from typing import get_type_hints

    from mlgate._arguments import check as check_argument
    from mlgate.deploy.export import ExportOptions
    from mlgate.deploy.export import export as run

    known = get_type_hints(ExportOptions)
    for key, value in fields.items():
        if key not in known:
            raise UsageError(
                f"export(): no argument {key!r}", hint=f"known: {', '.join(sorted(known))}"
            )
        check_argument("export()", key, value, known[key])
    if options is None:
        from mlgate.promotion.workflow import resolve_policy

        mp = resolve_policy(policy, required=False).for_model(model)
        options = ExportOptions(
            champion_alias=mp.champion_alias, challenger_alias=mp.challenger_alias
        )
    return run(target, model, options=replace(options, **fields), store=_store(store))


# --------------------------------------------------------------------------- serving
@dataclass(frozen=True)
class ServeCheck:
    """What ``serve(check=True)`` loaded (and verified), then released."""

    model: str
    version: str
    verified: bool

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "verified": self.verified, "ok": True}


def _serve_config(
    model: str | None,
    *,
    manifest: str | os.PathLike[str] | None,
    model_dir: str | os.PathLike[str] | None,
    model_version: str | None,
    expect_digest: str | None,
    pin: str | None,
    weight: float | None,
    mode: str | None,
    **config: Any,
) -> ServeConfig:
    """The server's configuration from ``serve``'s arguments (and the manifest it names)."""
    from pathlib import Path

    from mlgate.serving.routing import Traffic
    from mlgate.serving.server import ServeConfig

    if manifest is not None:
        from mlgate.deploy.recipe import read_manifest

        if model_dir or model_version or expect_digest:
            raise UsageError("--manifest already names the directory, version and digest")
        found = read_manifest(str(manifest))
        model = model or found["model"]
        model_dir, model_version = found["model_dir"], found["version"]
        expect_digest = found["artifact_digest"]
        if model_dir and not Path(model_dir).is_dir():
            raise UsageError(f"--manifest {manifest}: model_dir {model_dir}: no such directory")
    if not model:
        raise UsageError("missing argument MODEL (or give --manifest)")
    if model_dir is None and (model_version or expect_digest):
        raise UsageError("--model-version and --expect-digest need --model-dir")
    if model_dir is not None and (pin or weight is not None or mode):
        raise UsageError("--model-dir serves one directory: --pin, --weight, --mode do not apply")
    split = None
    if weight is not None or mode is not None:
        split = Traffic(mode=mode or "split", challenger_weight=weight or 0.0)
    return ServeConfig(
        model=model,
        traffic=split,
        pin=model_version if model_dir else pin,
        model_dir=None if model_dir is None else str(model_dir),
        expect_digest=expect_digest,
        **config,
    )


@_checked
def serve(
    model: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: Annotated[int, Between(0, 65535)] = 8080,
    poll: Annotated[float, Between(0.1)] = 5.0,
    weight: Percent | None = None,
    mode: TrafficMode | None = None,
    pin: str | None = None,
    champion_alias: str = "champion",
    challenger_alias: str = "challenger",
    max_body_mb: Annotated[float, Between(0.001)] = 10.0,
    timeout: Annotated[float, Between(0.1)] = 30.0,
    no_verify: bool = False,
    model_dir: str | os.PathLike[str] | None = None,
    model_version: str | None = None,
    expect_digest: str | None = None,
    manifest: str | os.PathLike[str] | None = None,
    wait: bool = False,
    check: bool = False,
    threads: Annotated[int, Between(0)] | None = 1,
    workers: Annotated[int, Between(1)] = 1,
    store: Store | str | None = None,
) -> ServeCheck | None:
    """Serve the champion and challenger of ``model``, following the registry (blocks).

    ``weight``/``mode`` override the registry's traffic; ``pin`` serves one version. With
    ``model_dir`` (or an image ``manifest``), serves that local MLflow model directory with no
    registry. The port is bound first (in use: ``UsageError``). With ``check``, loads (and
    verifies) what would serve, releases it and returns what it was, serving nothing.

    ``threads`` caps the native thread pools (OpenMP, BLAS) of each scoring thread (0 or None,
    as ``--threads 0``: the libraries' defaults); ``workers`` processes share the port, each following the registry,
    with ``/metrics`` summed over all of them (:mod:`mlgate.serving.workers`).
    """
    from mlgate.serving import server

    config = _serve_config(
        model,
        manifest=manifest,
        model_dir=model_dir,
        model_version=model_version,
        expect_digest=expect_digest,
        pin=pin,
        weight=weight,
        mode=mode,
        tracking_uri=_uri(store),
        champion_alias=champion_alias,
        challenger_alias=challenger_alias,
        poll_interval=poll,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        timeout=timeout,
        verify_digest=not no_verify,
        wait=wait,
        threads=threads or None,
    )
    if check:
        runtime = server.check(config)
        return ServeCheck(model=config.model, version=runtime.version, verified=runtime.verified)
    sock = server.listen(host, port)
    port = sock.getsockname()[1]  # the one the system chose for port 0
    _serve_log.info("mlgate serving %s on http://%s:%s (Ctrl-C to stop)", config.model, host, port)
    if workers > 1:
        from mlgate.serving import workers as pool

        pool.serve(config, sock=sock, workers=workers)
    else:
        server.serve(config, sock=sock)
    return None
