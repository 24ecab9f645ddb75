"""Three replicas of one image follow a PostgreSQL-backed registry: traffic and rollouts reach all.

What `mlgate export k8s` relies on: replicas of `mlgate serve MODEL` behind any load balancer
converge on the registry's state, so a traffic change or a rollout needs no redeploy. Marked
``docker`` (``make test-docker``): three real containers, a real PostgreSQL, real load.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sklearn.linear_model import LogisticRegression

import mlgate
from mlgate.cli import main
from mlgate.deploy.build import build
from mlgate.testing import LoadGenerator, TrackingServer, tiny_classifier, wait_http
from test_build import BASE, REPO, Container, engine, module_env  # noqa: F401 - fixtures
from test_postgres import postgres  # noqa: F401 - fixture
from test_serving import FEATURES

pytestmark = pytest.mark.docker

POLL = 1.0  # seconds between registry polls in each replica
REPLICAS = 3


@pytest.fixture(scope="module")
def pg_server(postgres, tmp_path_factory) -> Iterator[TrackingServer]:  # noqa: F811
    """A tracking server on PostgreSQL that the containers reach on the host network."""
    with TrackingServer(tmp_path_factory.mktemp("pg-mlflow"), backend_uri=postgres) as server:
        yield server


@pytest.fixture(scope="module")
def replicas(engine, module_env, pg_server, tmp_path_factory) -> Iterator[dict[str, Any]]:  # noqa: F811
    """v1 champion, v2 challenger, v1's image run three times as `serve MODEL`."""
    store = mlgate.Store(pg_server.uri)
    name = f"rep-{uuid.uuid4().hex[:8]}"
    policy = tmp_path_factory.mktemp("policy") / "mlgate.toml"
    policy.write_text("[default.gates]\nchampion = []\nchallenger = []\n")
    outside = tmp_path_factory.mktemp("no-git")
    model, train, test = tiny_classifier()
    m2, _, _ = tiny_classifier(c=0.01)
    versions = []
    for m in (model, m2):
        reg = mlgate.register(
            m,
            name=name,
            train_data=train,
            eval_data=test,
            code_path=outside,
            input_example=test[FEATURES].head(3),
            store=store,
        )
        versions.append(reg.number)
    v1, v2 = versions
    mlgate.promote(name, v1, to="champion", policy=policy, store=store)
    mlgate.promote(name, v2, to="challenger", policy=policy, store=store)
    image = build(f"{name}/{v1}", store=store, repository=REPO, base_image=BASE, offline=True).image
    boxes = [
        Container(
            engine,
            image,
            ["serve", name, "--poll", str(POLL)],
            {"MLFLOW_TRACKING_URI": pg_server.uri},
        )
        for _ in range(REPLICAS)
    ]
    try:
        for box in boxes:
            wait_http(f"{box.url}/ping", timeout=180, alive=box.alive)
        urls = [box.url for box in boxes]
        for url in urls:  # the challenger is loaded too (at weight 0) before a test moves traffic
            _wait(lambda u=url: _serving(u).get("challenger") == 0.0, 120)
        body = json.dumps({"dataframe_records": test[FEATURES].head(2).to_dict(orient="records")})
        yield {
            "store": store,
            "name": name,
            "v1": v1,
            "v2": v2,
            "urls": urls,
            "boxes": boxes,
            "policy": str(policy),
            "uri": pg_server.uri,
            "train": train,
            "body": body,
        }
    finally:
        for box in boxes:
            box.close()


def _serving(url: str) -> dict[str, float]:
    """role -> weight, as one replica reports it."""
    info = requests.get(f"{url}/version", timeout=10).json()
    return {s["role"]: s["weight"] for s in info.get("serving", [])}


def _wait(condition: Any, timeout: float) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.05)
    return time.monotonic() - start


def _cli(r: dict[str, Any], *args: str) -> int:
    return main(["--tracking-uri", r["uri"], *args])


@contextlib.contextmanager
def _under_load(r: dict[str, Any]) -> Iterator[list[LoadGenerator]]:
    """Two keep-alive clients on every replica for the duration of the block."""
    loads = [LoadGenerator(url, r["body"], clients=2) for url in r["urls"]]
    for load in loads:
        load.start()
    try:
        yield loads
    finally:
        for load in loads:
            load.stop()


def test_traffic_change_reaches_every_replica_within_a_poll(replicas):
    """One `mlgate traffic` is applied by all three replicas within one poll interval."""
    r = replicas
    assert _cli(r, "traffic", r["name"], "--weight", "40", "--policy", r["policy"]) == 0
    took = [_wait(lambda u=u: _serving(u).get("challenger") == 40.0, 30) for u in r["urls"]]
    # Measured from after the write returned, sequentially; each replica polls every POLL s.
    assert max(took) <= POLL + 1.0, took
    assert _cli(r, "traffic", r["name"], "--weight", "0", "--policy", r["policy"]) == 0
    for u in r["urls"]:
        _wait(lambda u=u: _serving(u).get("challenger") == 0.0, 30)


def test_rollout_across_three_replicas_then_rollback_of_a_failing_challenger(replicas):
    """A rollout over three endpoints promotes with no failed request under load; a challenger
    that fails on live traffic is rolled back on the same three."""
    r = replicas
    store, name, policy = r["store"], r["name"], r["policy"]
    steps = [
        "--steps",
        "50,100",
        "--min-requests",
        "30",
        "--min-seconds",
        "1",
        "--max-seconds",
        "120",
        "--poll",
        "0.5",
        "--max-latency-ratio",
        "20",
    ]
    endpoints = [arg for url in r["urls"] for arg in ("-e", url)]
    with _under_load(r) as loads:
        code = _cli(r, "rollout", name, *endpoints, *steps, "--policy", policy)
    assert code == 0
    assert store.version_by_alias(name, "champion").version == r["v2"]
    for load in loads:
        answered = len(load.responses)
        assert answered > 30 and load.errors == [], load.errors[:3]
        assert load.count(200) == answered, {s for s, _ in load.responses}
    for u in r["urls"]:
        _wait(lambda u=u: _serving(u) == {"champion": 100.0}, 30)

    # A challenger trained on other column names fails every request it gets.
    train = r["train"]
    renamed = train.rename(columns={f: f"g{f[1:]}" for f in FEATURES})
    bad = LogisticRegression(max_iter=200).fit(renamed.drop(columns="label"), renamed["label"])
    v3 = mlgate.register(
        bad, name=name, input_example=renamed.drop(columns="label").head(2), store=store
    ).number
    mlgate.promote(name, v3, to="challenger", policy=policy, store=store)
    for u in r["urls"]:
        _wait(lambda u=u: _serving(u).get("challenger") == 0.0, 120)
    with _under_load(r):
        code = _cli(r, "rollout", name, *endpoints, *steps, "--policy", policy)
    assert code == 3  # rolled back
    assert store.version_by_alias(name, "champion").version == r["v2"]
    for u in r["urls"]:
        _wait(lambda u=u: _serving(u).get("challenger") == 0.0, 30)
    for box in r["boxes"]:
        assert box.alive(), box.logs()[-2000:]
