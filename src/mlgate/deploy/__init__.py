"""``mlgate build`` and ``mlgate export``: from the registry to images and cluster manifests.

* :mod:`mlgate.deploy.recipe` — what goes into the image: the Dockerfile, the pinned
  requirements, labels and tag (pure; no Docker, no MLflow).
* :mod:`mlgate.deploy.engine` — the one module that talks to a Docker engine (the ``docker`` SDK);
  maps its errors to mlgate's.
* :mod:`mlgate.deploy.wheelhouse` — every wheel the image needs, downloaded on the host first, so
  that the build itself needs no network (``--offline`` / ``--wheelhouse``).
* :mod:`mlgate.deploy.build` — the use case: resolve once, verify the artifact digest, build,
  check the model loads inside the image, tag, push, record the image on the model version.
* :mod:`mlgate.deploy.export` — Kubernetes, KServe and Seldon manifests from one read of the
  registry (aliases, traffic, recorded images, artifact locations); pure, deterministic rendering.
"""
