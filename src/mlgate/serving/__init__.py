"""The data plane: champion/challenger serving that follows the registry. Read-only.

A server never writes to the registry: it reads aliases and the traffic tag, loads versions and
answers requests. Everything that changes what serves (``mlgate traffic``, ``mlgate rollout``)
lives in :mod:`mlgate.promotion`. May import :mod:`mlgate.registry` and the pure modules below
it; never :mod:`mlgate.promotion`, :mod:`mlgate.versioning` or :mod:`mlgate.deploy`.

* :mod:`mlgate.serving.routing` — which version answers a request (pure), and the one registry
  read that says what serves.
* :mod:`mlgate.serving.follower` — what serves: :class:`ServeConfig`, each :class:`LoadedVersion`,
  and the :class:`Follower` that keeps them in step with the registry.
* :mod:`mlgate.serving.handlers` — :class:`Handlers`, one method per endpoint, each returning a
  :class:`Reply` (callable in-process, no HTTP).
* :mod:`mlgate.serving.asgi` — the ASGI app: a path table in front of the handlers.
* :mod:`mlgate.serving.server` — ``create_app``, binding the port, running uvicorn.
* :mod:`mlgate.serving.v2` — the Open Inference Protocol's codec (V2 tensors, metadata).
* :mod:`mlgate.serving.batching` / :mod:`mlgate.serving.fastpath` — adaptive batching and the
  array fast path for scikit-learn models.
* :mod:`mlgate.serving.telemetry` — the per-version serving counters (:class:`Telemetry`), the
  text of ``/metrics`` and its parser. ("Metrics" elsewhere means gate metrics, in
  :mod:`mlgate.promotion`; here it is only the endpoint's name.)
* :mod:`mlgate.serving.workers` — ``--workers N``: the supervisor, the workers on one socket,
  and the shared directory through which ``/metrics`` (and later whole-server state) spans them.
* :mod:`mlgate.serving.threads` — the native thread pools' cap (OpenMP, BLAS).
* :mod:`mlgate.serving.probe` — the image's stdlib-only health check.
"""
