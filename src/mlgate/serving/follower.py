"""What serves: the configuration, the loaded versions, and the follower that keeps them in step
with the registry.

The :class:`Follower` polls the registry (aliases and the ``mlgate.traffic`` tag), loads new
versions in the background — verifying each artifact digest recorded at registration — and
swaps in a new immutable :class:`ServingState` in one assignment. A request takes the state at
its start and finishes on it, so a switch fails no request; a version that fails to load is
never swapped in, and the old state keeps serving.
"""

from __future__ import annotations

import gc
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from mlgate.errors import IntegrityError, MlgateError, NoStoreError, NotFoundError
from mlgate.fingerprint import verify_model_artifacts
from mlgate.keys import Tags
from mlgate.registry.pyfunc import load_local_pyfunc
from mlgate.registry.store import Store
from mlgate.serving import routing
from mlgate.serving.batching import Batcher, Dispatcher
from mlgate.serving.fastpath import NumericSchema
from mlgate.serving.routing import RoutingTable, Traffic
from mlgate.serving.threads import ThreadCap

log = logging.getLogger("mlgate.serve")


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
    # Native threads (OpenMP, BLAS) per pool in each scoring thread; None leaves the libraries'
    # defaults (see mlgate.serving.threads).
    threads: int | None = 1


@dataclass
class LoadedVersion:
    """One version of the model, loaded: what scores its requests and what ``/version`` says."""

    version: str
    model: Any
    verified: bool
    batcher: Batcher
    loaded_at: float
    local_dir: str
    schema: NumericSchema | None = None
    #: What a protocol computes once per version at its first request (V2's metadata).
    views: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServingState:
    """An immutable snapshot: the routing table and the loaded version of each version it names."""

    table: RoutingTable
    loaded: dict[str, LoadedVersion]
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
        loader: Callable[[str], LoadedVersion] | None = None,
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
        self._dispatcher = Dispatcher(
            config.max_batch, self._executor, config.timeout, ThreadCap(config.threads)
        )
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
    def _loaded(self, version: str, model: Any, verified: bool, local: str) -> LoadedVersion:
        schema = NumericSchema.from_model(model)
        self._dispatcher.threads.rescan()  # the libraries the model brought in
        batcher = Batcher(model, self._dispatcher, schema)
        return LoadedVersion(version, model, verified, batcher, time.time(), local, schema)

    def _load_local(self, version: str) -> LoadedVersion:
        path = str(self.config.model_dir)
        want = self.config.expect_digest
        verified = False
        if want and self.config.verify_digest:
            verify_model_artifacts(path, want, what=path, refusing="to serve them")
            verified = True
        return self._loaded(version, load_local_pyfunc(path), verified, path)

    def _load(self, version: str) -> LoadedVersion:
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
        return self._loaded(version, self.store.load_pyfunc(local), verified, local)

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
            have = dict(current.loaded) if current else {}
            for version in table.versions():
                if version in have:
                    continue
                try:
                    have[version] = self._loader(version)
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
            keep = {v: r for v, r in have.items() if v in table.versions()}
            generation = current.generation + 1 if current else 1
            new = current is None or any(v not in current.loaded for v in keep)
            self.state = ServingState(table=table, loaded=keep, generation=generation)
            for version, old in have.items():
                if version not in keep:
                    self._retire(old)
            if new:
                freeze_heap()
            log.info(
                "serving %s: champion=%s challenger=%s traffic=%s",
                self.config.model,
                table.champion,
                table.challenger,
                table.traffic.to_dict(),
            )
            return True

    def load_now(self) -> LoadedVersion:
        """Load what the table names before serving; raises what loading raised.

        Used for a local model directory (an image), where nothing can change later: a model that
        cannot load or fails its digest should stop the process, not leave it unready forever.
        """
        self.refresh()
        state = self.state
        if state is None or state.table.champion not in state.loaded:
            raise self._last_load_error or MlgateError(
                f"{self.config.model}: the model did not load"
            )
        return state.loaded[state.table.champion]

    def _retire(self, loaded: LoadedVersion) -> None:
        # In-flight requests hold their own reference to the version; give them time to finish.
        def later() -> None:
            time.sleep(max(self.config.timeout, 1.0))
            shutil.rmtree(loaded.local_dir, ignore_errors=True)
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
