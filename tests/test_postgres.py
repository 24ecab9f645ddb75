"""A PostgreSQL-backed tracking server with several workers: the race guarantee still holds."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import mlgate
from conftest import write_policy
from mlgate.testing import TrackingServer, free_port
from test_concurrency import ROUNDS, race


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A real PostgreSQL server, run by an unprivileged user (PostgreSQL refuses root)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    user = "postgres"
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", user], check=True)
    # Not under pytest's tmp dir: its parents are private to root, and PostgreSQL runs as `user`.
    root = Path(tempfile.mkdtemp(prefix="mlgate-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    subprocess.run(["chown", "-R", f"{user}:", str(root)], check=True)
    as_pg = ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [*as_pg, initdb, "-D", str(data), "-U", "mlgate", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    subprocess.run(
        [
            *as_pg,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(root / "pg.log"),
            "-w",
            "-o",
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        createdb = _pg_bin("createdb")
        subprocess.run(
            [*as_pg, createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "mlgate", "mlflow"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg2://mlgate@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*as_pg, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_server(postgres, tmp_path_factory):
    """`mlflow server` on PostgreSQL with 4 workers."""
    root = tmp_path_factory.mktemp("pg-mlflow")
    with TrackingServer(root, backend_uri=postgres, workers=4) as server:
        yield server


@pytest.mark.slow
def test_racing_promotions_on_postgres_with_several_workers(
    pg_server, classifier, tmp_path, monkeypatch
):
    """8 racing promotions per round against PostgreSQL + 4 server workers: exactly one winner."""
    import mlflow
    import mlflow.sklearn

    monkeypatch.setenv("MLFLOW_TRACKING_URI", pg_server.uri)
    store = mlgate.Store(pg_server.uri)
    mlflow.set_tracking_uri(pg_server.uri)
    with mlflow.start_run():
        uri = mlflow.sklearn.log_model(classifier[0], name="model").model_uri
    policy = write_policy(tmp_path, "[default.gates]\nchampion = []\n")
    started = time.time()
    attempts = race(store, pg_server.uri, f"pg-{os.urandom(4).hex()}", uri, policy, ROUNDS)
    assert attempts == ROUNDS * 8
    print(
        f"postgres: {attempts} racing promotions in {time.time() - started:.0f} s, one winner per round"
    )
