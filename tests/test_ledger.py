"""Typed ledger events on a real tracking server: one class per kind, mlgate 0.1's ledger read."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

import mlgate
from conftest import write_policy
from mlgate.cli import main
from mlgate.errors import ConflictError, GateRejected, LeaseHeldError, MlgateError
from mlgate.keys import Tags
from mlgate.promotion import ledger as L
from mlgate.registry.lease import acquire_lease, release_lease

FIXTURE = json.loads((Path(__file__).parent / "data" / "ledger-0.1.json").read_text())
OLD_MODEL = FIXTURE["model"]


def recreate(store, experiment: str, runs) -> str:
    """The runs of a stored ledger, written again as runs of ``experiment``."""
    exp = store.experiment_id(experiment)
    for run in runs:
        store.create_record_run(exp, run["run_name"], dict(run["tags"]), run["start_ms"])
    return exp


@pytest.fixture(scope="module")
def old_ledger(tracking_server, tmp_path_factory, classifier):
    """mlgate 0.1's ledger of ``ledger01`` recreated on the session's server, beside three
    registered versions (champion at 2, where 0.1 left it) and a policy naming that ledger."""
    store = mlgate.Store(tracking_server.uri)
    experiment = f"ledger-0.1-{uuid.uuid4().hex[:8]}"
    recreate(store, experiment, FIXTURE["runs"])
    model, train, _ = classifier
    first = mlgate.register(model, name=OLD_MODEL, train_data=train, store=store)
    for _ in range(2):
        mlgate.register(first.model_uri, name=OLD_MODEL, store=store)
    store.set_alias(OLD_MODEL, "champion", "2")
    policy = write_policy(
        tmp_path_factory.mktemp("old-ledger"), f'ledger_experiment = "{experiment}"\n'
    )
    return store, experiment, policy


def test_mlgate_0_1_events_read_as_their_typed_classes(old_ledger):
    """Every event mlgate 0.1 wrote reads as its kind's class, traffic settings as numbers."""
    store, experiment, _ = old_ledger
    events = L.Ledger(store, experiment).events(OLD_MODEL)[::-1]  # oldest first
    assert [type(e).__name__ for e in events] == [
        "PromotionEvent",
        "PromotionEvent",
        "PromotionEvent",
        "PromotionEvent",
        "PromotionEvent",
        "RollbackEvent",
        "AttachEvent",
        "PromotionEvent",
        "TrafficEvent",
        "TrafficEvent",
        "TrafficEvent",
        "RolloutStepEvent",
        "TrafficEvent",
        "RolloutEvent",
        "TrafficEvent",
        "RolloutEvent",
        "RolloutStepEvent",
        "RolloutStepEvent",
        "PromotionEvent",
        "TrafficEvent",
    ]
    first, _, _, rejected, conflict, rollback, attach, *_ = events
    assert (first.outcome, first.from_version, first.to_version) == ("moved", None, "1")
    assert first.actor == "alice" and first.ci_run_url.endswith("/acme/churn/actions/runs/42")
    assert rejected.outcome == "rejected" and rejected.gates[0]["name"] == "metric:accuracy"
    assert (conflict.outcome, conflict.from_version, conflict.to_version) == ("conflict", "2", "3")
    assert (rollback.from_version, rollback.to_version, rollback.reason) == (
        "2",
        "1",
        "latency spike",
    )
    assert (attach.version, attach.outcome, attach.alias) == ("1", "attached", "")
    traffic = [e for e in events if isinstance(e, L.TrafficEvent)]
    assert [(e.mode_before, e.weight_before, e.mode_after, e.weight_after) for e in traffic] == [
        ("split", 0.0, "split", 5.0),
        ("split", 5.0, "shadow", 10.0),
        ("shadow", 10.0, "split", 0.0),
        ("split", 0.0, "split", 25.0),
        ("split", 25.0, "split", 0.0),
        ("split", 0.0, "split", 0.0),
        ("split", 0.0, "split", 50.0),
        ("split", 50.0, "split", 100.0),
        ("split", 100.0, "split", 0.0),
    ]
    steps = [(e.step, e.steps, e.weight_after) for e in events if isinstance(e, L.RolloutStepEvent)]
    assert steps == [(1, None, 25.0), (1, None, 50.0), (2, None, 100.0)]
    rolled_back, aborted = (e for e in events if isinstance(e, L.RolloutEvent))
    assert (rolled_back.status, rolled_back.champion, rolled_back.challenger) == (
        "rolled_back",
        "1",
        "2",
    )
    assert rolled_back.gates[0]["weight"] == 25.0 and "error rate" in rolled_back.message
    assert (aborted.status, aborted.outcome, aborted.reason) == ("aborted", "unchanged", "pager")


def test_mlgate_0_1_events_keep_their_json(old_ledger):
    """to_dict of a 0.1 event keeps every key and value 0.1 printed (history --json), plus types."""
    store, experiment, _ = old_ledger
    events = L.Ledger(store, experiment).events(OLD_MODEL)
    printed = FIXTURE["printed"]["history --json"]
    assert len(events) == len(printed) == 20
    for event, old in zip(events, printed, strict=True):
        new = event.to_dict()
        assert {k: new[k] for k in old} == old
    canary = next(e.to_dict() for e in events if e.reason == "canary")
    assert (canary["mode_after"], canary["weight_after"], canary["to_version"]) == (
        "split",
        5.0,
        "split:5%",
    )


def test_history_and_status_print_0_1_events_as_0_1_did(old_ledger, tracking_uri, capsys):
    """`mlgate history` (text, Markdown, JSON) and `status` print 0.1's ledger unchanged."""
    _, _, policy = old_ledger
    printed = FIXTURE["printed"]
    capsys.readouterr()
    assert main(["history", OLD_MODEL, "--policy", str(policy)]) == 0
    assert capsys.readouterr().out == printed["history"]
    assert main(["history", OLD_MODEL, "--markdown", "--policy", str(policy)]) == 0
    assert capsys.readouterr().out == printed["history --markdown"]
    assert main(["history", OLD_MODEL, "--json", "--policy", str(policy)]) == 0
    as_json, old_json = json.loads(capsys.readouterr().out), printed["history --json"]
    assert [{k: e[k] for k in old} for e, old in zip(as_json, old_json, strict=True)] == old_json
    assert main(["status", OLD_MODEL, "--policy", str(policy)]) == 0
    assert capsys.readouterr().out == printed["status"]


def test_a_rollback_walks_back_through_0_1_promotions(old_ledger):
    """Rollback after an upgrade finds its target in promotions 0.1 recorded (dry run)."""
    store, _, policy = old_ledger
    event = mlgate.rollback(OLD_MODEL, dry_run=True, policy=policy, store=store)
    assert isinstance(event, L.RollbackEvent)
    assert (event.outcome, event.from_version, event.to_version) == ("dry_run", "2", "1")


def every_new_kind(model: str) -> list[L.Event]:
    """One freshly built event of each kind."""
    return [
        L.promotion_event("moved", model, "champion", from_version="1", to_version="2"),
        L.rollback_event(model, "champion", from_version="2", to_version="1", reason="r"),
        L.traffic_event(model, "challenger", before=("split", 0.0), after=("shadow", 12.5)),
        L.traffic_event(model, "challenger", before=("split", 5), after=("split", 25), step=(2, 4)),
        L.rollout_event(
            model,
            "challenger",
            status="rolled_back",
            champion="1",
            challenger="2",
            message="step 2 at 25%: error rate",
            results=({"step": 2, "weight": 25.0, "ok": False},),
        ),
        L.registration_event(
            model, "3", run_id="abc", model_uri="runs:/abc/model", artifact_digest="blake3:00"
        ),
        L.attach_event(model, "3", written=("b", "a"), forced={"a": ("x", "y")}, reason="fix"),
        L.build_event(
            model, "3", image="mlgate:m-v3", image_id="sha256:" + "e" * 64, digest="sha256:f"
        ),
    ]


def test_every_kind_round_trips_through_a_real_ledger(store, model_name):
    """Each kind is stored and read back from MLflow as an equal object of its class."""
    ledger = L.Ledger(store, f"ledger-{uuid.uuid4().hex[:8]}")
    written = [ledger.append(e) for e in every_new_kind(model_name)]
    assert all(e.record_id for e in written)
    by_id = {e.event_id: e for e in ledger.events(model_name)}  # built within one millisecond
    read = [by_id[e.event_id] for e in written]
    assert read == written and len(by_id) == len(written)
    assert [e.kind for e in read] == [
        "promote",
        "rollback",
        "traffic",
        "traffic",
        "rollout",
        "register",
        "attach",
        "build",
    ]
    assert [L.decode(e.to_dict()) for e in read] == read
    step = read[3]
    assert isinstance(step, L.RolloutStepEvent) and (step.step, step.steps) == (2, 4)
    assert [e.kind for e in ledger.events(model_name, kind="traffic")] == ["traffic", "traffic"]
    build = ledger.events(model_name, kind="build")[0]
    assert isinstance(build, L.BuildEvent) and build.digest == "sha256:f"
    assert build.message == f"built mlgate:m-v3 (sha256:{'e' * 12}, pushed sha256:f)"


def test_a_setting_reads_as_typed_fields_not_version_text(store, model_name):
    """A traffic change stores its mode and weights as typed fields; 0.1's text is derived."""
    event = L.traffic_event(model_name, "challenger", before=("split", 5), after=("split", 25))
    data = json.loads(L._encode(event))
    assert (data["weight_before"], data["weight_after"]) == (5.0, 25.0)
    assert (data["from_version"], data["to_version"]) == ("split:5%", "split:25%")
    assert not hasattr(event, "to_version")


def test_unknown_kinds_and_hand_made_records_are_kept(store, model_name):
    """A newer release's kind is read as UnknownEvent with all it said; a record with no JSON
    is rebuilt from its plain tags into its typed class."""
    experiment = f"ledger-{uuid.uuid4().hex[:8]}"
    ledger = L.Ledger(store, experiment)
    exp = store.experiment_id(experiment)
    future = {
        "kind": "deploy",
        "outcome": "moved",
        "model": model_name,
        "alias": "prod",
        "from_version": "1",
        "to_version": "2",
        "actor": "bob",
        "at": "2031-01-01T00:00:00.000+00:00",
        "at_ms": 1924992000000,
        "cluster": "eu-1",
    }
    tags = {
        L.PREFIX + "model": model_name,
        L.PREFIX + "outcome": "moved",
        L.PREFIX + "kind": "deploy",
        L.PREFIX + "json": json.dumps(future),
    }
    store.create_record_run(exp, "deploy", tags, 1924992000000)
    plain = {
        L.PREFIX + "model": model_name,
        L.PREFIX + "outcome": "moved",
        L.PREFIX + "kind": "traffic",
        L.PREFIX + "alias": "challenger",
        L.PREFIX + "from": "split:0%",
        L.PREFIX + "to": "split:5%",
        L.PREFIX + "actor": "carol",
    }
    store.create_record_run(exp, "by hand", plain, 1924991000000)
    unknown, by_hand = ledger.events(model_name)
    assert isinstance(unknown, L.UnknownEvent)
    assert (unknown.kind, unknown.before, unknown.after) == ("deploy", "1", "2")
    assert unknown.to_dict()["cluster"] == "eu-1"
    assert isinstance(by_hand, L.TrafficEvent) and by_hand.weight_after == 5.0


def test_registration_is_recorded_and_history_shows_it(store, model_name, make_version, capsys):
    """register records a RegistrationEvent; `history` prints it readably and `history --json`
    with its typed fields."""
    v = make_version()
    registered = mlgate.history(model_name, store=store, kind="register")
    assert len(registered) == 1 and isinstance(registered[0], L.RegistrationEvent)
    event = registered[0]
    version = store.get_version(model_name, v)
    assert (event.version, event.run_id, event.outcome) == (v, version.run_id, "registered")
    assert event.artifact_digest == version.tags[Tags.ARTIFACT_DIGEST]
    assert event.model_uri.startswith(("models:/", "runs:/"))
    capsys.readouterr()
    assert main(["history", model_name]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["time", "kind", "outcome", "alias", "move", "actor", "reason"]
    row = out[2].split(maxsplit=6)
    assert row[1:6] == ["register", "registered", "-", "->", v]
    assert out[2].endswith(f"registered version {v} from run {version.run_id} with its lineage")
    assert main(["history", model_name, "--json"]) == 0
    (data,) = json.loads(capsys.readouterr().out)
    assert (data["kind"], data["version"], data["to_version"]) == ("register", v, v)
    assert main(["history", model_name, "--kind", "register", "--json"]) == 0
    assert [e["kind"] for e in json.loads(capsys.readouterr().out)] == ["register"]
    assert main(["history", model_name, "--kind", "promote", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_register_returns_the_event_it_recorded(store, model_name, classifier):
    """Registration.event is the stored RegistrationEvent (the same id as in the ledger)."""
    reg = mlgate.register(classifier[0], name=model_name, store=store)
    assert isinstance(reg.event, L.RegistrationEvent) and reg.event.record_id
    assert mlgate.history(model_name, store=store)[0].event_id == reg.event.event_id


def test_refusals_carry_events_given_when_raised(store, model_name, make_version, tmp_path):
    """GateRejected, ConflictError and LeaseHeldError are constructed with their recorded
    events; MlgateError itself has no event."""
    assert not hasattr(MlgateError("x"), "event")
    v1, v2 = make_version(metrics={"accuracy": 0.9}), make_version(metrics={"accuracy": 0.1})
    policy = write_policy(
        tmp_path, '[[default.gates.champion]]\ntype = "metric"\nmetric = "accuracy"\nmin = 0.5\n'
    )
    mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
    with pytest.raises(GateRejected) as rejected:
        mlgate.promote(model_name, v2, to="champion", policy=policy, store=store)
    assert isinstance(rejected.value.event, L.PromotionEvent) and rejected.value.event.record_id
    assert rejected.value.decision is not None and not rejected.value.decision.passed
    (tmp_path / "ungated").mkdir()
    ungated = write_policy(tmp_path / "ungated", "[default.gates]\nchampion = []\n")
    lease = acquire_lease(store, model_name)
    try:
        with pytest.raises(LeaseHeldError) as held:
            mlgate.promote(model_name, v2, to="champion", policy=ungated, store=store)
    finally:
        release_lease(store, lease)
    assert isinstance(held.value, ConflictError) and held.value.event.outcome == "conflict"
    assert held.value.event.record_id and held.value.__cause__ is not None
    stored = mlgate.history(model_name, store=store)[0]
    assert stored.event_id == held.value.event.event_id
