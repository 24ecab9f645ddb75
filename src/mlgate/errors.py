"""Every error mlgate raises, and the exit code the CLI gives it.

The library never prints and never exits: it raises one of these, and ``mlgate.cli`` maps the
class to an exit code in one place. Third-party exceptions (MLflow's ``MlflowException``, OS
errors, Docker errors) are translated at their boundary module, never leaked raw.

::

    MlgateError                  exit 1  unexpected / environment failure
    ├── TrackingServerError      exit 1  tracking server unreachable or answering 5xx
    ├── DockerError              exit 1  Docker engine unreachable, or an image build failed
    ├── UsageError               exit 2  bad input: arguments, paths, names
    │   ├── PolicyError          exit 2  malformed policy file (names file and key)
    │   ├── NotFoundError        exit 2  a model, version, alias or path that does not exist
    │   ├── NoStoreError         exit 2  no tracking store there (never read as "absent")
    │   ├── FingerprintError     exit 2  data that has no canonical encoding
    │   └── ScoringInputError    exit 2  a scoring request the model cannot take (HTTP 4xx)
    ├── GateRejected             exit 3  a promotion gate said no (carries the decision)
    │   └── IntegrityError       exit 3  an artifact no longer matches its recorded digest
    ├── ConflictError            exit 4  the alias moved under us, or the lease is held
    │   ├── LeaseHeldError       exit 4  another writer holds the model's lease
    │   └── AlreadyExistsError   exit 4  an entity with that name exists (the lease uses it)
    └── NotPermittedError        exit 5  the tracking server refused (auth / permissions)

Exit code 0 means success. ``EXIT_CODES`` below is the single source of truth; the README's table
is tested against it.
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3
EXIT_CONFLICT = 4
EXIT_NOT_PERMITTED = 5

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_ERROR: "unexpected error, or the tracking server could not be reached",
    EXIT_USAGE: "bad usage or input: arguments, policy file, missing model/version/alias/path, "
    "a port already in use",
    EXIT_REJECTED: "a gate rejected the promotion (or an artifact failed its digest check)",
    EXIT_CONFLICT: "conflict: the alias moved since the check started, or the lease is held",
    EXIT_NOT_PERMITTED: "not permitted: the tracking server refused the credentials",
}


class MlgateError(Exception):
    """Base class of every error mlgate raises on purpose."""

    exit_code: int = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class TrackingServerError(MlgateError):
    """The tracking server could not be reached, timed out, or failed internally."""

    exit_code = EXIT_ERROR


class DockerError(MlgateError):
    """The Docker engine could not be reached, or building, checking or pushing an image failed."""

    exit_code = EXIT_ERROR


class UsageError(MlgateError):
    """The caller asked for something malformed: bad argument, name, or path."""

    exit_code = EXIT_USAGE


class PolicyError(UsageError):
    """A policy file is malformed. Always names the file and the key path."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.key = key
        self.problem = problem


class NotFoundError(UsageError):
    """A model, version, alias, run or path does not exist."""


class NoStoreError(UsageError):
    """No tracking store where one was named (a SQLite file that does not exist), or no tracking
    server configured at all (an empty ``MLFLOW_TRACKING_URI``, the embedded default in CI).

    Deliberately not a :class:`NotFoundError`: code that reads "not found" as "not set yet"
    (no champion, a first promotion) must never see a missing registry that way.
    """


class FingerprintError(UsageError):
    """Data that mlgate cannot encode canonically (so cannot fingerprint reproducibly)."""


class ScoringInputError(UsageError):
    """A scoring request that MLflow's protocol (or the model) rejects; ``status`` is its 4xx."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class GateRejected(MlgateError):
    """A promotion gate (or a rollout's bounds) rejected the candidate.

    ``decision`` holds the full evidence and ``event`` the ledger event recorded for the
    refusal; both are given when it is raised, never added later.
    """

    exit_code = EXIT_REJECTED

    def __init__(self, message: str, *, decision: Any = None, event: Any = None) -> None:
        super().__init__(message)
        self.decision = decision
        self.event = event


class IntegrityError(GateRejected):
    """A model artifact (or data) no longer matches the digest recorded at registration."""


class ConflictError(MlgateError):
    """Someone else changed the alias between the check and the move.

    ``event`` is the ledger event recorded for the conflict (given when it is raised).
    """

    exit_code = EXIT_CONFLICT

    def __init__(self, message: str, *, event: Any = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.event = event


class LeaseHeldError(ConflictError):
    """Another writer holds the promotion lease for this model."""


class AlreadyExistsError(ConflictError):
    """An entity with that name exists already (how the lease knows another writer won)."""


class NotPermittedError(MlgateError):
    """The tracking server refused the request for lack of permission or credentials.

    ``event`` is the ledger event recorded for the refused move, when there is one.
    """

    exit_code = EXIT_NOT_PERMITTED

    def __init__(self, message: str, *, event: Any = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.event = event


__all__ = [
    "EXIT_CODES",
    "EXIT_CONFLICT",
    "EXIT_ERROR",
    "EXIT_NOT_PERMITTED",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "AlreadyExistsError",
    "ConflictError",
    "DockerError",
    "FingerprintError",
    "GateRejected",
    "IntegrityError",
    "LeaseHeldError",
    "MlgateError",
    "NoStoreError",
    "NotFoundError",
    "NotPermittedError",
    "PolicyError",
    "ScoringInputError",
    "TrackingServerError",
    "UsageError",
]
