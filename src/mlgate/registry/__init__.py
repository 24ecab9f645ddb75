"""The MLflow boundary: the only package that imports ``mlflow``.

Everything above works with the typed records (``VersionRecord``, ``ModelRecord``, ``RunRecord``)
and mlgate's errors; every MLflow failure is translated here, by ``error_code``, never by
message text. Imports only :mod:`mlgate.config`, :mod:`mlgate.errors` and the pure modules.

* :mod:`mlgate.registry.store` — registry and tracking calls (``Store``).
* :mod:`mlgate.registry.pyfunc` — loading pyfunc models and MLflow's scoring request format.
* :mod:`mlgate.registry.refs` — ``NAME``, ``NAME@ALIAS``, ``NAME/VERSION`` and resolving them.
* :mod:`mlgate.registry.lease` — the per-model lease and guarded alias moves.
* :mod:`mlgate.registry._translate` — MLflow's exceptions to mlgate's.
"""
