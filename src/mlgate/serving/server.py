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

The pieces: :mod:`~mlgate.serving.follower` keeps the loaded versions in step with the registry,
:mod:`~mlgate.serving.handlers` answers each endpoint, :mod:`~mlgate.serving.asgi` is the ASGI
application in front of them, and this module binds the port and runs uvicorn.

Concurrent one-row requests are batched adaptively (:mod:`mlgate.serving.batching`): while the
model scores one batch, the next requests queue and are scored together in one ``predict`` call
per version (no added wait at low load).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Callable

from mlgate.errors import UsageError
from mlgate.serving.asgi import App
from mlgate.serving.follower import Follower, LoadedVersion, ServeConfig
from mlgate.serving.handlers import Handlers
from mlgate.serving.telemetry import Telemetry
from mlgate.serving.threads import preset_environment

__all__ = [
    "App",
    "Follower",
    "LoadedVersion",
    "ServeConfig",
    "check",
    "create_app",
    "listen",
    "serve",
]


def create_app(config: ServeConfig, follower: Follower | None = None) -> App:
    """The ASGI app. Starts the follower when the server starts, stops it at shutdown."""
    return App(Handlers(config, follower or Follower(config)))


def check(config: ServeConfig) -> LoadedVersion:
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
    started: Callable[[Telemetry, Callable[[], None]], None] | None = None,
    stopping: threading.Event | None = None,
) -> None:
    """Run the server until interrupted (blocking).

    The address is bound first (``sock``, from :func:`listen`, or ``host:port``), so a port in
    use fails before anything loads. A local model directory is then loaded before requests are
    answered; if it cannot load (or fails its digest) this raises. Following the registry, a
    model, pinned version or champion alias that does not exist at the first answered poll
    raises :class:`NotFoundError` (unless ``config.wait``); an unreachable registry is waited for.
    ``started`` is called with the server's counters and a function that stops it, before it
    answers (one worker of several: :mod:`mlgate.serving.workers`). With ``stopping`` (a
    worker), the champion is loaded before the worker takes connections from the shared socket
    (the others answer meanwhile); setting it gives up.
    """
    import uvicorn

    sock = sock or listen(host, port)
    preset_environment(config.threads)
    try:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
        follower = Follower(config)
        if follower.local:
            follower.load_now()
        elif stopping is not None:
            while follower.state is None and follower.fatal is None and not stopping.is_set():
                follower.poll_once()
                if follower.state is None:
                    stopping.wait(config.poll_interval)
            if follower.state is None:
                follower.stop()
                if follower.fatal is not None:
                    raise follower.fatal
                return
        app = create_app(config, follower)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                http="httptools",  # the C parser (uvloop, where installed, is the loop)
                lifespan="on",
                log_level="warning",
                access_log=False,
                # mlgate reads neither the client's address nor the scheme: no middleware
                # rewriting them from X-Forwarded-* headers in front of every request
                proxy_headers=False,
                timeout_keep_alive=30,
                limit_concurrency=2048,
            )
        )

        def stop_serving() -> None:
            server.should_exit = True

        follower.on_fatal = stop_serving
        if started is not None:
            started(app.handlers.telemetry, stop_serving)
        server.run(sockets=[sock])
    finally:
        sock.close()
    if follower.fatal is not None:
        raise follower.fatal
