"""Native thread pools (OpenMP, BLAS) capped while serving.

A tree ensemble or a BLAS call on a one-row batch spends more time starting and syncing its
thread pool than computing: HistGradientBoostingClassifier (100 trees) served 4,749 req/s with
OpenMP's default pool against 8,179 with one thread at 32 clients on two cores. The server
batches requests and runs one worker per core, so one native thread per scoring thread is the
default (``mlgate serve --threads``, ``MLGATE_THREADS``).

The cap is set with threadpoolctl, once per scoring thread and not around each batch (a
``threadpool_limits()`` call costs ~2.3 ms; a ``limit()`` on a kept controller ~14 us). It must be
set in each thread that scores: OpenMP's limit (libgomp's ``omp_set_num_threads``) binds only the
calling thread, so a limit set on the main thread leaves the predict thread at the default
(BLAS limits are process-wide). Libraries a model brings in when it loads (xgboost's OpenMP,
say) are only seen by a new scan: :meth:`ThreadCap.rescan` after each load marks every thread's
limit stale, and the next batch each thread scores sets it again.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

log = logging.getLogger("mlgate.serve")

#: Read by OpenMP, OpenBLAS and MKL when they load.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def preset_environment(limit: int | None) -> None:
    """Set the libraries' own variables to ``limit`` where the environment does not already:
    a library loaded from now on (scikit-learn's OpenMP when a version loads, the workers'
    everything) starts with that many threads, as with ``OMP_NUM_THREADS=1``, and makes no pool
    threads at all; those loaded already are capped by :class:`ThreadCap`."""
    if limit is not None:
        for name in THREAD_ENV:
            os.environ.setdefault(name, str(limit))


class ThreadCap:
    """At most ``limit`` native threads per pool, in every thread that scores (None: no cap)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._generation = 0  # bumped by rescan(): each thread's limit is then stale
        self._controller: Any = None
        self._local = threading.local()
        self._lock = threading.Lock()

    def rescan(self) -> None:
        """Find the native libraries loaded now (after a model load); threads apply it lazily."""
        with self._lock:
            if self.limit is not None:
                self._scan()

    def _scan(self) -> None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # an environment without it (a dependency of mlgate): no cap
            log.warning("threadpoolctl is not installed: native thread pools are not capped")
            self.limit = None
            return
        self._controller = ThreadpoolController()
        self._generation += 1

    def ensure(self) -> None:
        """Cap the calling thread's pools, unless already done since the last :meth:`rescan`."""
        if self.limit is None or getattr(self._local, "generation", -1) == self._generation:
            return
        with self._lock:
            if self._controller is None:
                self._scan()
                if self.limit is None:
                    return
            controller, generation = self._controller, self._generation
        # kept: threadpoolctl's limiter restores the old limits only when asked to
        self._local.limiter = controller.limit(limits=self.limit)
        self._local.generation = generation
