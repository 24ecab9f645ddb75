"""mlgate: lineage, promotion gates, guarded alias moves and a ledger for MLflow models.

The public API is re-exported here and imported lazily, so ``import mlgate`` (and
``mlgate --help``) stay fast and never import MLflow until a function that needs it is called.

    >>> import mlgate
    >>> reg = mlgate.register(model, name="iris", train_data=train, eval_data=test,
    ...                       metrics={"accuracy": 0.97})
    >>> decision = mlgate.check("iris", reg.number, to="champion")
    >>> event = mlgate.promote("iris", reg.number, to="champion")
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

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

__version__ = "0.1.0"

# Imported eagerly (it is light: numpy and blake3, pandas on first use) so that the function
# `mlgate.fingerprint` is never shadowed by the module of the same name.
from mlgate.fingerprint import Fingerprint, fingerprint

_LAZY: dict[str, str] = {
    "Store": "mlgate._mlflow",
    "Registration": "mlgate.registration",
    "register": "mlgate.registration",
    "attach": "mlgate.registration",
    "Attachment": "mlgate.registration",
    "show": "mlgate.registration",
    "Lineage": "mlgate.lineage",
    "Policy": "mlgate.policy",
    "load_policy": "mlgate.policy",
    "Decision": "mlgate.gates",
    "GateResult": "mlgate.gates",
    "Event": "mlgate.ledger",
    "export": "mlgate.deploy.export",
    "ExportOptions": "mlgate.deploy.export",
    "check": "mlgate.promotion",
    "promote": "mlgate.promotion",
    "rollback": "mlgate.promotion",
    "history": "mlgate.promotion",
    "status": "mlgate.promotion",
}

if TYPE_CHECKING:
    from mlgate._mlflow import Store
    from mlgate.deploy.export import ExportOptions, export
    from mlgate.gates import Decision, GateResult
    from mlgate.ledger import Event
    from mlgate.lineage import Lineage
    from mlgate.policy import Policy, load_policy
    from mlgate.promotion import check, history, promote, rollback, status
    from mlgate.registration import Attachment, Registration, attach, register, show


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
    "Attachment",
    "ConflictError",
    "Decision",
    "DockerError",
    "Event",
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
    "Store",
    "TrackingServerError",
    "UsageError",
    "__version__",
    "attach",
    "check",
    "export",
    "fingerprint",
    "history",
    "load_policy",
    "promote",
    "register",
    "rollback",
    "show",
    "status",
]
