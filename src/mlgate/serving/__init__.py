"""The data plane: champion/challenger serving that follows the registry. Read-only.

A server never writes to the registry: it reads aliases and the traffic tag, loads versions and
answers requests. Everything that changes what serves (``mlgate traffic``, ``mlgate rollout``)
lives in :mod:`mlgate.promotion`. May import :mod:`mlgate.registry` and the pure modules below
it; never :mod:`mlgate.promotion`, :mod:`mlgate.versioning` or :mod:`mlgate.deploy`.

* :mod:`mlgate.serving.routing` — which version answers a request (pure), and the one registry
  read that says what serves.
* :mod:`mlgate.serving.server` — the HTTP server (MLflow's scoring protocol) and its follower.
* :mod:`mlgate.serving.v2` — the Open Inference Protocol (V2 REST) next to ``/invocations``.
* :mod:`mlgate.serving.batching` / :mod:`mlgate.serving.fastpath` — adaptive batching and the
  array fast path for scikit-learn models.
* :mod:`mlgate.serving.lane` — scoring requests that skip Starlette's middleware and router.
* :mod:`mlgate.serving.telemetry` — per-version counters and ``/metrics``.
* :mod:`mlgate.serving.probe` — the image's stdlib-only health check.
"""
