"""Adaptive batching of concurrent requests, for every version a server runs, in one place.

Concurrent one-row requests are dominated by per-call overhead (building a DataFrame, the
flavor's input validation), so requests that queue while the model is busy are scored
together in one call per version — no added wait at low load.

One :class:`Dispatcher` serves all the versions of a server (champion and challenger): each
cycle it takes everything queued, groups it by version, and scores every group back to back
in one trip (on the event loop when the cycle is expected to take under
:data:`INLINE_BUDGET`, else on the predict thread). Both versions' batches are formed at the
same moment; with one batch loop per version they interleaved on the predict thread and cut
each other's batches short, and a 50/50 split cost 43% of the single-version rate
(``benchmarks/serving.py``, 32 clients; 2-7% over four runs with this design and the
array path).

A :class:`Batcher` is one version's scoring: it builds a group into one input, predicts, and
cuts the predictions back into per-request pieces. If a combined call fails, each request is
scored alone so that one bad request cannot fail the others.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from mlgate.registry.pyfunc import predict, scoring_errors, sklearn_model
from mlgate.serving.fastpath import (
    NumericSchema,
    array_predictor,
    linear_predictor,
    thread_pools,
)
from mlgate.serving.threads import ThreadCap

log = logging.getLogger("mlgate.serve")

ROWS = "rows"  # decoded numeric rows from the fast path (see mlgate.serving.fastpath)
FRAME = "frame"  # a DataFrame parsed by MLflow's parser
ALONE = "alone"  # (data, params) that cannot be combined: params, or not a DataFrame

Outcome = tuple[bool, Any]  # (True, predictions) or (False, the exception)

# A cycle whose scoring is expected to take less than this runs on the event loop. Handing it
# to the predict thread costs more: while the loop is busy, the thread waits for the GIL until
# the loop gives it up, at the latest after the interpreter's switch interval (5 ms by
# default), and a predict thread computing in Python holds the loop up as long in turn.
# Measured, inline scoring gave bigger batches and 16% more requests/s. The budget was 1 ms: on
# a machine whose two cores were shared with other work, a 22-32-row cycle of a logistic
# regression took 1.7 ms on the loop, and py-spy found most scoring on the thread (3,000
# against 6,400 req/s inline, two profiled runs). Anything slower, and any version not yet
# timed, runs on the predict thread, so that the loop keeps answering /ping and timeouts.
INLINE_BUDGET = 0.005
INLINE_ROWS = 256
# A call on the predict thread is timed with its waits for the GIL, so a version is timed on
# the loop: a cycle expected under PROBE_LIMIT is scored there once in PROBE_EVERY (blocking the
# loop for at most that long); see Batcher.score.
PROBE_LIMIT = 0.02
PROBE_EVERY = 16


class Batcher:
    """How one version scores a group of queued requests (on the predict thread, or on the
    event loop for cycles measured as cheap: see :data:`INLINE_BUDGET`)."""

    def __init__(
        self, model: Any, dispatcher: Dispatcher, schema: NumericSchema | None = None
    ) -> None:
        self.model = model
        self.schema = schema
        self.dispatcher = dispatcher
        self.cost: float | None = None  # moving average of a score() call, seconds
        self.timed_on_loop = False  # cost comes from calls on the event loop (see PROBE_LIMIT)
        # How the fast path's rows are scored: ``_build_rows`` makes them what the model is
        # called with, ``_run_rows`` calls it. The rows already match the input schema exactly,
        # so MLflow's per-call check of it is redundant for the sklearn flavor ("frame"), and
        # the classes that compute on an ndarray anyway get one directly ("array"; see
        # mlgate.serving.fastpath), and linear models whose predict is scikit-learn's generic
        # one are computed without its per-call validation ("linear"). Otherwise pyfunc
        # predict on a frame ("pyfunc").
        self.path = "pyfunc"
        self._build_rows: Callable[[list[list[Any]]], Any] | None = None
        self._run_rows: Callable[[Any], Any] = partial(predict, model)
        if schema is not None:
            self._build_rows = schema.frame
            sk = sklearn_model(model)
            if sk is not None and (pools := thread_pools(sk.estimator)):
                log.warning(
                    "%s starts a thread pool on every predict call (%s), which costs more than it "
                    "saves on small batches; set n_jobs=1 before logging the model",
                    type(sk.estimator).__name__,
                    ", ".join(f"{k}={v}" for k, v in pools.items()),
                )
            if sk is not None:
                self.path, self._run_rows = "frame", partial(_checked, sk.bound())
                array_fn = array_predictor(sk.estimator, sk.method, schema)
                if array_fn is not None:
                    self.path, self._build_rows = "array", schema.array
                    self._run_rows = partial(_checked, array_fn)
                    linear_fn = linear_predictor(sk.estimator, sk.method, schema)
                    if linear_fn is not None:
                        self.path, self._run_rows = "linear", partial(_checked, linear_fn)

    def submit(self, data: Any, params: Any) -> asyncio.Future[Any]:
        """Score a parsed input (DataFrames are batched; anything else runs alone)."""
        import pandas as pd

        # Through the dispatcher either way, so that a model never predicts in two threads at
        # once (a cheap cycle on the event loop and this one on the predict thread).
        if params or not isinstance(data, pd.DataFrame):
            return self.dispatcher.enqueue(self, ALONE, (data, params))
        return self.dispatcher.enqueue(self, FRAME, data)

    def submit_rows(self, rows: list[list[Any]]) -> asyncio.Future[Any]:
        """Score numeric rows decoded by the fast path."""
        return self.dispatcher.enqueue(self, ROWS, rows)

    def score(self, kind: str, payloads: list[Any], *, on_loop: bool = False) -> list[Outcome]:
        """Predictions for each payload, in order; the call's duration updates :attr:`cost`.

        A call on the event loop is timed as it ran (its first timing replaces those of calls on
        the thread). A call on the predict thread is timed with its waits for the GIL, so its
        timing is only an upper bound: it can lower the estimate, never raise it. (That is
        also how an estimate inflated by one preempted call on the loop comes back down.)
        """
        started = time.perf_counter()
        try:
            return self._score(kind, payloads)
        finally:
            took = time.perf_counter() - started
            if self.cost is None or (on_loop and not self.timed_on_loop):
                self.cost = took
            elif on_loop:
                self.cost = 0.8 * self.cost + 0.2 * took
            else:
                self.cost = min(self.cost, took)
            self.timed_on_loop = self.timed_on_loop or on_loop

    def _score(self, kind: str, payloads: list[Any]) -> list[Outcome]:
        """One combined call when it can be, else (or if it fails) one call per payload."""
        import pandas as pd

        if kind == ALONE:
            return [_attempt(predict, self.model, data, params) for data, params in payloads]
        build = self._build_rows if kind == ROWS else None
        run = self._run_rows if build is not None else partial(predict, self.model)
        if len(payloads) > 1 and (
            build is not None or all(list(d.columns) == list(payloads[0].columns) for d in payloads)
        ):
            try:
                if build is not None:
                    combined = build([r for p in payloads for r in p])
                else:
                    combined = pd.concat(payloads, ignore_index=True)
                parts = _split(run(combined), [len(p) for p in payloads])
            except Exception:  # noqa: BLE001 - isolate the bad request: score one by one below
                parts = None
            if parts is not None:
                return [(True, part) for part in parts]
        if build is None:
            return [_attempt(run, payload) for payload in payloads]
        return [_attempt(lambda p: run(build(p)), payload) for payload in payloads]


def _attempt(fn: Callable[..., Any], *args: Any) -> Outcome:
    try:
        return True, fn(*args)
    except Exception as exc:  # noqa: BLE001 - delivered to the one request it belongs to
        return False, exc


def _checked(fn: Callable[[Any], Any], data: Any) -> Any:
    with scoring_errors(data):
        return fn(data)


class Dispatcher:
    """The queue and the batch loop shared by every version of one server.

    With a ``timeout``, a request not scored within that many seconds fails with
    :class:`asyncio.TimeoutError` (and is skipped if its cycle has not started). One timer
    serves every request: with a single timeout, deadlines expire in the order requests came,
    so they wait in one queue (a timer per request, or ``asyncio.wait_for``'s task per request,
    cost more than the rest of the batching).
    """

    def __init__(
        self,
        max_batch: int,
        executor: ThreadPoolExecutor,
        timeout: float | None = None,
        threads: ThreadCap | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.executor = executor
        self.timeout = timeout
        #: The native thread pools' cap, set in whichever thread scores (see mlgate.serving.threads)
        self.threads = threads or ThreadCap(None)
        self._queue: deque[tuple[Batcher, str, Any, asyncio.Future[Any]]] = deque()
        self._wakeup: asyncio.Future[None] | None = None  # the batch loop waits on it when idle
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop  # the worker's (set with it)
        self._deadlines: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._over_budget = 0  # cycles sent to the thread since the last probe (see _cheap)

    def enqueue(self, batcher: Batcher, kind: str, payload: Any) -> asyncio.Future[Any]:
        """Queue one request's input; the future gets its predictions (or its exception)."""
        worker = self._worker
        if worker is None or worker.done():
            loop = self._loop = asyncio.get_running_loop()
            self._wakeup = self._timer = None  # (a new event loop: forget the last one's)
            self._worker = loop.create_task(self._work())
        else:
            # the worker's loop: asyncio.get_running_loop() costs a getpid() system call on
            # Python 3.11 (230 ns here), for every request
            loop = self._loop
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append((batcher, kind, payload, fut))
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)
        if self.timeout is not None:
            deadlines = self._deadlines
            while deadlines and deadlines[0][1].done():  # answered: forget it
                deadlines.popleft()
            deadlines.append((loop.time() + self.timeout, fut))
            if self._timer is None:
                self._timer = loop.call_at(deadlines[0][0], self._expire)
        return fut

    def _expire(self) -> None:
        """Fail the requests whose deadline has passed; wake up again at the next one."""
        self._timer = None
        deadlines = self._deadlines
        loop = asyncio.get_running_loop()
        now = loop.time()
        while deadlines and (deadlines[0][1].done() or deadlines[0][0] <= now):
            _, fut = deadlines.popleft()
            if not fut.done():
                fut.set_exception(asyncio.TimeoutError())
        if deadlines:
            self._timer = loop.call_at(deadlines[0][0], self._expire)

    async def _work(self) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            if not queue:
                self._wakeup = loop.create_future()
                await self._wakeup
            await asyncio.sleep(0)  # let requests already read by the loop join this batch
            groups: dict[tuple[int, str], _Group] = {}
            for _ in range(min(len(queue), self.max_batch)):
                batcher, kind, payload, fut = queue.popleft()
                if fut.done():  # its request timed out or went away while queued
                    continue
                group = groups.get((id(batcher), kind))
                if group is None:
                    group = groups[id(batcher), kind] = _Group(batcher, kind)
                group.payloads.append(payload)
                group.futures.append(fut)
            if groups:
                await self._cycle(loop, list(groups.values()))

    async def _cycle(self, loop: asyncio.AbstractEventLoop, work: list[_Group]) -> None:
        """Score one cycle's groups (inline or on the predict thread) and answer each request."""
        try:
            if self._cheap(work):
                results = _score_all(work, self.threads, on_loop=True)
            else:
                results = await loop.run_in_executor(self.executor, _score_all, work, self.threads)
        except Exception as exc:  # noqa: BLE001 - e.g. the executor shut down: fail the batch
            results = [[(False, exc)] * len(g.futures) for g in work]
        for group, outcomes in zip(work, results, strict=True):
            for fut, (ok, value) in zip(group.futures, outcomes, strict=True):
                if fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)

    def _cheap(self, work: list[_Group]) -> bool:
        """Score on the event loop itself? Only when every group's calls have been measured and
        together are expected to take under :data:`INLINE_BUDGET`, and the cycle is no bigger
        than :data:`INLINE_ROWS` rows (one request with many rows runs on the thread).

        A cycle expected to take under :data:`PROBE_LIMIT` is still scored on the loop once in
        :data:`PROBE_EVERY`, to be timed there: timed on the predict thread, with its waits for
        the GIL, a cheap model stayed on the thread for good (half the scoring samples of a
        profile at 32 clients).
        """
        total, rows = 0.0, 0
        for group in work:
            if group.batcher.cost is None or group.kind == ALONE:
                return False
            total += group.batcher.cost
            rows += sum(len(p) for p in group.payloads)
        if rows > INLINE_ROWS or total >= PROBE_LIMIT:
            return False
        if total < INLINE_BUDGET:
            return True
        self._over_budget += 1
        if self._over_budget < PROBE_EVERY:
            return False
        self._over_budget = 0
        return True

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        if self._timer is not None:
            self._timer.cancel()


@dataclass
class _Group:
    """One version's requests of one kind in a cycle."""

    batcher: Batcher
    kind: str
    payloads: list[Any] = field(default_factory=list)
    futures: list[asyncio.Future[Any]] = field(default_factory=list)


def _score_all(
    work: list[_Group], threads: ThreadCap, on_loop: bool = False
) -> list[list[Outcome]]:
    """One trip (to the predict thread, unless ``on_loop``): every version's group, back to back."""
    threads.ensure()
    return [g.batcher.score(g.kind, g.payloads, on_loop=on_loop) for g in work]


def _split(out: Any, sizes: list[int]) -> list[Any] | None:
    """Cut a batch's predictions back into per-request pieces; None if the shape is unexpected."""
    import numpy as np
    import pandas as pd

    total = sum(sizes)
    if isinstance(out, pd.DataFrame | pd.Series):
        if len(out) != total:
            return None
        bounds = np.cumsum([0, *sizes])
        return [out.iloc[a:b].reset_index(drop=True) for a, b in itertools.pairwise(bounds)]
    if isinstance(out, list):
        out = np.asarray(out, dtype=object) if out and isinstance(out[0], dict) else np.asarray(out)
    if isinstance(out, np.ndarray) and out.ndim >= 1 and out.shape[0] == total:
        bounds = np.cumsum([0, *sizes])
        return [out[a:b] for a, b in itertools.pairwise(bounds)]
    return None
