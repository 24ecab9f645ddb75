"""Model versions with lineage: register, attach (adopt a plain-MLflow version), show.

May import :mod:`mlgate.promotion` (its policy and ledger, to record registrations),
:mod:`mlgate.registry` and the pure modules; never :mod:`mlgate.deploy`, :mod:`mlgate.api` or
:mod:`mlgate.cli`.

* :mod:`mlgate.versioning.registration` — ``register``, ``attach``, ``show``.
"""
