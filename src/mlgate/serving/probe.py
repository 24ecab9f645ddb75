"""``python -m mlgate.serving.probe``: the container HEALTHCHECK.

Exits 0 when ``GET /ping`` on ``127.0.0.1:$MLGATE_PORT`` (default 8080) answers 200, else 1.
Standard library only, so a probe costs one short-lived interpreter and no model import.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("MLGATE_PORT", "8080")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=4) as resp:
            return 0 if resp.status == 200 else 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"mlgate probe: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
