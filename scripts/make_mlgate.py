"""What the checkout's ``make check|promote|rollback|history|status|build|serve`` run.

``python scripts/make_mlgate.py DEMO_DIR COMMAND [ARGS...]`` runs ``mlgate COMMAND ARGS...`` and,
when it fails, says which exit code mlgate gave and what it means (make itself exits 2).

On a developer's checkout (no ``MLFLOW_TRACKING_URI``, no ``MLGATE_HOME``, not CI) the targets
use the store and policy of the demo in DEMO_DIR (``make demo`` makes them): a note on stderr
says so, and a ``--policy`` in ARGS still wins. When the demo has not run, it says how to point
at a store instead of failing on an empty one. Anywhere else (CI, where a tracking URI is
required, or a configured store) mlgate chooses exactly as it always does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlgate.cli import main
from mlgate.config import EMBEDDED_DB, HOME_ENV, POLICY_FILE, TRACKING_URI_ENV, in_ci
from mlgate.errors import EXIT_CODES, EXIT_USAGE

#: The commands that take --policy (build and serve do not read the policy).
TAKES_POLICY = {"check", "promote", "rollback", "history", "status"}


def _shown(path: Path) -> str:
    """The path relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def with_demo(demo: Path, args: list[str]) -> list[str]:
    """The arguments (and environment) for the demo's store and policy on a developer's checkout."""
    if TRACKING_URI_ENV in os.environ or HOME_ENV in os.environ or in_ci():
        return args
    store, policy = demo / EMBEDDED_DB, demo / POLICY_FILE
    if not store.is_file():
        sys.exit(
            f"make: no tracking store: run `make demo` first (it makes {_shown(store)}), or "
            f"point at yours with MLFLOW_TRACKING_URI=URI (or MLGATE_HOME=DIR holding "
            f"{EMBEDDED_DB}) and ARGS='--policy FILE'"
        )
    os.environ[HOME_ENV] = str(demo)
    note = f"make: using the demo's store {_shown(store)}"
    if args[0] in TAKES_POLICY and not any(a.split("=")[0] == "--policy" for a in args):
        args = [*args, "--policy", str(policy)]
        note += f" and policy {_shown(policy)}"
    print(f"{note} (set MLFLOW_TRACKING_URI for another store)", file=sys.stderr)
    return args


def run(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: make_mlgate.py DEMO_DIR COMMAND [ARGS...]", file=sys.stderr)
        return EXIT_USAGE
    code = main(with_demo(Path(argv[0]).resolve(), argv[1:]))
    if code:
        meaning = EXIT_CODES.get(code, "unknown")
        print(
            f"make: mlgate exited {code}: {meaning} (make exits 2; run mlgate itself for its code)",
            file=sys.stderr,
        )
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
