"""`mlgate serve --workers N` and the native thread cap, on real servers (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import requests

from mlgate.serving.routing import RoutingTable, Traffic
from mlgate.serving.telemetry import parse_prometheus
from mlgate.testing import free_port, wait_http

# A pyfunc model (MLflow's models-from-code) that answers how many OpenMP threads the thread
# scoring it may use, and that can be held inside predict until the test releases it.
GATE_MODEL = """
import os
import time
from pathlib import Path

import mlflow
import sklearn.ensemble  # noqa: F401 - brings in scikit-learn's OpenMP runtime at load


class Gate(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        from threadpoolctl import threadpool_info

        gate = os.environ.get("GATE_DIR")
        if gate and (Path(gate) / "hold").exists():
            (Path(gate) / "started").touch()
            while not (Path(gate) / "release").exists():
                time.sleep(0.01)
        pools = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"]
        return [max(pools, default=0)] * len(model_input)


mlflow.models.set_model(Gate())
"""
ROW = {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}


@pytest.fixture(scope="module")
def gate_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gate model saved as an MLflow model directory."""
    import mlflow

    root = tmp_path_factory.mktemp("gate")
    code = root / "gate.py"
    code.write_text(GATE_MODEL)
    mlflow.pyfunc.save_model(
        str(root / "model"), python_model=str(code), input_example=pd.DataFrame({"x": [1.0]})
    )
    return root / "model"


def start(*args: str, env: dict[str, str] | None = None) -> tuple[str, subprocess.Popen[bytes]]:
    """``mlgate serve ARGS`` on a free port, answering; its output goes to a temporary file
    (a pipe nobody reads could fill up and stall it)."""
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlgate", "serve", *args, "--port", str(port)],
        env={k: v for k, v in (env or os.environ).items() if k != "OMP_NUM_THREADS"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc.log = log  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/ping", timeout=120, alive=lambda: proc.poll() is None)
    except RuntimeError as exc:
        stop(proc)
        log.seek(0)
        raise RuntimeError(f"{exc}: {log.read().decode(errors='replace')[-3000:]}") from None
    return url, proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
    proc.log.close()  # type: ignore[attr-defined]


@pytest.fixture
def served() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Servers started by a test, stopped after it."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        stop(proc)


def workers_of(pid: int) -> set[int]:
    """The worker processes of a supervisor (its children that multiprocessing spawned)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.add(int(stat.parent.name))
    return found


def until(condition, what: str, timeout: float = 90.0):  # type: ignore[no-untyped-def]
    """Wait (polling) for ``condition()`` to be truthy; its value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def post(url: str, key: str | None = None) -> requests.Response:
    headers = {"X-Mlgate-Key": key} if key else {}
    return requests.post(f"{url}/invocations", json=ROW, headers=headers, timeout=60)


def test_scoring_threads_are_capped_to_one_native_thread_by_default(gate_model, served):
    """Every thread that scores (the predict thread and the event loop) runs one OpenMP thread
    by default; --threads 0 leaves the library's default (one per core)."""
    url, proc = start("gate", "--model-dir", str(gate_model))
    served.append(proc)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(url), range(64)))
    assert {r.status_code for r in answers} == {200}
    assert {r.json()["predictions"][0] for r in answers} == {1}
    if (os.cpu_count() or 1) > 1:
        url, proc = start("gate", "--model-dir", str(gate_model), "--threads", "0")
        served.append(proc)
        assert post(url).json()["predictions"] == [os.cpu_count()]


def test_two_workers_answer_by_the_same_routing_and_one_scrape_is_the_total(
    tracking_uri, model_name, make_version, classifier, tmp_path, served
):
    """With 2 workers, both answer, a sticky key gets the version the routing function names on
    whichever worker, and one /metrics scrape counts every request of both."""
    import mlgate

    _, train, _ = classifier
    policy = tmp_path / "mlgate.toml"
    policy.write_text("[default.gates]\nchampion = []\nchallenger = []\n")
    v1 = make_version()
    from sklearn.linear_model import LogisticRegression

    v2 = make_version(LogisticRegression(C=0.001).fit(train.drop(columns="label"), train["label"]))
    mlgate.promote(model_name, v1, to="champion", policy=policy)
    mlgate.promote(model_name, v2, to="challenger", policy=policy)
    url, proc = start(model_name, "--workers", "2", "--weight", "50")
    served.append(proc)
    table = RoutingTable(champion=v1, challenger=v2, traffic=Traffic(challenger_weight=50))
    row = classifier[2].drop(columns="label").head(1)
    body = {"dataframe_split": row.to_dict(orient="split", index=False)}

    def one(i: int) -> tuple[int, str, str]:
        key = f"user-{i % 40}"
        r = requests.post(  # a new connection each: any worker may take it
            f"{url}/invocations", json=body, headers={"X-Mlgate-Key": key}, timeout=60
        )
        return r.status_code, key, r.headers["X-Mlgate-Version"]

    sent: list[tuple[int, str, str]] = []

    def both_answered() -> bool:
        with ThreadPoolExecutor(8) as pool:
            sent.extend(pool.map(one, range(len(sent), len(sent) + 80)))
        metrics = requests.get(f"{url}/metrics", timeout=30).text
        slots = [line for line in metrics.splitlines() if line.startswith("mlgate_worker_req")]
        return len(slots) == 2 and all(not line.endswith(" 0") for line in slots)

    until(both_answered, "both workers to answer requests")
    assert {status for status, _, _ in sent} == {200}
    assert all(version == table.route(key, 0.0).version for _, key, version in sent)
    assert len({version for _, _, version in sent}) == 2  # the keys do fall on both sides
    metrics = requests.get(f"{url}/metrics", timeout=30).text
    counted = parse_prometheus(metrics)
    assert sum(row["requests"] for row in counted.values()) == len(sent)
    assert sum(row["latency_count"] for row in counted.values()) == len(sent)
    assert 'mlgate_workers{model="' + model_name + '"} 2' in metrics


def test_a_killed_worker_is_replaced_and_sigterm_stops_all_after_in_flight_requests(
    gate_model, served, tmp_path
):
    """A worker killed is started again while the other answers; SIGTERM to the server lets a
    request in flight finish, then stops every worker and exits 0."""
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "GATE_DIR": str(gate)}
    url, proc = start("gate", "--model-dir", str(gate_model), "--workers", "2", env=env)
    served.append(proc)
    first = until(lambda: len(w := workers_of(proc.pid)) == 2 and w, "two workers")
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    # the other worker goes on answering (new connections: the dead one takes none)
    assert all(post(url).status_code == 200 for _ in range(20))
    after = until(
        lambda: len(w := workers_of(proc.pid)) == 2 and victim not in w and w, "a new worker"
    )
    assert len(after - first) == 1
    until(
        lambda: 'mlgate_workers{model="gate"} 2' in requests.get(f"{url}/metrics", timeout=30).text,
        "the new worker to share its counters",
    )

    (gate / "hold").touch()
    held: list[requests.Response] = []
    thread = threading.Thread(target=lambda: held.append(post(url)))
    thread.start()
    until(lambda: (gate / "started").exists(), "the request to reach predict")
    proc.send_signal(signal.SIGTERM)
    # the idle worker is gone: both were told to stop (at once), and one still holds the request
    until(lambda: len(workers_of(proc.pid)) == 1, "the idle worker to stop")
    assert held == []
    (gate / "release").touch()
    thread.join(timeout=60)
    assert [r.status_code for r in held] == [200]
    assert proc.wait(timeout=60) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in after)


def test_summed_snapshots_render_as_one_process_that_saw_every_request():
    """Two workers' counters, summed for /metrics, read as one process that answered all of
    their requests (requests, errors, histogram, classes, values, shadow, refused)."""
    from mlgate.serving.telemetry import Telemetry

    one, a, b = Telemetry("m"), Telemetry("m"), Telemetry("m")
    calls = [
        ("1", "champion", 200, 0.003, ["yes"]),
        ("1", "champion", 500, 0.2, None),
        ("2", "challenger", 200, 0.0004, ["no", "yes"]),
        ("3", "champion", 200, 0.01, [1.5, 2.5]),
    ]
    for i, call in enumerate(calls * 3):
        one.request(*call)
        (a if i % 2 else b).request(*call)
    for t in (one, a):
        t.shadow("2", agreed=False)
        t.refused()
    a.workers = lambda: [{**a.snapshot(), "worker": 0}, {**b.snapshot(), "worker": 1}]
    whole = a.render()
    assert 'mlgate_workers{model="m"} 2' in whole
    assert 'mlgate_worker_requests_total{model="m",worker="0"} 6' in whole
    assert 'mlgate_worker_requests_total{model="m",worker="1"} 6' in whole
    assert whole.endswith(one.render())


def test_workers_with_nothing_to_serve_stop_the_server_with_exit_2(tracking_uri, model_name):
    """A model that does not exist stops every worker and the server with the one-line error
    and exit 2, as with one process (not a worker started again and again)."""
    port = str(free_port())
    done = subprocess.run(
        [sys.executable, "-m", "mlgate", "serve", model_name, "--workers", "2", "--port", port],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("mlgate: error:")]
    assert len(errors) == 1 and model_name in errors[0], done.stderr[-2000:]
    assert "starting another" not in done.stderr


def test_a_scrape_never_sums_less_than_an_earlier_one(tmp_path):
    """A worker read from an older file than an earlier scrape saw (it answered too slowly, or
    is gone) counts with the newest snapshot seen of it: the sums never go back, so Prometheus
    reads no false counter reset."""
    import json

    from mlgate.serving.telemetry import Telemetry
    from mlgate.serving.workers import Shared

    other = Telemetry("m")
    for _ in range(10):
        other.request("1", "champion", 200, 0.001, None)
    newer = {**other.snapshot(), "worker": 1, "pid": 999999, "at": 200.0}
    older = Telemetry("m")
    for _ in range(4):
        older.request("1", "champion", 200, 0.001, None)
    stale = {**older.snapshot(), "worker": 1, "pid": 999999, "at": 100.0}

    mine = Telemetry("m")
    share = Shared(str(tmp_path), 0, mine)
    share.start()
    try:
        (tmp_path / "999999.json").write_text(json.dumps(newer))
        assert 'mlgate_worker_requests_total{model="m",worker="1"} 10' in mine.render()
        (tmp_path / "999999.json").write_text(json.dumps(stale))
        assert 'mlgate_worker_requests_total{model="m",worker="1"} 10' in mine.render()
    finally:
        share.stop()
    assert json.loads((tmp_path / f"{share.pid}.json").read_text())["worker"] == 0
    assert not (tmp_path / f"{share.pid}.sock").exists()


def test_a_replacement_worker_waits_for_a_deleted_alias_instead_of_stopping_the_server(
    tracking_uri, model_name, make_version, tmp_path, served
):
    """A worker started again after one died, while the champion alias is gone, waits for it
    (as --wait) and the server goes on: only a first start with nothing to serve stops it."""
    from mlflow import MlflowClient

    import mlgate

    policy = tmp_path / "mlgate.toml"
    policy.write_text("[default.gates]\nchampion = []\nchallenger = []\n")
    mlgate.promote(model_name, make_version(), to="champion", policy=policy)
    url, proc = start(model_name, "--workers", "2")
    served.append(proc)
    first = until(lambda: len(w := workers_of(proc.pid)) == 2 and w, "two workers")
    MlflowClient(tracking_uri).delete_registered_model_alias(model_name, "champion")
    os.kill(min(first), signal.SIGKILL)

    def log() -> str:
        proc.log.seek(0)  # type: ignore[attr-defined]
        return proc.log.read().decode(errors="replace")  # type: ignore[attr-defined]

    until(lambda: "waiting for it (--wait)" in log(), "the replacement to wait for the alias")
    assert proc.poll() is None, log()[-3000:]
    assert len(workers_of(proc.pid)) == 2
    # the server still answers (liveness; /ping may be 503: the survivor has seen the alias go)
    assert requests.get(f"{url}/v2/health/live", timeout=30).status_code == 200
