"""`mlgate serve` as a real process against a real tracking server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

import mlgate
from mlgate.promotion.traffic import set_traffic
from mlgate.serving.telemetry import parse_prometheus
from mlgate.testing import LoadGenerator, TrackingServer, free_port, scoring_bodies, wait_http

FEATURES = [f"f{i}" for i in range(6)]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    try:
        wait_http(f"{url}/health", timeout=timeout, alive=lambda: proc.poll() is None)
    except RuntimeError as exc:
        died = proc.poll() is not None and proc.stderr is not None
        raise RuntimeError(f"{exc}: {proc.stderr.read() if died else ''}") from None


def start_server(tracking_uri: str, model: str, *args: str) -> tuple[str, subprocess.Popen]:
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlgate",
            "serve",
            model,
            "--port",
            str(port),
            "--poll",
            "0.5",
            *args,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return url, proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)
    if proc.stderr is not None:
        proc.stderr.close()


@pytest.fixture
def two_versions(store, model_name, make_version, classifier, tmp_path):
    """v1 champion (the fixture's model) and v2 challenger (a different fit)."""
    _, train, _ = classifier
    policy = tmp_path / "mlgate.toml"
    policy.write_text("[default.gates]\nchampion = []\nchallenger = []\n")
    v1 = make_version()
    m2 = LogisticRegression(C=0.001, max_iter=200).fit(train[FEATURES], train["label"])
    v2 = make_version(m2)
    mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
    mlgate.promote(model_name, v2, to="challenger", policy=policy, store=store)
    return v1, v2, policy


@pytest.fixture
def server(tracking_uri, model_name, two_versions):
    url, proc = start_server(tracking_uri, model_name)
    yield url
    stop(proc)


class Served(NamedTuple):
    """A server on a champion (v1) and challenger (v2) that its tests only read from."""

    url: str
    name: str
    v1: str
    v2: str
    store: mlgate.Store


def serve_pair(tracking_server, classifier, tmp_path_factory, requirements) -> Iterator[Served]:
    """Register v1 (champion) and v2 (challenger, another fit) of a new model and serve them.

    For module-scoped fixtures: one registration and one server start (about 25 s) shared by the
    tests that never change the registry or the server's traffic (bad input, fuzzing, formats).
    """
    model, train, test = classifier
    store = mlgate.Store(tracking_server.uri)
    name = f"m-{uuid.uuid4().hex[:12]}"
    tmp = tmp_path_factory.mktemp("pair")
    policy = tmp / "mlgate.toml"
    policy.write_text("[default.gates]\nchampion = []\nchallenger = []\n")
    m2 = LogisticRegression(C=0.001, max_iter=200).fit(train[FEATURES], train["label"])
    with pytest.MonkeyPatch.context() as mp:  # the autouse cache isolation is per test
        mp.setenv("MLGATE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        versions = [
            mlgate.register(
                m,
                name=name,
                train_data=train,
                eval_data=test,
                input_example=train[FEATURES].head(3),
                code_path=tmp,
                log_model_kwargs={"pip_requirements": requirements},
                store=store,
            ).number
            for m in (model, m2)
        ]
        mlgate.promote(name, versions[0], to="champion", policy=policy, store=store)
        mlgate.promote(name, versions[1], to="challenger", policy=policy, store=store)
    url, proc = start_server(tracking_server.uri, name)
    yield Served(url, name, versions[0], versions[1], store)
    stop(proc)


@pytest.fixture(scope="module")
def shared(tracking_server, classifier, tmp_path_factory, inferred_requirements):
    yield from serve_pair(tracking_server, classifier, tmp_path_factory, inferred_requirements)


def local_predictions(store, model_name, version, frame):
    return np.asarray(store.load_pyfunc(f"models:/{model_name}/{version}").predict(frame))


def test_every_input_format_matches_in_process_predictions(shared, classifier):
    """dataframe_split, dataframe_records, instances, inputs and CSV give pyfunc's own
    predictions."""
    server, model_name, v1, store = shared.url, shared.name, shared.v1, shared.store
    _, _, test = classifier
    frame = test[FEATURES].head(7)
    want = local_predictions(store, model_name, v1, frame)
    bodies = scoring_bodies(frame)
    for fmt, (ctype, body) in bodies.items():
        r = requests.post(
            f"{server}/invocations",
            data=body,
            headers={"Content-Type": ctype, "X-Mlgate-Key": "k-champion-sticky"},
            timeout=10,
        )
        assert r.status_code == 200, (fmt, r.text)
        got = np.asarray(r.json()["predictions"])
        version = r.headers["X-Mlgate-Version"]
        expected = want if version == v1 else local_predictions(store, model_name, version, frame)
        assert np.array_equal(got, expected), fmt


def test_health_version_metrics_and_split(server, store, model_name, two_versions, classifier):
    """/version names both versions; a 50% split reaches both, and /metrics counts per version."""
    v1, v2, _policy = two_versions
    _, _, test = classifier
    assert requests.get(f"{server}/ping", timeout=5).status_code == 200
    info = requests.get(f"{server}/version", timeout=5).json()
    assert {s["version"]: s["weight"] for s in info["serving"]} == {v1: 100.0, v2: 0.0}
    assert all(s["verified"] for s in info["serving"])
    # LogisticRegression on six double columns: its arithmetic on the schema's ndarray
    assert {s["scoring"] for s in info["serving"]} == {"linear"}
    set_traffic(store, model_name, weight=50, reason="test")
    deadline = time.time() + 15
    while requests.get(f"{server}/version", timeout=5).json()["serving"][1]["weight"] != 50.0:
        assert time.time() < deadline, "server did not follow the traffic change"
        time.sleep(0.2)
    body = json.dumps({"dataframe_records": test[FEATURES].head(1).to_dict(orient="records")})
    seen = {
        requests.post(
            f"{server}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=10,
        ).headers["X-Mlgate-Version"]
        for _ in range(60)
    }
    assert seen == {v1, v2}
    stats = parse_prometheus(requests.get(f"{server}/metrics", timeout=5).text)
    assert stats[v1]["requests"] + stats[v2]["requests"] >= 60
    assert "mlgate_predictions_total" in requests.get(f"{server}/metrics", timeout=5).text


@pytest.mark.parametrize(
    ("body", "ctype", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"", "application/json", 400),
        (b"[1, 2, 3]", "application/json", 400),
        (b'{"dataframe_split": {"columns": ["nope"], "data": [[1]]}}', "application/json", 400),
        (
            b'{"dataframe_records": [{"f0": "text", "f1": 1, "f2": 1, "f3": 1, "f4": 1, "f5": 1}]}',
            "application/json",
            400,
        ),
        (b'{"dataframe_split": {}, "instances": []}', "application/json", 400),
        (b"f0,f1\n1,2\n", "text/csv", 400),
        (b"\xff\xfe\x00garbage", "text/csv", 400),
        (b"<xml/>", "application/xml", 415),
    ],
)
def test_bad_input_gets_4xx_json_and_server_stays_up(shared, body, ctype, status):
    """Malformed JSON, wrong columns, wrong types, empty bodies: 4xx JSON naming the problem."""
    server = shared.url
    r = requests.post(
        f"{server}/invocations", data=body, headers={"Content-Type": ctype}, timeout=10
    )
    assert r.status_code == status, r.text
    assert r.json()["message"]
    assert requests.get(f"{server}/ping", timeout=5).status_code == 200


def test_size_limit_and_unknown_routes(tracking_uri, model_name, two_versions):
    """A body over the limit is 413; unknown paths 404 and wrong methods 405, all JSON."""
    url, proc = start_server(tracking_uri, model_name, "--max-body-mb", "0.01")
    try:
        big = json.dumps({"dataframe_records": [{f: 1.0 for f in FEATURES}] * 2000})
        r = requests.post(
            f"{url}/invocations", data=big, headers={"Content-Type": "application/json"}, timeout=10
        )
        assert r.status_code == 413 and "limit" in r.json()["message"]
        assert requests.get(f"{url}/nope", timeout=5).status_code == 404
        assert (
            requests.get(f"{url}/invocations", timeout=5).json()["error_code"]
            == "METHOD_NOT_ALLOWED"
        )
    finally:
        stop(proc)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=15), children, max_size=5)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["dataframe_split", "dataframe_records", "instances", "inputs", "params", "x"]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.one_of(
        st.binary(max_size=300),
        JSONISH.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(KEYS, JSONISH, max_size=3).map(lambda v: json.dumps(v).encode()),
    ),
    ctype=st.sampled_from(
        ["application/json", "text/csv", "application/json; charset=utf-8", "text/plain"]
    ),
)
def test_fuzzed_bodies_never_get_5xx(shared, payload, ctype):
    """Random bytes and random JSON shapes: never a 5xx, always JSON, and the server stays up."""
    server = shared.url
    r = requests.post(
        f"{server}/invocations", data=payload, headers={"Content-Type": ctype}, timeout=10
    )
    assert r.status_code < 500, (payload, r.status_code, r.text)
    if r.status_code >= 400:
        assert "message" in r.json()


def wait_champion(url: str, version: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while requests.get(f"{url}/version", timeout=5).json()["serving"][0]["version"] != version:
        assert time.time() < deadline, f"server did not switch to version {version}"
        time.sleep(0.1)


def test_alias_moves_under_load_fail_no_request(
    server, store, model_name, two_versions, classifier, make_version
):
    """Moving the champion twice under constant load: every request succeeds, the new version
    serves."""
    v1, _v2, policy = two_versions
    _, _, test = classifier
    v3 = make_version()
    body = json.dumps({"dataframe_records": test[FEATURES].head(3).to_dict(orient="records")})
    with LoadGenerator(server, body, clients=6) as load:
        time.sleep(1.5)
        mlgate.promote(model_name, v3, to="champion", policy=policy, store=store)
        wait_champion(server, v3)
        time.sleep(1.5)
        mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
        wait_champion(server, v1)
        time.sleep(1.5)
    results = load.responses
    codes = [c for c, _ in results]
    assert not load.errors, load.errors[:3]
    assert len(codes) > 200 and set(codes) == {200}, {c: codes.count(c) for c in set(codes)}
    served = [v for _, v in results]
    assert served[0] == v1 and v3 in served and served[-1] == v1


def promote_tampered(server, store, name, version, alias, policy, tracking_server) -> None:
    """Append a byte to the version's model file on the tracking server, promote it to ``alias``,
    and wait until the running ``server`` reports that it refused to load it."""
    model_id = store.get_version(name, version).model_id
    [blob] = [
        p for p in (tracking_server.root / "artifacts").rglob("model.*") if model_id in str(p)
    ]
    blob.write_bytes(blob.read_bytes() + b"\0")
    mlgate.promote(name, version, to=alias, policy=policy, store=store)
    deadline = time.time() + 15
    while not requests.get(f"{server}/health", timeout=5).json()["load_errors"]:
        assert time.time() < deadline
        time.sleep(0.2)


def test_tampered_version_is_never_swapped_in(
    server, store, model_name, two_versions, make_version, tracking_server
):
    """A new champion whose artifacts fail their digest is refused; the old one keeps serving."""
    v1, _, policy = two_versions
    v3 = make_version()
    promote_tampered(server, store, model_name, v3, "champion", policy, tracking_server)
    health = requests.get(f"{server}/health", timeout=5).json()
    assert "digest" in health["load_errors"][v3]
    assert health["status"] == "ok" and health["champion"] == v1
    assert requests.get(f"{server}/version", timeout=5).json()["serving"][0]["version"] == v1


def test_shadow_mode_answers_from_champion(
    tracking_uri, store, model_name, two_versions, classifier
):
    """In shadow mode the champion answers every request and the challenger's disagreements are
    counted."""
    v1, v2, _ = two_versions
    _, _, test = classifier
    url, proc = start_server(tracking_uri, model_name, "--mode", "shadow")
    try:
        body = json.dumps({"dataframe_records": test[FEATURES].head(20).to_dict(orient="records")})
        versions = {
            requests.post(
                f"{url}/invocations",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=10,
            ).headers["X-Mlgate-Version"]
            for _ in range(20)
        }
        assert versions == {v1}
        time.sleep(0.5)
        text = requests.get(f"{url}/metrics", timeout=5).text
        assert f'mlgate_shadow_requests_total{{model="{model_name}",version="{v2}"}} 20' in text
    finally:
        stop(proc)


def test_server_keeps_serving_while_the_registry_is_down(tmp_path, classifier, monkeypatch):
    """Tracking server stopped: predictions continue, /health says the registry is unreachable."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    model, _, test = classifier
    ts = TrackingServer(tmp_path / "srv").start()
    try:
        store = mlgate.Store(ts.uri)
        reg = mlgate.register(
            model, name="down", train_data=test, input_example=test[FEATURES].head(2), store=store
        )
        policy = tmp_path / "p.toml"
        policy.write_text("[default.gates]\nchampion = []\n")
        mlgate.promote("down", reg.number, to="champion", policy=policy, store=store)
        url, proc = start_server(ts.uri, "down")
        try:
            ts.stop()
            deadline = time.time() + 30
            while requests.get(f"{url}/health", timeout=5).json()["registry"]["reachable"]:
                assert time.time() < deadline
                time.sleep(0.3)
            body = json.dumps(
                {"dataframe_records": test[FEATURES].head(2).to_dict(orient="records")}
            )
            r = requests.post(
                f"{url}/invocations",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=10,
            )
            assert r.status_code == 200
            ts.start()
            deadline = time.time() + 60
            while not requests.get(f"{url}/health", timeout=5).json()["registry"]["reachable"]:
                assert time.time() < deadline
                time.sleep(0.3)
        finally:
            stop(proc)
    finally:
        ts.stop()


def test_loaded_models_are_frozen_out_of_the_collectors_reach(
    tracking_uri, model_name, two_versions
):
    """After a load the heap is frozen: under load a full collection walked all of it about once
    a second (115-127 ms, the old p99 of `mlgate serve`)."""
    import gc

    from mlgate.serving.server import Follower, ServeConfig

    gc.unfreeze()
    follower = Follower(ServeConfig(model=model_name, tracking_uri=tracking_uri))
    try:
        assert gc.get_freeze_count() == 0
        assert follower.refresh()
        assert gc.get_freeze_count() > 0
    finally:
        follower.stop()
        gc.unfreeze()


def run_serve(tracking_uri: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    return subprocess.run(
        [sys.executable, "-m", "mlgate", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("mlgate: error:")]


def test_serving_a_model_that_does_not_exist_exits_2(tracking_uri, model_name):
    """No such model: exit 2 after the first poll with one line naming it and --wait."""
    out = run_serve(tracking_uri, model_name, "--port", str(free_port()), "--poll", "0.5")
    assert out.returncode == 2, out.stderr
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and model_name in lines[0] and "--wait" in lines[0]


def test_serving_a_missing_pinned_version_or_unset_alias_exits_2(
    tracking_uri, model_name, make_version
):
    """A pinned version that does not exist, or no champion yet: exit 2, one line."""
    make_version()
    out = run_serve(tracking_uri, model_name, "--port", str(free_port()), "--pin", "99")
    assert out.returncode == 2, out.stderr
    assert len(error_lines(out.stderr)) == 1 and "99" in error_lines(out.stderr)[0]
    out = run_serve(tracking_uri, model_name, "--port", str(free_port()))
    assert out.returncode == 2, out.stderr
    assert "champion" in error_lines(out.stderr)[0]


def test_wait_serves_a_model_registered_later(
    tracking_uri, store, model_name, make_version, tmp_path
):
    """With --wait a model that does not exist yet is waited for, then served."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlgate",
            "serve",
            model_name,
            "--port",
            str(port),
            "--poll",
            "0.5",
            "--wait",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", status=503, alive=lambda: proc.poll() is None)
        time.sleep(2)
        assert proc.poll() is None
        policy = tmp_path / "p.toml"
        policy.write_text("[default.gates]\nchampion = []\n")
        v1 = make_version()
        mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
        wait_ready(url, proc)
        served = requests.get(f"{url}/version", timeout=5).json()["serving"]
        assert [s["version"] for s in served] == [v1]
    finally:
        stop(proc)


def test_unreachable_registry_is_waited_for_and_said(tmp_path):
    """Registry unreachable at start: the server stays up, /health says so, the log says waiting."""
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlgate", "serve", "anything", "--port", str(port), "--poll", "0.5"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", status=503, alive=lambda: proc.poll() is None)
        deadline = time.time() + 30
        while requests.get(f"{url}/health", timeout=5).json()["registry"]["error"] is None:
            assert time.time() < deadline
            time.sleep(0.3)
        health = requests.get(f"{url}/health", timeout=5).json()
        assert health["registry"]["reachable"] is False
        time.sleep(2)
        assert proc.poll() is None
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "waiting" in err and "cannot reach" in err


def test_port_in_use_is_one_line_exit_2_before_loading(tracking_uri, model_name, two_versions):
    """A port already taken: exit 2, '127.0.0.1:PORT is already in use', no model loaded."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_serve(tracking_uri, model_name, "--port", str(port))
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [
        f"mlgate: error: 127.0.0.1:{port} is already in use (stop what listens there, "
        "or choose another --port)"
    ]


def test_traffic_without_a_challenger_is_refused_unless_forced(
    tracking_uri, store, model_name, make_version, tmp_path, capsys
):
    """`traffic --weight 50` with no challenger: exit 2 and nothing written; --force sets it."""
    from mlgate.cli import main
    from mlgate.serving.routing import read_table

    policy = tmp_path / "p.toml"
    policy.write_text("[default.gates]\nchampion = []\n")
    mlgate.promote(model_name, make_version(), to="champion", policy=policy, store=store)
    capsys.readouterr()
    assert main(["traffic", model_name, "--weight", "50", "--policy", str(policy)]) == 2
    err = capsys.readouterr().err
    assert "challenger" in err and "--force" in err and err.count("\n") == 1
    assert read_table(store, model_name).traffic.challenger_weight == 0
    assert main(["traffic", model_name, "--weight", "0", "--policy", str(policy)]) == 0
    assert main(["traffic", model_name, "-w", "50", "--force", "--policy", str(policy)]) == 0
    assert read_table(store, model_name).traffic.challenger_weight == 50
