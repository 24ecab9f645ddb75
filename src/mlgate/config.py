"""Where mlgate keeps things: the tracking URI, the embedded default store, the cache.

Nothing here is computed at import time; every function reads the environment when called, so
a notebook that sets ``MLFLOW_TRACKING_URI`` after ``import mlgate`` is honoured.

The tracking URI is chosen so that a gate can never pass against the wrong registry:

1. ``$MLFLOW_TRACKING_URI`` (or ``--tracking-uri``) when it has a value. Set but empty (what
   GitHub Actions gives for a secret a fork's pull request cannot read) is an error, never
   "use the default".
2. Else the embedded SQLite store, ``mlflow.db`` in the *project directory*: ``$MLGATE_HOME``
   when set, else the directory of the nearest policy file (``mlgate.toml``, or
   ``pyproject.toml`` with ``[tool.mlgate]``) at or above the working directory, else the working
   directory. The same walk finds the policy, so ``mlgate`` run from a subdirectory opens the
   project's store, not a second, empty one.
3. In CI (``CI`` or ``GITHUB_ACTIONS`` set) the embedded default is refused: a throwaway
   database on a runner is never what a pipeline means. Ask for it explicitly with
   ``--tracking-uri sqlite:///PATH`` or ``MLGATE_ALLOW_EMBEDDED=1``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from mlgate.errors import NoStoreError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
HOME_ENV = "MLGATE_HOME"
CACHE_ENV = "MLGATE_CACHE_DIR"
ALLOW_EMBEDDED_ENV = "MLGATE_ALLOW_EMBEDDED"
CI_ENVS = ("CI", "GITHUB_ACTIONS")
EMBEDDED_DB = "mlflow.db"
POLICY_FILE = "mlgate.toml"
_FALSE = ("", "0", "false", "no", "off")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in _FALSE


def in_ci() -> bool:
    """True when a CI system says so (``CI`` or ``GITHUB_ACTIONS`` set to a true value)."""
    return any(_flag(name) for name in CI_ENVS)


def home() -> Path:
    """The project directory that holds the embedded store (see the module docstring)."""
    value = os.environ.get(HOME_ENV)
    if value:
        return Path(value).expanduser().resolve()
    cwd = Path.cwd()
    found = find_policy(cwd)
    return found.parent if found is not None else cwd.resolve()


def embedded_tracking_uri() -> str:
    """The SQLite URI used when no tracking server is configured (never the legacy file store)."""
    return f"sqlite:///{home() / EMBEDDED_DB}"


def explicit_tracking_uri() -> str | None:
    """``$MLFLOW_TRACKING_URI`` when it has a value, None when unset.

    Raises:
        NoStoreError: the variable is set but empty (or only spaces).
    """
    value = os.environ.get(TRACKING_URI_ENV)
    if value is None:
        return None
    if not value.strip():
        raise NoStoreError(
            f"{TRACKING_URI_ENV} is set but empty, so no tracking server is configured",
            hint="set it to your tracking server's URI, or unset it to use the embedded store "
            "(in CI an empty value usually means a secret this run cannot read)",
        )
    return value.strip()


def embedded_default() -> str:
    """The embedded store's URI, when mlgate may fall back to it.

    Raises:
        NoStoreError: running in CI without an explicit opt-in.
    """
    if in_ci() and not _flag(ALLOW_EMBEDDED_ENV):
        which = next(name for name in CI_ENVS if _flag(name))
        raise NoStoreError(
            f"no tracking server configured: {TRACKING_URI_ENV} is not set, and {which} is set, "
            "so mlgate refuses its embedded SQLite default (a throwaway store on a CI runner)",
            hint=f"set {TRACKING_URI_ENV}, pass --tracking-uri sqlite:///PATH/mlflow.db, or set "
            f"{ALLOW_EMBEDDED_ENV}=1 to use the embedded store on purpose",
        )
    return embedded_tracking_uri()


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else the embedded SQLite store (see the module doc)."""
    return explicit_tracking_uri() or embedded_default()


def is_embedded(uri: str | None = None) -> bool:
    """True when ``uri`` (default: the resolved tracking URI) is a local SQLite database."""
    return (uri or tracking_uri()).startswith("sqlite:")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for in-memory or other schemes)."""
    if not uri.startswith("sqlite:"):
        return None
    rest = uri[len("sqlite:") :]
    if not rest.startswith("///"):
        return None
    path = rest[3:].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path("/" + path.lstrip("/")) if rest.startswith("////") else Path(path)


def embedded_artifact_root(uri: str | None = None) -> Path:
    """Where runs logged through mlgate on a SQLite store keep their artifacts: ``mlruns/``
    beside the database file."""
    db = sqlite_path(uri) if uri else None
    return db.resolve().parent / "mlruns" if db is not None else home() / "mlruns"


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


def find_policy(start: Path) -> Path | None:
    """The nearest ``mlgate.toml``, or ``pyproject.toml`` with ``[tool.mlgate]``, at or above."""
    for directory in [start.resolve(), *start.resolve().parents]:
        candidate = directory / POLICY_FILE
        if candidate.is_file():
            return candidate
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            try:
                raw = tomllib.loads(pyproject.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError):
                continue
            tool = raw.get("tool")
            if isinstance(tool, Mapping) and "mlgate" in tool:
                return pyproject
    return None
