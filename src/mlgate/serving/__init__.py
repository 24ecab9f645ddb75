"""Champion/challenger serving that follows the registry, and progressive rollout.

* :mod:`mlgate.serving.routing` — which version answers a request (pure, no sockets).
* :mod:`mlgate.serving.control` — the registry as control plane: aliases + ``mlgate.traffic``.
* :mod:`mlgate.serving.server` — the HTTP server (MLflow's scoring protocol) and its follower.
* :mod:`mlgate.serving.rollout` — shift traffic step by step on live metrics.
"""
