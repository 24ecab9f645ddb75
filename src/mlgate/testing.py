"""Helpers for testing promotion policies against a real MLflow tracking server.

mlgate's own test suite uses these, and so can yours::

    from mlgate.testing import TrackingServer, tiny_classifier

    with TrackingServer.temporary() as server:
        model, train, test = tiny_classifier()
        reg = mlgate.register(model, name="m", train_data=train, eval_data=test,
                              store=mlgate.Store(server.uri))

Nothing here mocks MLflow: ``TrackingServer`` runs ``mlflow server`` in a subprocess on a free
loopback port with a SQLite backend and an artifact root in a directory of your choosing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any


def side_venv(
    requirements: str | os.PathLike[str], cache: str | os.PathLike[str], name: str
) -> Path:
    """A virtual environment with ``requirements`` installed, for tools whose pins must not
    enter your test environment (kfp, MLServer): made once per file content and Python version
    under ``cache``, and safe when several processes (pytest-xdist workers, two CI jobs) ask
    for it at once — one installs while the others wait on a lock file.
    """
    import fcntl
    import hashlib

    req = Path(requirements)
    key = hashlib.sha256(req.read_bytes() + sys.version.encode()).hexdigest()[:12]
    root = Path(cache)
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"{name}-{key}"
    with (root / f".{name}-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".installed").exists():
            return venv
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        out = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(req)],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"installing {req.name} failed:\n{out.stderr[-3000:]}")
        (venv / ".installed").touch()
    return venv


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TrackingServer:
    """A real ``mlflow server`` subprocess.

    Args:
        root: directory for the SQLite database, artifacts and the server log.
        port: TCP port on 127.0.0.1 (default: a free one).
        backend_uri: backend store (default: SQLite in ``root``).
        workers: server worker processes.
        extra_args: more ``mlflow server`` arguments (e.g. ``["--app-name", "basic-auth"]``).
        env: extra environment variables for the server.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        port: int | None = None,
        backend_uri: str | None = None,
        workers: int = 1,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.backend_uri = backend_uri or f"sqlite:///{self.root / 'mlflow.db'}"
        self.workers = workers
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "server.log"
        self._log: IO[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> TrackingServer:
        """Start the server and wait until ``/health`` answers."""
        self.root.mkdir(parents=True, exist_ok=True)
        artifacts = self.root / "artifacts"
        artifacts.mkdir(exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            self.backend_uri,
            "--artifacts-destination",
            str(artifacts),
            "--workers",
            str(self.workers),
            *self.extra_args,
        ]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self.env}
        env.pop("MLFLOW_TRACKING_URI", None)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 180.0) -> None:
        """Poll ``/health`` until it answers 200, or raise with the tail of the server log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"mlflow server exited early:\n{tail}")
            try:
                # S310: a loopback http URL built above, never a user's scheme
                health = f"{self.uri}/health"
                with urllib.request.urlopen(health, timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"mlflow server not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server and every worker it started."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> TrackingServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    @contextlib.contextmanager
    def temporary(cls, **kwargs: Any) -> Iterator[TrackingServer]:
        """A server in a temporary directory that is removed afterwards."""
        root = tempfile.mkdtemp(prefix="mlgate-server-")
        try:
            with cls(root, **kwargs) as server:
                yield server
        finally:
            shutil.rmtree(root, ignore_errors=True)


def tiny_classifier(
    *, rows: int = 600, seed: int = 0, max_iter: int = 200, c: float = 1.0
) -> tuple[Any, Any, Any]:
    """A fitted LogisticRegression and its train/test DataFrames (a ``label`` column).

    Synthetic data from scikit-learn; nothing is downloaded.
    """
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x, y = make_classification(
        n_samples=rows, n_features=6, n_informative=4, random_state=seed, n_classes=2
    )
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame["label"] = y
    train, test = train_test_split(frame, test_size=0.3, random_state=seed)
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    model = LogisticRegression(max_iter=max_iter, C=c).fit(
        train.drop(columns="label"), train["label"]
    )
    return model, train, test


def scoring_bodies(frame: Any) -> dict[str, tuple[str, str]]:
    """The same rows in every input format MLflow's scoring server accepts.

    Returns ``{format: (content type, body)}`` for ``dataframe_split``, ``dataframe_records``,
    ``instances``, ``inputs`` and ``csv``.
    """
    import json

    split = json.loads(frame.to_json(orient="split", index=False))
    records = frame.to_dict(orient="records")
    return {
        "dataframe_split": ("application/json", json.dumps({"dataframe_split": split})),
        "dataframe_records": ("application/json", json.dumps({"dataframe_records": records})),
        "instances": ("application/json", json.dumps({"instances": records})),
        "inputs": ("application/json", json.dumps({"inputs": frame.to_dict(orient="list")})),
        "csv": ("text/csv", frame.to_csv(index=False)),
    }


def wait_http(
    url: str,
    *,
    timeout: float = 90.0,
    alive: Any = None,
    status: int = 200,
) -> None:
    """Wait until ``GET url`` answers ``status``; ``alive()`` returning false aborts early.

    Raises:
        RuntimeError: the deadline passed, or ``alive()`` said the server died.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"{url}: the server exited before it was ready ({last})")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - test helper
                if resp.status == status:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            if exc.code == status:
                return
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url}: not ready within {timeout:g} s ({last})")


class LoadGenerator:
    """Constant scoring load on a server: ``clients`` threads post ``body`` to
    ``/invocations`` back to back (one keep-alive connection each) until the block exits::

        with LoadGenerator(url, body, clients=6) as load:
            ...  # move an alias, run a rollout
        assert {status for status, _ in load.responses} == {200}

    ``responses`` holds ``(status, X-Mlgate-Version)`` of every answer in the order they came;
    ``errors`` the connection failures (the thread reconnects and goes on).
    """

    def __init__(
        self,
        url: str,
        body: str | bytes,
        *,
        clients: int = 3,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> None:
        import threading
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = (parts.path.rstrip("/") or "") + "/invocations"
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = {"Content-Type": content_type}
        self.timeout = timeout
        self.responses: list[tuple[int, str]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"mlgate-load-{i}", daemon=True)
            for i in range(clients)
        ]

    def _run(self) -> None:
        import http.client

        conn: http.client.HTTPConnection | None = None
        while not self._done.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                conn.request("POST", self.path, body=self.body, headers=self.headers)
                resp = conn.getresponse()
                resp.read()
                with self._lock:
                    self.responses.append((resp.status, resp.getheader("X-Mlgate-Version", "")))
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
                self._done.wait(0.05)
        if conn is not None:
            conn.close()

    def start(self) -> LoadGenerator:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._done.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 5)

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self, status: int) -> int:
        """How many answers had ``status``."""
        with self._lock:
            return sum(1 for s, _ in self.responses if s == status)
