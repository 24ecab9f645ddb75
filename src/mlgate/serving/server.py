"""``mlgate serve``: champion and challenger in one process, following the registry.

* ``POST /invocations`` — MLflow's scoring protocol (JSON ``dataframe_split``,
  ``dataframe_records``, ``instances``, ``inputs``; CSV), same response shape
  (``{"predictions": ...}``). The ``X-Mlgate-Version`` and ``X-Mlgate-Role`` response headers
  say which version answered. ``X-Mlgate-Key`` makes routing sticky.
* ``/v2/...`` — the Open Inference Protocol (V2 REST), routed the same way
  (:mod:`mlgate.serving.v2`).
* ``GET /ping`` (200 once the champion is loaded), ``/health`` (JSON; 503 until ready, with the
  registry and loading state), ``/version`` (what serves at what weight), ``/metrics``
  (Prometheus).

The :class:`Follower` polls the registry (aliases and the ``mlgate.traffic`` tag), loads new
versions in the background — verifying each artifact digest recorded at registration — and
swaps in a new immutable :class:`ServingState` in one assignment. A request takes the state at
its start and finishes on it, so a switch fails no request; a version that fails to load is
never swapped in, and the old state keeps serving.

Concurrent one-row requests are batched adaptively (:mod:`mlgate.serving.batching`): while the
model scores one batch, the next requests queue and are scored together in one ``predict`` call
per version (no added wait at low load).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import json
import logging
import random
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from mlgate._version import __version__
from mlgate.errors import (
    IntegrityError,
    MlgateError,
    NoStoreError,
    NotFoundError,
    ScoringInputError,
    UsageError,
)
from mlgate.fingerprint import verify_model_artifacts
from mlgate.keys import Tags
from mlgate.registry.pyfunc import load_local_pyfunc, parse_scoring_request, predictions_json
from mlgate.registry.store import Store
from mlgate.serving import routing
from mlgate.serving.batching import Batcher, Dispatcher
from mlgate.serving.fastpath import NumericSchema, parse_rows
from mlgate.serving.lane import FastLane
from mlgate.serving.routing import RoutingTable, Traffic
from mlgate.serving.telemetry import Metrics
from mlgate.serving.v2 import Endpoints as V2Endpoints
from mlgate.serving.v2 import error_response as v2_error

log = logging.getLogger("mlgate.serve")

KEY_HEADER = "x-mlgate-key"


@dataclass(frozen=True)
class ServeConfig:
    """How ``mlgate serve`` runs. Everything has a default but the model name."""

    model: str
    tracking_uri: str | None = None
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    poll_interval: float = 5.0
    traffic: Traffic | None = None  # overrides the registry's setting when given
    pin: str | None = None  # serve this one version, do not follow aliases
    # Serve a model directory on local disk (as baked into an image by ``mlgate build``) with
    # no registry at all; ``pin`` then names its version and ``expect_digest`` its digest.
    model_dir: str | None = None
    expect_digest: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    timeout: float = 30.0
    max_batch: int = 256
    verify_digest: bool = True
    # Keep polling while the model, pinned version or champion alias does not exist yet; without
    # it the first poll that finds nothing to serve ends the server (``Follower.fatal``).
    wait: bool = False


# --------------------------------------------------------------------------- state and follower


@dataclass
class Runtime:
    """One loaded version."""

    version: str
    model: Any
    verified: bool
    batcher: Batcher
    loaded_at: float
    local_dir: str
    schema: NumericSchema | None = None


@dataclass(frozen=True)
class ServingState:
    """An immutable snapshot: the routing table and a runtime for each version it names."""

    table: RoutingTable
    runtimes: dict[str, Runtime]
    generation: int = 0


@dataclass
class FollowerStatus:
    registry_ok: bool = False
    last_poll: float | None = None
    last_error: str | None = None
    load_errors: dict[str, str] = field(default_factory=dict)


class Follower:
    """Keeps :attr:`state` in step with the registry, from a background thread."""

    def __init__(
        self,
        config: ServeConfig,
        store: Store | None = None,
        loader: Callable[[str], Runtime] | None = None,
    ) -> None:
        self.config = config
        self._store = store
        self.state: ServingState | None = None
        self.status = FollowerStatus()
        self._loader = loader or self._load
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tmp = tempfile.mkdtemp(prefix="mlgate-serve-")
        # One predict thread and one batch loop for every version: with two versions, two
        # threads only fought the event loop for the GIL, and two loops cut each other's batches.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlgate-predict")
        self._dispatcher = Dispatcher(config.max_batch, self._executor)
        self._lock = threading.Lock()
        self._last_load_error: MlgateError | None = None
        #: Why the server must stop: nothing to serve at the first poll (and no ``wait``).
        self.fatal: MlgateError | None = None
        #: Called (from the follower thread) when :attr:`fatal` is set.
        self.on_fatal: Callable[[], None] | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.config.tracking_uri)
        return self._store

    @property
    def local(self) -> bool:
        """True when serving a local model directory, not following the registry."""
        return self.config.model_dir is not None

    # -- loading
    def _runtime(self, version: str, model: Any, verified: bool, local: str) -> Runtime:
        schema = NumericSchema.from_model(model)
        batcher = Batcher(model, self._dispatcher, schema)
        return Runtime(version, model, verified, batcher, time.time(), local, schema)

    def _load_local(self, version: str) -> Runtime:
        path = str(self.config.model_dir)
        want = self.config.expect_digest
        verified = False
        if want and self.config.verify_digest:
            verify_model_artifacts(path, want, what=path, refusing="to serve them")
            verified = True
        return self._runtime(version, load_local_pyfunc(path), verified, path)

    def _load(self, version: str) -> Runtime:
        if self.local:
            return self._load_local(version)
        name = self.config.model
        record = self.store.get_version(name, version)
        local = self.store.download(
            f"models:/{name}/{version}", dst=tempfile.mkdtemp(dir=self._tmp)
        )
        verified = False
        want = record.tags.get(Tags.ARTIFACT_DIGEST)
        if want and self.config.verify_digest:
            try:
                verify_model_artifacts(
                    local, want, what=f"version {version}", refusing="to serve it"
                )
            except IntegrityError:
                shutil.rmtree(local, ignore_errors=True)
                raise
            verified = True
        return self._runtime(version, self.store.load_pyfunc(local), verified, local)

    def _table(self) -> RoutingTable:
        c = self.config
        if c.model_dir is not None:
            return RoutingTable(champion=c.pin or "local", challenger=None)
        if c.pin is not None:
            if self.state is None:
                self.store.get_version(c.model, c.pin)  # NotFoundError: nothing to serve
            return RoutingTable(champion=c.pin, challenger=None)
        table = routing.read_table(
            self.store,
            c.model,
            champion_alias=c.champion_alias,
            challenger_alias=c.challenger_alias,
        )
        if table.champion is None and self.state is None:
            raise NotFoundError(f"{c.model}@{c.champion_alias} is not set")
        if c.traffic is not None:
            table = replace(table, traffic=c.traffic)
        return table

    def refresh(self) -> bool:
        """One poll: read the registry, load what is new, swap. True when the state changed."""
        with self._lock:
            table = self._table()
            self.status.registry_ok = True
            self.status.last_poll = time.time()
            self.status.last_error = None
            current = self.state
            if current is not None and current.table == table:
                return False
            runtimes = dict(current.runtimes) if current else {}
            for version in table.versions():
                if version in runtimes:
                    continue
                try:
                    runtimes[version] = self._loader(version)
                    self.status.load_errors.pop(version, None)
                    log.info("loaded %s version %s", self.config.model, version)
                except Exception as exc:  # noqa: BLE001 - a bad model must not stop the follower
                    err = (
                        exc
                        if isinstance(exc, MlgateError)
                        else MlgateError(
                            f"version {version} could not be loaded: {type(exc).__name__}: {exc}"
                        )
                    )
                    self.status.load_errors[version] = str(err)
                    self._last_load_error = err
                    log.error(
                        "version %s failed to load, keeping the current state: %s", version, err
                    )
                    return False  # never swap in a state with a version that did not load
            keep = {v: r for v, r in runtimes.items() if v in table.versions()}
            generation = current.generation + 1 if current else 1
            loaded = current is None or any(v not in current.runtimes for v in keep)
            self.state = ServingState(table=table, runtimes=keep, generation=generation)
            for version, runtime in runtimes.items():
                if version not in keep:
                    self._retire(runtime)
            if loaded:
                freeze_heap()
            log.info(
                "serving %s: champion=%s challenger=%s traffic=%s",
                self.config.model,
                table.champion,
                table.challenger,
                table.traffic.to_dict(),
            )
            return True

    def load_now(self) -> Runtime:
        """Load what the table names before serving; raises what loading raised.

        Used for a local model directory (an image), where nothing can change later: a model that
        cannot load or fails its digest should stop the process, not leave it unready forever.
        """
        self.refresh()
        state = self.state
        if state is None or state.table.champion not in state.runtimes:
            raise self._last_load_error or MlgateError(
                f"{self.config.model}: the model did not load"
            )
        return state.runtimes[state.table.champion]

    def _retire(self, runtime: Runtime) -> None:
        # In-flight requests hold their own reference to the runtime; give them time to finish.
        def later() -> None:
            time.sleep(max(self.config.timeout, 1.0))
            shutil.rmtree(runtime.local_dir, ignore_errors=True)
            gc.unfreeze()  # let the collector reach what only the retired version held
            freeze_heap()

        threading.Thread(target=later, daemon=True).start()

    def poll_once(self) -> None:
        try:
            self.refresh()
        # The registry answered (or there is none to ask): the model, version, alias or the
        # store itself is not there. Only an unreachable server is worth waiting for.
        except (NotFoundError, NoStoreError) as exc:
            self.status.registry_ok = True
            self.status.last_poll = time.time()
            self.status.last_error = str(exc)
            if self.state is not None:
                log.warning("%s; still serving what is loaded", exc)
            elif self.config.wait:
                log.warning("%s; waiting for it (--wait)", exc)
            else:
                self.fatal = NotFoundError(
                    f"{exc}: nothing to serve", hint="pass --wait to wait for it"
                )
                self._stop.set()
                if self.on_fatal is not None:
                    self.on_fatal()
        except MlgateError as exc:
            self.status.registry_ok = False
            self.status.last_error = str(exc)
            if self.state is None:
                log.warning("cannot reach the tracking server (%s); waiting for it", exc)
            else:
                log.warning("registry poll failed, still serving what is loaded: %s", exc)

    def start(self) -> None:
        if self.local and self.state is not None:
            return  # a local directory never changes: nothing to follow

        def loop() -> None:
            while not self._stop.is_set():
                self.poll_once()
                self._stop.wait(self.config.poll_interval)

        self._thread = threading.Thread(target=loop, name="mlgate-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._dispatcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self._tmp, ignore_errors=True)


def freeze_heap() -> None:
    """Put everything alive now (modules, loaded models) out of the cyclic collector's reach.

    Under load a full collection ran about once a second and walked the whole heap of mlflow,
    pandas and scikit-learn: 115-127 ms with every request stalled, which was the p99 of
    ``mlgate serve``.
    Frozen objects are skipped by collections; called after a version loads (one collection
    then), and after a version is retired (unfrozen first, so what it held can be freed).
    """
    gc.collect()
    gc.freeze()


# --------------------------------------------------------------------------- HTTP app


def _json(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import Response

    return Response(
        json.dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


def _error(status: int, code: str, message: str) -> Any:
    return _json(status, {"error_code": code, "message": message})


async def _read_body(request: Any, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > limit:
                raise ScoringInputError(
                    f"request body of {length} bytes exceeds the {limit}-byte limit", 413
                )
        except ValueError:
            raise ScoringInputError("bad Content-Length header", 400) from None
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ScoringInputError(f"request body exceeds the {limit}-byte limit", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _agree(a: Any, b: Any) -> bool:
    import numpy as np

    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (ValueError, TypeError):
        return False


def create_app(config: ServeConfig, follower: Follower | None = None) -> Any:
    """The ASGI app. Starts the follower when the server starts, stops it at shutdown."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    follower = follower or Follower(config)
    metrics = Metrics()
    rng = random.Random()  # noqa: S311 - traffic splitting, not security
    background: set[asyncio.Task[Any]] = set()

    async def invocations(request: Any) -> Any:
        started = time.perf_counter()
        state = follower.state
        if state is None or state.table.champion not in state.runtimes:
            return _error(503, "NOT_READY", "the champion version is not loaded yet")
        try:
            body = await _read_body(request, config.max_body_bytes)
            if not body.strip():
                raise ScoringInputError("empty request body", 400)
            route = state.table.route(request.headers.get(KEY_HEADER), rng.random())
        except ScoringInputError as exc:
            metrics.invalid()
            return _error(
                exc.status, "BAD_REQUEST" if exc.status == 400 else "INVALID_REQUEST", exc.message
            )
        runtime = state.runtimes[route.version]
        headers = {"X-Mlgate-Version": route.version, "X-Mlgate-Role": route.role}
        content_type = request.headers.get("content-type", "application/json")
        try:
            rows = parse_rows(body, content_type, runtime.schema)
            if rows is not None:
                data, params = rows, None
                pending = runtime.batcher.submit_rows(rows)
            else:
                data, params = parse_scoring_request(body, content_type, runtime.model)
                pending = runtime.batcher.submit(data, params)
            preds = await asyncio.wait_for(pending, config.timeout)
            text = predictions_json(preds)
        except ScoringInputError as exc:
            metrics.observe(route.version, route.role, exc.status, time.perf_counter() - started)
            code = "BAD_REQUEST" if exc.status == 400 else "UNSUPPORTED_MEDIA_TYPE"
            return _json(exc.status, {"error_code": code, "message": exc.message}, headers)
        except asyncio.TimeoutError:
            metrics.observe(route.version, route.role, 503, time.perf_counter() - started)
            return _json(
                503,
                {
                    "error_code": "TIMEOUT",
                    "message": f"scoring took longer than {config.timeout:g} s",
                },
                headers,
            )
        except Exception as exc:
            log.exception("unexpected error scoring version %s", route.version)
            metrics.observe(route.version, route.role, 500, time.perf_counter() - started)
            return _json(
                500, {"error_code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}"}, headers
            )
        metrics.observe(route.version, route.role, 200, time.perf_counter() - started)
        metrics.observe_predictions(route.version, preds)
        if route.shadow is not None and route.shadow in state.runtimes:
            start_shadow(state.runtimes[route.shadow], runtime, rows, data, params, preds)
        return Response(text, media_type="application/json", headers=headers)

    def start_shadow(
        shadow: Runtime, runtime: Runtime, rows: Any, data: Any, params: Any, preds: Any
    ) -> None:
        if rows is not None and shadow.schema == runtime.schema:  # same columns and dtypes
            scoring = shadow.batcher.submit_rows(rows)
        else:
            shadow_input = (
                runtime.schema.frame(rows) if rows is not None and runtime.schema else data
            )
            scoring = shadow.batcher.submit(shadow_input, params)
        task = asyncio.get_running_loop().create_task(_shadow(shadow, scoring, preds))
        background.add(task)
        task.add_done_callback(background.discard)

    async def _shadow(runtime: Runtime, scoring: Any, champion_preds: Any) -> None:
        try:
            preds = await asyncio.wait_for(scoring, config.timeout)
        except Exception:  # noqa: BLE001 - a shadow failure never reaches the caller
            metrics.shadow(runtime.version, agreed=None)
            return
        metrics.shadow(runtime.version, agreed=_agree(preds, champion_preds))

    async def ping(request: Any) -> Any:
        state = follower.state
        ok = state is not None and state.table.champion in state.runtimes
        return PlainTextResponse("\n" if ok else "not ready\n", status_code=200 if ok else 503)

    async def health(request: Any) -> Any:
        state = follower.state
        ready = state is not None and state.table.champion in state.runtimes
        st = follower.status
        payload = {
            "status": "ok" if ready else "not_ready",
            "model": config.model,
            "champion": state.table.champion if state else None,
            "challenger": state.table.challenger if state else None,
            "source": "model_dir" if follower.local else "registry",
            "registry": None
            if follower.local
            else {
                "reachable": st.registry_ok,
                "last_poll": st.last_poll,
                "error": st.last_error,
            },
            "load_errors": dict(st.load_errors),
        }
        return _json(200 if ready else 503, payload)

    async def version(request: Any) -> Any:
        state = follower.state
        if state is None:
            return _json(503, {"model": config.model, "serving": [], "mlgate": __version__})
        t = state.table
        weight = t.traffic.challenger_weight if t.challenger and t.challenger != t.champion else 0.0
        serving = []
        for role, v in (("champion", t.champion), ("challenger", t.challenger)):
            if v is None or v not in state.runtimes:
                continue
            share = (
                (100.0 - weight if role == "champion" else weight)
                if t.traffic.mode == "split"
                else (100.0 if role == "champion" else 0.0)
            )
            rt = state.runtimes[v]
            serving.append(
                {
                    "role": role,
                    "version": v,
                    "weight": share,
                    "verified": rt.verified,
                    "scoring": rt.batcher.path,
                }
            )
        return _json(
            200,
            {
                "model": config.model,
                "mode": t.traffic.mode,
                "serving": serving,
                "generation": state.generation,
                "mlgate": __version__,
            },
        )

    async def metrics_endpoint(request: Any) -> Any:
        return PlainTextResponse(
            metrics.render(config.model), media_type="text/plain; version=0.0.4"
        )

    v2 = V2Endpoints(
        config=config,
        follower=follower,
        metrics=metrics,
        rng=rng,
        read_body=lambda request: _read_body(request, config.max_body_bytes),
        shadow=start_shadow,
        version=__version__,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        follower.start()
        yield
        follower.stop()

    app = Starlette(
        routes=[
            Route("/invocations", invocations, methods=["POST"]),
            *v2.routes(),
            Route("/ping", ping, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.follower = follower
    app.state.metrics = metrics
    return FastLane(app, invocations=invocations, infer=v2.infer)


async def _not_found(request: Any, exc: Any) -> Any:
    if request.url.path.startswith("/v2/"):  # the Open Inference Protocol's error shape
        return v2_error(404, f"no route {request.url.path}")
    return _error(404, "NOT_FOUND", f"no route {request.url.path}")


async def _not_allowed(request: Any, exc: Any) -> Any:
    message = f"{request.method} is not allowed on {request.url.path}"
    if request.url.path.startswith("/v2/"):
        return v2_error(405, message)
    return _error(405, "METHOD_NOT_ALLOWED", message)


def check(config: ServeConfig) -> Runtime:
    """Load (and verify) what ``config`` would serve, then release it. Raises on failure."""
    follower = Follower(config)
    try:
        return follower.load_now()
    finally:
        follower.stop()


def listen(host: str, port: int) -> socket.socket:
    """Bind ``host:port`` now, so a taken port is known before any model is loaded.

    Raises:
        UsageError: the address is already in use, or cannot be bound (exit 2).
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {where}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: lets a restart reuse a port in TIME_WAIT, never one with a listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"{where} is already in use (stop what listens there, or choose another --port)"
            ) from None
        raise UsageError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    return sock


def serve(
    config: ServeConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    sock: socket.socket | None = None,
) -> None:
    """Run the server until interrupted (blocking).

    The address is bound first (``sock``, from :func:`listen`, or ``host:port``), so a port in
    use fails before anything loads. A local model directory is then loaded before requests are
    answered; if it cannot load (or fails its digest) this raises. Following the registry, a
    model, pinned version or champion alias that does not exist at the first answered poll
    raises :class:`NotFoundError` (unless ``config.wait``); an unreachable registry is waited for.
    """
    import uvicorn

    sock = sock or listen(host, port)
    try:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
        follower = Follower(config)
        if follower.local:
            follower.load_now()
        app = create_app(config, follower)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                timeout_keep_alive=30,
                limit_concurrency=2048,
            )
        )

        def stop_serving() -> None:
            server.should_exit = True

        follower.on_fatal = stop_serving
        server.run(sockets=[sock])
    finally:
        sock.close()
    if follower.fatal is not None:
        raise follower.fatal
