"""How every failure of MLflow (or the HTTP layer below it) becomes an mlgate error.

Every MLflow failure is translated here, by ``error_code`` (never by message text), into an
:mod:`mlgate.errors` class:

==============================  ==========================================
MLflow error_code               mlgate error
==============================  ==========================================
RESOURCE_DOES_NOT_EXIST         NotFoundError (or ``None`` where absence is an answer)
RESOURCE_ALREADY_EXISTS         AlreadyExistsError (internal: the lease uses it)
INVALID_PARAMETER_VALUE & co.   UsageError
PERMISSION_DENIED, UNAUTH...    NotPermittedError
anything else, connection       TrackingServerError
==============================  ==========================================
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mlgate import config
from mlgate.errors import (
    AlreadyExistsError,
    MlgateError,
    NotFoundError,
    NotPermittedError,
    TrackingServerError,
    UsageError,
)

_USAGE_CODES = {
    "INVALID_PARAMETER_VALUE",
    "BAD_REQUEST",
    "MALFORMED_REQUEST",
    "INVALID_STATE",
    "RESOURCE_LIMIT_EXCEEDED",
}
_AUTH_CODES = {"PERMISSION_DENIED", "UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED"}


def _error_code(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)
    return str(code) if code else None


def translate(exc: BaseException, what: str) -> MlgateError:
    """Map an exception raised by MLflow (or the HTTP layer below it) to an mlgate error."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlgateError):
        return exc
    reason = _unreachable(exc)
    if reason is not None:
        sep = " " if reason.startswith("at ") else ": "
        return TrackingServerError(f"{what}: cannot reach the tracking server{sep}{reason}")
    if isinstance(exc, MlflowException):
        code = _error_code(exc)
        message = config.redact(exc.message.splitlines()[0] if exc.message else str(exc))
        if code == "RESOURCE_DOES_NOT_EXIST":
            return NotFoundError(f"{what}: not found")
        if code == "RESOURCE_ALREADY_EXISTS":
            return AlreadyExistsError(f"{what}: already exists")
        if code in _AUTH_CODES:
            return NotPermittedError(f"{what}: not permitted by the tracking server ({code})")
        if code in _USAGE_CODES:
            return UsageError(f"{what}: {message}")
        return TrackingServerError(f"{what}: MLflow error {code}: {message}")
    name = type(exc).__name__
    return TrackingServerError(
        f"{what}: {name}: {config.redact(str(exc).splitlines()[0] if str(exc) else name)}"
    )


def _unreachable(exc: BaseException) -> str | None:
    """Why the server could not be reached, when ``exc`` (or what it wraps) says so.

    MLflow wraps the HTTP layer's exception in an ``INTERNAL_ERROR`` whose message is hundreds
    of characters long; the wrapped exception's type says what happened, and its request which
    server it was (shown without credentials).
    """
    import requests

    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, requests.exceptions.RequestException):
            if isinstance(seen, requests.exceptions.Timeout) or _read_timeout(seen):
                why = f"no answer in {_request_timeout()}"
            elif isinstance(seen, requests.exceptions.ConnectionError):
                why = "connection refused or reset"
            else:
                return None
            url = getattr(getattr(seen, "request", None), "url", None)
            if url:
                import urllib.parse

                parts = urllib.parse.urlsplit(str(url))
                return config.redact(f"at {parts.scheme}://{parts.netloc}: {why}")
            return why
        seen = seen.__cause__ or seen.__context__
    return None


def _read_timeout(exc: BaseException) -> bool:
    """requests reports reads that timed out on every retry as a ConnectionError wrapping
    urllib3's MaxRetryError, whose ``reason`` says it was a timeout."""
    import urllib3.exceptions

    for arg in getattr(exc, "args", ()):
        if isinstance(getattr(arg, "reason", None), urllib3.exceptions.TimeoutError):
            return True
    return False


def _request_timeout() -> str:
    import os

    value = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "")
    return f"{value} s (each try)" if value else "time"


@contextlib.contextmanager
def _calling(what: str) -> Iterator[None]:
    """Translate anything MLflow raises inside the block."""
    try:
        yield
    except MlgateError:
        raise
    except Exception as exc:
        raise translate(exc, what) from exc


def _first_line(text: str, limit: int = 500) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line[:limit]
