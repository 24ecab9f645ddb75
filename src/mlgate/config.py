"""Where mlgate keeps things: the tracking URI, the embedded default store, the cache.

Nothing here is computed at import time; every function reads the environment when called, so
a notebook that sets ``MLFLOW_TRACKING_URI`` after ``import mlgate`` is honoured.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
HOME_ENV = "MLGATE_HOME"
CACHE_ENV = "MLGATE_CACHE_DIR"
EMBEDDED_DB = "mlflow.db"


def home() -> Path:
    """The directory that holds the embedded store: ``$MLGATE_HOME`` or the working directory."""
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser().resolve() if value else Path.cwd()


def embedded_tracking_uri() -> str:
    """The SQLite URI used when no tracking server is configured (never the legacy file store)."""
    return f"sqlite:///{home() / EMBEDDED_DB}"


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else the embedded SQLite store."""
    value = os.environ.get(TRACKING_URI_ENV, "").strip()
    return value or embedded_tracking_uri()


def is_embedded(uri: str | None = None) -> bool:
    """True when ``uri`` (default: the resolved tracking URI) is a local SQLite database."""
    return (uri or tracking_uri()).startswith("sqlite:")


def embedded_artifact_root() -> Path:
    """Where runs logged through mlgate on the embedded store keep their artifacts."""
    return home() / "mlruns"


def cache_dir() -> Path:
    """``$MLGATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlgate``, else ``~/.cache/mlgate``."""
    value = os.environ.get(CACHE_ENV)
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mlgate"


_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<userinfo>[^@/]+)@")


def redact(text: str) -> str:
    """Hide credentials embedded in URIs (``scheme://user:pass@host``) and known secrets.

    Used on every string that leaves mlgate for a person or a record: error messages, reports,
    ledger events.
    """
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    for var in ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        secret = os.environ.get(var)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
