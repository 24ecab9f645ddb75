"""Progressive rollout against real `mlgate serve` processes and a real tracking server."""

from __future__ import annotations

import json
import logging
import re

import pytest
from sklearn.linear_model import LogisticRegression

import mlgate
from mlgate.errors import GateRejected
from mlgate.promotion import rollout as ro
from mlgate.promotion.ledger import RolloutEvent, RolloutStepEvent, TrafficEvent
from mlgate.serving.routing import read_table
from mlgate.testing import LoadGenerator
from test_serving import FEATURES, start_server, stop

FAST = ro.Bounds(
    min_requests=20,
    min_seconds=0.5,
    max_seconds=60,
    max_error_rate_delta=0.05,
    max_latency_ratio=20,
)


def test_judge_is_pure_arithmetic():
    """Error-rate excess and latency ratio decide a step; a clean challenger passes."""
    champ = ro.Window(requests=1000, errors=10, latency=0.002)
    assert ro.judge(ro.Window(500, 5, 0.002), champ, ro.Bounds())[0]
    ok, why = ro.judge(ro.Window(500, 30, 0.002), champ, ro.Bounds())
    assert not ok and "error rate" in why
    ok, why = ro.judge(ro.Window(500, 5, 0.01), champ, ro.Bounds(max_latency_ratio=1.5))
    assert not ok and "latency" in why


@pytest.fixture
def policy(tmp_path):
    p = tmp_path / "mlgate.toml"
    p.write_text("[default.gates]\nchampion = []\nchallenger = []\n")
    return p


def run_with_load(url, classifier, fn):
    _, _, test = classifier
    body = json.dumps({"dataframe_records": test[FEATURES].head(2).to_dict(orient="records")})
    with LoadGenerator(url, body, clients=3):
        return fn()


def test_rollout_resumes_and_promotes(
    tracking_uri, store, model_name, make_version, classifier, policy, caplog
):
    """A rollout interrupted after step 1 resumes at step 2, then promotes the challenger; its
    progress is logged (mlgate.rollout, INFO) and its result carries its typed events."""
    v1, v2 = make_version(), make_version()
    mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
    mlgate.promote(model_name, v2, to="challenger", policy=policy, store=store)
    seeded = ro.RolloutState(
        champion=v1, challenger=v2, steps=[50.0, 100.0], step=1, started_at="x"
    )
    store.set_model_tag(model_name, ro.ROLLOUT_TAG, seeded.to_json())
    url, proc = start_server(tracking_uri, model_name)
    caplog.set_level(logging.INFO, logger="mlgate.rollout")
    try:
        result = run_with_load(
            url,
            classifier,
            lambda: ro.rollout(
                model_name,
                [url],
                steps=(50, 100),
                bounds=FAST,
                policy=policy,
                store=store,
                poll=0.5,
            ),
        )
    finally:
        stop(proc)
    messages = [r.getMessage() for r in caplog.records if r.name == "mlgate.rollout"]
    assert any("resuming" in m for m in messages)
    assert "step 2/2: challenger at 100%" in messages
    assert result.state.status == "completed"
    assert store.version_by_alias(model_name, "champion").version == v2
    assert read_table(store, model_name).traffic.challenger_weight == 0
    traffic_steps = [(e.mode_after, e.weight_after) for e in result.events if e.kind == "traffic"]
    assert traffic_steps == [("split", 100.0), ("split", 0.0)]
    assert all(isinstance(e, TrafficEvent) for e in result.events if e.kind == "traffic")
    step = result.events[0]
    assert isinstance(step, RolloutStepEvent) and (step.step, step.steps) == (2, 2)
    assert (step.weight_before, step.weight_after) == (0.0, 100.0)  # step 1 was only seeded
    kinds = [(e.kind, e.outcome) for e in mlgate.history(model_name, policy=policy, store=store)][
        :3
    ]
    assert kinds == [("traffic", "moved"), ("promote", "moved"), ("traffic", "moved")]


def test_failing_challenger_is_rolled_back(
    tracking_uri, store, model_name, make_version, classifier, policy
):
    """A challenger that errors on the live traffic is rolled back with its numbers recorded."""
    _, train, _ = classifier
    v1 = make_version()
    renamed = train.rename(columns={f: f"g{f[1:]}" for f in FEATURES})
    bad = LogisticRegression(max_iter=200).fit(renamed.drop(columns="label"), renamed["label"])
    v2 = make_version(bad, train_data=renamed, input_example=renamed.drop(columns="label").head(2))
    mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
    mlgate.promote(model_name, v2, to="challenger", policy=policy, store=store)
    url, proc = start_server(tracking_uri, model_name)
    try:
        with pytest.raises(GateRejected, match="rolled back"):
            run_with_load(
                url,
                classifier,
                lambda: ro.rollout(
                    model_name,
                    [url],
                    steps=(25, 100),
                    bounds=FAST,
                    policy=policy,
                    store=store,
                    poll=0.5,
                ),
            )
    finally:
        stop(proc)
    assert store.version_by_alias(model_name, "champion").version == v1
    assert read_table(store, model_name).traffic.challenger_weight == 0
    failed = json.loads(store.get_version(model_name, v2).tags[ro.FAILED_TAG])
    assert "error rate" in failed["reason"]
    assert ro.read_state(store, model_name).status == "rolled_back"
    latest = next(
        e for e in mlgate.history(model_name, policy=policy, store=store) if e.kind == "rollout"
    )
    assert latest.outcome == "rejected" and "error rate" in latest.message
    assert isinstance(latest, RolloutEvent) and latest.status == "rolled_back"
    assert (latest.champion, latest.challenger) == (v1, v2)
    assert [r["weight"] for r in latest.gates] == [25.0]  # the breached step's numbers


def test_abort_and_status(store, model_name, make_version, policy, capsys):
    """--abort sets the challenger to 0% and marks the rollout aborted; --status prints it."""
    from mlgate.cli import main

    v1, v2 = make_version(), make_version()
    mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
    mlgate.promote(model_name, v2, to="challenger", policy=policy, store=store)
    store.set_model_tag(
        model_name,
        ro.ROLLOUT_TAG,
        ro.RolloutState(champion=v1, challenger=v2, steps=[5, 100]).to_json(),
    )
    capsys.readouterr()
    assert main(["rollout", model_name, "--abort", "-m", "pager", "--policy", str(policy)]) == 0
    assert main(["rollout", model_name, "--status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["status"] == "aborted"
    assert main(["rollout", model_name, "--status"]) == 0
    assert f"rollout of {model_name} version {v2}: aborted" in capsys.readouterr().out
    aborted = mlgate.history(model_name, policy=policy, store=store, kind="rollout")[0]
    assert isinstance(aborted, RolloutEvent) and aborted.status == "aborted"
    assert (aborted.outcome, aborted.reason, aborted.challenger) == ("unchanged", "pager", v2)
    assert main(["rollout", model_name, "--abort", "--policy", str(policy)]) == 2


def test_rollout_status_without_a_rollout_says_so(store, model_name, make_version, capsys):
    """`rollout --status` with no rollout prints a sentence; --json prints null."""
    from mlgate.cli import main

    make_version()
    capsys.readouterr()
    assert main(["rollout", model_name, "--status"]) == 0
    assert capsys.readouterr().out == f"{model_name}: no rollout has been started\n"
    assert main(["rollout", model_name, "--status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) is None


def test_cli_prints_the_rollout_progress_on_stderr(store, model_name, make_version, policy, capsys):
    """`mlgate rollout` prints the progress the library logs (mlgate.rollout) on stderr, one
    line each as before; a step no endpoint answers rolls back (exit 3)."""
    from mlgate.cli import main
    from mlgate.errors import EXIT_REJECTED
    from mlgate.testing import free_port

    v1, v2 = make_version(), make_version()
    mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
    mlgate.promote(model_name, v2, to="challenger", policy=policy, store=store)
    nobody = f"http://127.0.0.1:{free_port()}"
    capsys.readouterr()
    args = ["rollout", model_name, "-e", nobody, "--steps", "100", "--max-seconds", "1"]
    assert main([*args, "--poll", "0.3", "--policy", str(policy)]) == EXIT_REJECTED
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and lines[:2] == [
        f"rollout of {model_name} version {v2} over champion {v1}: steps [100.0]",
        "step 1/1: challenger at 100%",
    ]
    assert lines[2] == f"no serving endpoint answered: {nobody}: ConnectionError"
    why = re.escape("step 1 saw only 0 challenger requests in ") + r"\d+ s \(needs 200\)"
    assert re.fullmatch(f"rolled back: {why}", lines[-2])
    assert re.fullmatch(f"mlgate: error: rollout of version {v2} rolled back: {why}", lines[-1])
    assert not logging.getLogger("mlgate.rollout").handlers  # the CLI's handler is gone
