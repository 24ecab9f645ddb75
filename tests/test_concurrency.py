"""Racing promotions and interrupted promotions, with real processes against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import mlgate
from conftest import write_policy
from mlgate.errors import EXIT_CONFLICT, LeaseHeldError
from mlgate.registry.lease import BREAKER_PREFIX, lease_name

ROUNDS = int(os.environ.get("MLGATE_RACE_ROUNDS", "3"))
RACERS = 8

RACER = """
import sys, time
import mlflow, mlgate.promotion.workflow, mlgate.cli  # import before the start line, not during the race
model, version, expected, policy, start = sys.argv[1:6]
while time.time() < float(start):
    time.sleep(0.002)
sys.exit(mlgate.cli.main(["promote", model, "-v", version, "--to", "champion",
                          "--expected", expected, "--policy", policy, "--reason", "race"]))
"""


@pytest.fixture
def ungated(tmp_path):
    return write_policy(tmp_path, "[default.gates]\nchampion = []\n")


@pytest.fixture
def logged_model_uri(store, classifier):
    """One logged model; versions are registered from it (registration is what we race, not training)."""
    import mlflow
    import mlflow.sklearn

    mlflow.set_tracking_uri(store.uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(classifier[0], name="model")
    return info.model_uri


def race(store, tracking_uri: str, model_name: str, model_uri: str, policy, rounds: int) -> int:
    """Rounds of 8 processes promoting 8 versions at once; returns the attempts made."""
    first = mlgate.register(model_uri, name=model_name, store=store).number
    mlgate.promote(model_name, first, to="champion", policy=policy, store=store)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    attempts = 0
    for _round in range(rounds):
        expected = store.version_by_alias(model_name, "champion").version
        versions = [
            mlgate.register(model_uri, name=model_name, store=store).number for _ in range(RACERS)
        ]
        start = time.time() + 6.0
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", RACER, model_name, v, expected, str(policy), str(start)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for v in versions
        ]
        results = {
            v: (*p.communicate(timeout=180), p.returncode)
            for v, p in zip(versions, procs, strict=True)
        }
        attempts += len(results)
        codes = sorted(r[2] for r in results.values())
        assert codes == [0] + [EXIT_CONFLICT] * (RACERS - 1), {
            v: (r[2], r[1][-300:]) for v, r in results.items()
        }
        winner = next(v for v, r in results.items() if r[2] == 0)
        assert store.version_by_alias(model_name, "champion").version == winner
        events = [
            e
            for e in mlgate.history(model_name, policy=policy, store=store, kind="promote")
            if e.to_version in versions
        ]
        assert len(events) == RACERS
        assert sorted(e.outcome for e in events) == ["conflict"] * (RACERS - 1) + ["moved"]
        assert all(e.from_version == expected for e in events if e.moved)
    assert not store.model_exists(lease_name(model_name))
    return attempts


def test_eight_racing_promotions_exactly_one_wins(
    store, model_name, logged_model_uri, ungated, tracking_uri
):
    """8 processes promote 8 versions expecting the same champion: one moves it, 7 exit 4, all in the ledger."""
    race(store, tracking_uri, model_name, logged_model_uri, ungated, ROUNDS)


KILLER = """
import os, signal, sys
import mlgate.promotion.workflow
from mlgate.cli import main

def die(*args, **kwargs):  # the process dies after taking the lease, before the alias moves
    os.kill(os.getpid(), signal.SIGKILL)

mlgate.promotion.workflow.guarded_move = die
sys.exit(main(["promote", sys.argv[1], "-v", sys.argv[2], "--to", "champion",
               "--policy", sys.argv[3], "--lease-ttl", "4"]))
"""


def test_promotion_killed_between_lease_and_move(
    store, model_name, logged_model_uri, ungated, tracking_uri
):
    """A kill between lease and move leaves the alias unchanged; the next run succeeds once the lease expires."""
    v1 = mlgate.register(logged_model_uri, name=model_name, store=store).number
    mlgate.promote(model_name, v1, to="champion", policy=ungated, store=store)
    v2 = mlgate.register(logged_model_uri, name=model_name, store=store).number
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, model_name, v2, str(ungated)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr[-500:]
    assert store.version_by_alias(model_name, "champion").version == v1
    assert store.model_exists(lease_name(model_name))
    st = mlgate.status(model_name, policy=ungated, store=store)
    assert st.lease is not None and any(
        "interrupted" in n and "did not move" in n for n in st.notes
    )
    with pytest.raises(LeaseHeldError):
        mlgate.promote(model_name, v2, to="champion", policy=ungated, store=store)
    time.sleep(max(0.0, float(st.lease["expires_at"]) - time.time()) + 0.2)
    event = mlgate.promote(model_name, v2, to="champion", policy=ungated, store=store)
    assert event.moved and event.from_version == v1
    assert store.version_by_alias(model_name, "champion").version == v2
    assert not store.model_exists(lease_name(model_name))
    stale_token = st.lease["token"]
    assert store.model_exists(f"{BREAKER_PREFIX}{model_name}.{stale_token}")
    outcomes = [e.outcome for e in mlgate.history(model_name, policy=ungated, store=store)]
    assert outcomes[:3] == ["moved", "conflict", "pending"]
