"""``mlgate serve --workers N``: N server processes answering on one port, as one server.

**Processes.** The process ``mlgate serve`` started is the supervisor: it binds the port
(:func:`mlgate.serving.server.listen`, so a port in use still fails before anything loads),
then starts N workers, fresh interpreters (``spawn``: nothing inherited from a process that has
imported MLflow and NumPy's thread pools), each handed the listening socket. The workers share
that one socket rather than each binding its own with ``SO_REUSEPORT``: the kernel then keeps one
queue of connections that any idle worker takes, so a connection never waits behind a busy or
dying worker's private queue (a worker killed with connections in its ``SO_REUSEPORT`` queue
drops them), and no other process of the same user can bind the port and take a share of its
traffic. Each worker is a complete server (:func:`mlgate.serving.server.serve`): it follows the
registry itself and routes by the same pure function of the request key
(:mod:`mlgate.serving.routing`: a BLAKE3 hash, no per-process salt), so a sticky key lands on
the same version whichever worker takes it (while two workers' polls straddle an alias move, for
at most one poll interval, they may differ). A worker that dies is started again (after 1 s, up
to 30 s when it keeps dying); one that stops because there is nothing to serve (a model or alias
that does not exist, a model directory that does not load) stops the server with that error.
SIGTERM or SIGINT to the supervisor sends SIGTERM once to each worker, which stops taking
connections and finishes the requests in flight (the workers run in their own process group, so
a Ctrl-C reaches them only through the supervisor, once), then it exits.

**Whole-server state.** Each worker counts what it answers in its own memory (the hot path is
unchanged) and shares it through a directory the supervisor creates (and removes):

* ``<pid>.sock``: a Unix socket on which the worker answers its current counters
  (:meth:`mlgate.serving.telemetry.Telemetry.snapshot`, JSON);
* ``<pid>.json``: the same counters written every :data:`FLUSH_SECONDS` and at exit, so the
  counts of a worker that died stay in the sums (all but its last seconds, if it was killed).

Whichever worker answers ``/metrics`` sums its own counters, the live ones of the others (asked
over their sockets), and the files of workers that are gone: one scrape is the whole server, and
the sums never go back (the newest snapshot seen of each worker counts). ``mlgate_workers`` says how many workers' counters a scrape includes, and
``mlgate_worker_requests_total{worker="<slot>"}`` how the requests fall on the worker slots.

The same directory is where later whole-server state belongs, so that it works whichever
worker takes a request: counts of any kind (drift, feedback matched) are more fields of the
snapshot, summed the same way; records (payload logs, predictions waiting for their feedback)
are appended by each worker to files of its own (no lock between processes) under ids that name
the worker, and whatever joins them (a feedback request on any worker, an offline job) reads
every worker's files; an event one worker receives for all (a webhook asking to reload) is
written there as a new generation, which every worker's follower checks at each beat.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import pickle
import shutil
import signal
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import wait as wait_for
from pathlib import Path
from typing import Any

from mlgate.errors import MlgateError
from mlgate.serving.follower import ServeConfig
from mlgate.serving.threads import preset_environment

log = logging.getLogger("mlgate.serve")

#: How often a worker writes its counters to its file (what survives it if it is killed).
FLUSH_SECONDS = 2.0
#: How long a scrape waits for another worker's counters before using its file.
ASK_SECONDS = 2.0
RESTART_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
#: A worker that lived this long before dying restarts after the shortest delay again.
STABLE_SECONDS = 60.0


class Shared:
    """One worker's side of the shared directory: publishes its counters, reads the others'."""

    def __init__(self, directory: str, slot: int, telemetry: Any) -> None:
        self.dir = Path(directory)
        self.slot = slot
        self.pid = os.getpid()
        self.telemetry = telemetry
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._seen: dict[str, dict[str, Any]] = {}  # pid -> the newest snapshot read of it
        self._sock_path = self.dir / f"{self.pid}.sock"
        shared = self

        class Answer(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.sendall(json.dumps(shared.snapshot()).encode())

        self._server = socketserver.UnixStreamServer(str(self._sock_path), Answer)

    def snapshot(self) -> dict[str, Any]:
        # ``at`` orders two snapshots of one worker (CLOCK_MONOTONIC is system-wide on Linux)
        return {
            **self.telemetry.snapshot(),
            "worker": self.slot,
            "pid": self.pid,
            "at": time.monotonic(),
        }

    def start(self) -> None:
        """Answer on the socket and flush to the file, each from a daemon thread."""
        threading.Thread(
            target=self._server.serve_forever, name="mlgate-share", daemon=True
        ).start()

        def flush() -> None:
            while not self._stop.wait(FLUSH_SECONDS):
                self.flush()

        self._flusher = threading.Thread(target=flush, name="mlgate-flush", daemon=True)
        self._flusher.start()
        self.telemetry.workers = self.everyone

    def flush(self) -> None:
        """Write the counters to ``<pid>.json`` (atomically: a reader never sees half a file)."""
        with self._flush_lock:  # the periodic flush and the final one write the same temp file
            tmp = self.dir / f".{self.pid}.json.tmp"
            tmp.write_text(json.dumps(self.snapshot()))
            tmp.replace(self.dir / f"{self.pid}.json")

    def stop(self) -> None:
        """The final counters to the file, then the socket closed: a scrape in between reads
        either the live answer or the final file, never an older one."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        self.flush()
        self._server.shutdown()
        self._server.server_close()
        self._sock_path.unlink(missing_ok=True)

    def everyone(self) -> list[dict[str, Any]]:
        """Every worker's counters: this one's, the others' live over their sockets, and the
        last file of those that are gone (``live`` False).

        A worker that answers too slowly is read from its file, which may be older than what an
        earlier scrape saw; the newest snapshot seen of each worker is kept (by ``at``), so the
        sums never go back and Prometheus sees no false counter reset.
        """
        pids = {p.name.split(".")[0] for p in self.dir.glob("[0-9]*.*")} - {str(self.pid)}
        out = [self.snapshot()]
        for pid in sorted(pids):
            snapshot = _ask(self.dir / f"{pid}.sock")
            if snapshot is None:
                try:
                    snapshot = {**json.loads((self.dir / f"{pid}.json").read_text()), "live": False}
                except (OSError, ValueError):
                    snapshot = self._seen.get(pid)
                    if snapshot is None:
                        continue
            seen = self._seen.get(pid)
            if seen is not None and seen.get("at", 0.0) > snapshot.get("at", 0.0):
                snapshot = {**seen, "live": snapshot.get("live", True)}
            self._seen[pid] = snapshot
            out.append(snapshot)
        return out


def _ask(path: Path) -> dict[str, Any] | None:
    """A worker's live counters over its socket; None when it does not answer."""
    if not path.exists():
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(ASK_SECONDS)
            s.connect(str(path))
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return dict(json.loads(b"".join(chunks)))
    except (OSError, ValueError):
        return None


def _worker(config: ServeConfig, sock: socket.socket, directory: str, slot: int) -> None:
    """One worker process: a whole server on the shared socket, its counters shared."""
    from mlgate.serving import server

    os.setpgid(0, 0)  # a Ctrl-C in the terminal reaches the supervisor only, which stops us once
    # uvicorn re-raises the signal that stopped it once it has shut down; handled here, the
    # worker goes on to write its final counters instead of dying of it
    stopping = threading.Event()  # a SIGTERM before uvicorn runs (while loading) ends the wait
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    parent = os.getppid()
    shared: list[Shared] = []

    def started(telemetry: Any, stop_serving: Callable[[], None]) -> None:
        share = Shared(directory, slot, telemetry)
        share.start()
        shared.append(share)

        def orphaned() -> None:  # the supervisor was killed: do not serve on unsupervised
            while os.getppid() == parent:
                time.sleep(1.0)
            stop_serving()

        threading.Thread(target=orphaned, name="mlgate-parent", daemon=True).start()

    try:
        server.serve(config, sock=sock, started=started, stopping=stopping)
    except MlgateError as exc:
        _report_fatal(directory, exc)
        raise SystemExit(exc.exit_code) from None
    finally:
        for share in shared:
            share.stop()


def _report_fatal(directory: str, exc: MlgateError) -> None:
    path = Path(directory) / f"fatal-{os.getpid()}"
    try:
        data = pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - an exception that does not pickle: its text will do
        data = pickle.dumps(MlgateError(str(exc)))
    path.write_bytes(data)


def _fatal(path: Path) -> MlgateError | None:
    """The error a worker stopped on (its ``fatal-<pid>`` file), if it wrote one."""
    if not path.exists():
        return None
    try:
        exc = pickle.loads(path.read_bytes())  # noqa: S301 - written by our own workers
    except Exception:  # noqa: BLE001
        return MlgateError("a worker stopped on an error it could not report")
    finally:
        path.unlink(missing_ok=True)
    return exc if isinstance(exc, MlgateError) else MlgateError(str(exc))


def serve(config: ServeConfig, *, sock: socket.socket, workers: int) -> None:
    """Run ``workers`` processes on ``sock`` until SIGTERM/SIGINT (blocking); see the module.

    Raises:
        MlgateError: what a worker stopped on because there is nothing to serve.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    preset_environment(config.threads)  # inherited by the workers: set before anything loads
    directory = Path(tempfile.mkdtemp(prefix="mlgate-workers-"))
    supervisor = _Supervisor(config, sock, directory, workers)
    try:
        supervisor.run()
    finally:
        supervisor.stop_all()
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)
    if supervisor.fatal is not None:
        raise supervisor.fatal


class _Supervisor:
    """Starts the workers, starts again those that die, stops them all once."""

    def __init__(
        self, config: ServeConfig, sock: socket.socket, directory: Path, workers: int
    ) -> None:
        self.config, self.sock, self.dir = config, sock, directory
        self.context = multiprocessing.get_context("spawn")
        self.slots: dict[int, Any] = {}
        self.started_at: dict[int, float] = {}
        self.failures: dict[int, int] = dict.fromkeys(range(workers), 0)
        self.fatal: MlgateError | None = None
        self.replaced: set[int] = set()  # slots whose first worker died and was started again
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.stopping = False

    def _start(self, slot: int) -> None:
        # A replacement joins a server that was serving: it waits for what it cannot find yet
        # (an alias deleted meanwhile) instead of stopping everyone as a first start would.
        config = replace(self.config, wait=True) if slot in self.replaced else self.config
        process = self.context.Process(
            target=_worker,
            args=(config, self.sock, str(self.dir), slot),
            name=f"mlgate-worker-{slot}",
        )
        process.start()
        self.slots[slot] = process
        self.started_at[slot] = time.monotonic()
        log.info("worker %d started (pid %d)", slot, process.pid)

    def _signalled(self, *_: object) -> None:
        self.stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def run(self) -> None:
        old = {s: signal.signal(s, self._signalled) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in self.failures:
                self._start(slot)
            restart_at: dict[int, float] = {}
            while not self.stopping:
                waits = [p.sentinel for p in self.slots.values()]
                timeout = None
                if restart_at:
                    timeout = max(0.0, min(restart_at.values()) - time.monotonic())
                wait_for([*waits, self._wake_r], timeout)
                for slot, process in list(self.slots.items()):
                    if process.is_alive() or self.stopping:
                        continue
                    process.join()
                    del self.slots[slot]
                    error = _fatal(self.dir / f"fatal-{process.pid}")
                    if error is not None and slot not in self.replaced:
                        self.fatal = error  # a first start with nothing to serve: stop
                        log.error("worker %d stopped: %s", slot, error)
                        return
                    if error is not None:  # a replacement's error: the others go on serving
                        log.error("worker %d (a replacement) stopped: %s", slot, error)
                    self.replaced.add(slot)
                    restart_at[slot] = time.monotonic() + self._delay(slot)
                    log.warning(
                        "worker %d (pid %d) exited with %s; starting another in %.0f s",
                        slot,
                        process.pid,
                        process.exitcode,
                        restart_at[slot] - time.monotonic(),
                    )
                for slot, when in list(restart_at.items()):
                    if when <= time.monotonic() and not self.stopping:
                        del restart_at[slot]
                        self._start(slot)
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    def _delay(self, slot: int) -> float:
        if time.monotonic() - self.started_at[slot] > STABLE_SECONDS:
            self.failures[slot] = 0
        delay = RESTART_DELAYS[min(self.failures[slot], len(RESTART_DELAYS) - 1)]
        self.failures[slot] += 1
        return delay

    def stop_all(self) -> None:
        """SIGTERM once to each worker; wait for them to finish what is in flight."""
        for process in self.slots.values():
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + self.config.timeout + 10.0
        for process in self.slots.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker pid %d did not stop in time; killing it", process.pid)
                process.kill()
                process.join()
        os.close(self._wake_r)
        os.close(self._wake_w)
