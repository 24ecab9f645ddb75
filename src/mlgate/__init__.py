"""mlgate: lineage, promotion gates, guarded alias moves and a ledger for MLflow models.

The public API is :mod:`mlgate.api` — one function per use case, the same calls the ``mlgate``
command makes — re-exported here with the values they return. Everything is imported lazily, so
``import mlgate`` (and ``mlgate --help``) stay fast and never import MLflow until a function
that needs it is called.

    >>> import mlgate
    >>> reg = mlgate.register(model, name="iris", train_data=train, eval_data=test,
    ...                       metrics={"accuracy": 0.97})
    >>> decision = mlgate.check("iris", reg.number, to="champion")
    >>> event = mlgate.promote("iris", reg.number, to="champion")
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from mlgate._version import __version__
from mlgate.errors import (
    ConflictError,
    DockerError,
    FingerprintError,
    GateRejected,
    IntegrityError,
    LeaseHeldError,
    MlgateError,
    NoStoreError,
    NotFoundError,
    NotPermittedError,
    PolicyError,
    TrackingServerError,
    UsageError,
)

# Imported eagerly (it is light: numpy and blake3, pandas on first use), before the function is
# bound below, so that the function `mlgate.fingerprint` is never shadowed by the module of the
# same name. `mlgate.api` imports nothing heavy until one of its functions is called.
from mlgate.fingerprint import Fingerprint

# isort: split
from mlgate.api import fingerprint

#: The use cases (one function each, in :mod:`mlgate.api`) and the values they return.
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
            "CURRENT",
            "ServeCheck",
            "abort_rollout",
            "attach",
            "build",
            "check",
            "export",
            "history",
            "promote",
            "register",
            "rollback",
            "rollout",
            "rollout_status",
            "serve",
            "show",
            "status",
            "traffic",
        ),
        "mlgate.api",
    ),
    "Store": "mlgate.registry.store",
    "Registration": "mlgate.versioning.registration",
    "Attachment": "mlgate.versioning.registration",
    "Lineage": "mlgate.lineage",
    "Policy": "mlgate.promotion.policy",
    "load_policy": "mlgate.promotion.policy",
    "Decision": "mlgate.promotion.gates",
    "GateResult": "mlgate.promotion.gates",
    "Event": "mlgate.promotion.ledger",
    "Status": "mlgate.promotion.workflow",
    "RolloutResult": "mlgate.promotion.rollout",
    "RolloutState": "mlgate.promotion.rollout",
    "BuildResult": "mlgate.deploy.build",
    "Export": "mlgate.deploy.export",
    "ExportOptions": "mlgate.deploy.export",
}

if TYPE_CHECKING:
    from mlgate.api import (
        CURRENT,
        ServeCheck,
        abort_rollout,
        attach,
        build,
        check,
        export,
        history,
        promote,
        register,
        rollback,
        rollout,
        rollout_status,
        serve,
        show,
        status,
        traffic,
    )
    from mlgate.deploy.build import BuildResult
    from mlgate.deploy.export import Export, ExportOptions
    from mlgate.lineage import Lineage
    from mlgate.promotion.gates import Decision, GateResult
    from mlgate.promotion.ledger import Event
    from mlgate.promotion.policy import Policy, load_policy
    from mlgate.promotion.rollout import RolloutResult, RolloutState
    from mlgate.promotion.workflow import Status
    from mlgate.registry.store import Store
    from mlgate.versioning.registration import Attachment, Registration


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlgate' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CURRENT",
    "Attachment",
    "BuildResult",
    "ConflictError",
    "Decision",
    "DockerError",
    "Event",
    "Export",
    "ExportOptions",
    "Fingerprint",
    "FingerprintError",
    "GateRejected",
    "GateResult",
    "IntegrityError",
    "LeaseHeldError",
    "Lineage",
    "MlgateError",
    "NoStoreError",
    "NotFoundError",
    "NotPermittedError",
    "Policy",
    "PolicyError",
    "Registration",
    "RolloutResult",
    "RolloutState",
    "ServeCheck",
    "Status",
    "Store",
    "TrackingServerError",
    "UsageError",
    "__version__",
    "abort_rollout",
    "attach",
    "build",
    "check",
    "export",
    "fingerprint",
    "history",
    "load_policy",
    "promote",
    "register",
    "rollback",
    "rollout",
    "rollout_status",
    "serve",
    "show",
    "status",
    "traffic",
]
