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

# Imported eagerly (it is light: numpy and blake3, pandas on first use) so that the function
# `mlgate.fingerprint` is never shadowed by the module of the same name.
from mlgate.fingerprint import Fingerprint, fingerprint

_LAZY: dict[str, str] = {
    "Store": "mlgate.registry.store",
    "Registration": "mlgate.versioning.registration",
    "register": "mlgate.versioning.registration",
    "attach": "mlgate.versioning.registration",
    "Attachment": "mlgate.versioning.registration",
    "show": "mlgate.versioning.registration",
    "Lineage": "mlgate.lineage",
    "Policy": "mlgate.promotion.policy",
    "load_policy": "mlgate.promotion.policy",
    "Decision": "mlgate.promotion.gates",
    "GateResult": "mlgate.promotion.gates",
    "Event": "mlgate.promotion.ledger",
    "export": "mlgate.deploy.export",
    "ExportOptions": "mlgate.deploy.export",
    "check": "mlgate.promotion.workflow",
    "promote": "mlgate.promotion.workflow",
    "rollback": "mlgate.promotion.workflow",
    "history": "mlgate.promotion.workflow",
    "status": "mlgate.promotion.workflow",
}

if TYPE_CHECKING:
    from mlgate.deploy.export import ExportOptions, export
    from mlgate.lineage import Lineage
    from mlgate.promotion.gates import Decision, GateResult
    from mlgate.promotion.ledger import Event
    from mlgate.promotion.policy import Policy, load_policy
    from mlgate.promotion.workflow import check, history, promote, rollback, status
    from mlgate.registry.store import Store
    from mlgate.versioning.registration import Attachment, Registration, attach, register, show


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
