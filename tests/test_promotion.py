"""Promotion against a real tracking server: gates on real models, guarded moves, ledger, rollback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

import mlgate
from conftest import write_policy
from mlgate.cli import main
from mlgate.errors import (
    EXIT_CONFLICT,
    EXIT_ERROR,
    EXIT_REJECTED,
    EXIT_USAGE,
    ConflictError,
    GateRejected,
    TrackingServerError,
    UsageError,
)
from mlgate.keys import Tags

EVAL_POLICY = """
[default.evaluation]
data = "eval.csv"
target = "label"
[[default.gates.champion]]
type = "metric"
metric = "accuracy"
min = 0.6
[[default.gates.champion]]
type = "no_regression"
metric = "accuracy"
tolerance = 0.0
[default.gates]
challenger = []
"""


@pytest.fixture
def eval_policy(tmp_path, classifier):
    """A policy that scores candidate and champion on the same CSV rows."""
    _, _, test = classifier
    test.to_csv(tmp_path / "eval.csv", index=False)
    return write_policy(tmp_path, EVAL_POLICY)


def dummy(train):
    return DummyClassifier(strategy="most_frequent").fit(
        train.drop(columns="label"), train["label"]
    )


def test_first_promotion_unchanged_and_evidence(store, model_name, make_version, eval_policy):
    """First promotion is explicit, writes evidence before the move, and re-promoting is a no-op."""
    v1 = make_version(metrics={"accuracy": 0.9})
    event = mlgate.promote(
        model_name, v1, to="champion", policy=eval_policy, reason="first", store=store
    )
    assert (event.outcome, event.from_version, event.to_version) == ("moved", None, v1)
    assert store.version_by_alias(model_name, "champion").version == v1
    evidence = json.loads(store.get_version(model_name, v1).tags[Tags.gates("champion")])
    assert (
        evidence["passed"]
        and evidence["first_promotion"]
        and evidence["eval"].startswith("blake3:")
    )
    again = mlgate.promote(model_name, v1, to="champion", policy=eval_policy, store=store)
    assert again.outcome == "unchanged"
    kinds = [e.outcome for e in mlgate.history(model_name, policy=eval_policy, store=store)]
    assert kinds == ["unchanged", "moved", "registered"]


def test_worse_candidate_on_same_rows_is_refused_with_exit_3(
    tracking_uri, store, model_name, make_version, eval_policy, classifier, capsys
):
    """A candidate worse than the champion on the same rows: exit 3, a report, nothing moves."""
    _, train, _ = classifier
    v1 = make_version()
    mlgate.promote(model_name, v1, to="champion", policy=eval_policy, store=store)
    v2 = make_version(dummy(train), metrics={"accuracy": 0.99})  # its logged metric lies
    capsys.readouterr()
    rc = main(
        ["promote", model_name, "--version", v2, "--to", "champion", "--policy", str(eval_policy)]
    )
    out, err = capsys.readouterr()
    assert rc == EXIT_REJECTED
    assert "REJECTED" in out and "no_regression:accuracy" in out and "(evaluated on" in out
    assert err.startswith("mlgate: error:") and err.count("\n") == 1
    assert store.version_by_alias(model_name, "champion").version == v1
    evidence = json.loads(store.get_version(model_name, v2).tags[Tags.gates("champion")])
    assert evidence["passed"] is False
    latest = mlgate.history(model_name, policy=eval_policy, store=store)[0]
    assert latest.outcome == "rejected" and latest.to_version == v2
    assert any(not g["passed"] for g in latest.gates)


def test_check_changes_nothing_and_reports_json(
    store, model_name, make_version, eval_policy, capsys
):
    """`mlgate check` never writes: no alias, no tag, no ledger event; --json is parseable."""
    v1 = make_version()
    capsys.readouterr()
    rc = main(
        ["check", f"{model_name}/{v1}", "--to", "champion", "--policy", str(eval_policy), "--json"]
    )
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] and data["first_promotion"] and data["evaluation"]["rows"] > 0
    assert store.version_by_alias(model_name, "champion") is None
    assert Tags.gates("champion") not in store.get_version(model_name, v1).tags
    # The only event is the version's registration: check wrote none.
    assert [e.kind for e in mlgate.history(model_name, policy=eval_policy, store=store)] == [
        "register"
    ]


def test_dry_run_and_expected_conflict(store, model_name, make_version, eval_policy, capsys):
    """--dry-run moves nothing; --expected that does not match is a recorded conflict (exit 4)."""
    v1, v2 = make_version(), make_version()
    capsys.readouterr()
    assert (
        main(
            [
                "promote",
                model_name,
                "-v",
                v1,
                "--to",
                "champion",
                "--dry-run",
                "--policy",
                str(eval_policy),
            ]
        )
        == 0
    )
    assert "dry run" in capsys.readouterr().out
    assert store.version_by_alias(model_name, "champion") is None
    mlgate.promote(model_name, v1, to="champion", policy=eval_policy, store=store)
    rc = main(
        [
            "promote",
            model_name,
            "-v",
            v2,
            "--to",
            "champion",
            "--expected",
            "none",
            "--policy",
            str(eval_policy),
        ]
    )
    assert rc == EXIT_CONFLICT
    with pytest.raises(ConflictError) as err:
        mlgate.promote(model_name, v2, to="champion", expected="7", policy=eval_policy, store=store)
    assert err.value.event.outcome == "conflict"
    assert store.version_by_alias(model_name, "champion").version == v1
    outcomes = [e.outcome for e in mlgate.history(model_name, policy=eval_policy, store=store)]
    assert outcomes == ["conflict", "conflict", "moved", "registered", "registered"]


def test_rollback_after_two_promotions(store, model_name, make_version, eval_policy, capsys):
    """Rollback returns the champion to the first version; the ledger shows all three moves."""
    v1, v2 = make_version(), make_version()
    mlgate.promote(model_name, v1, to="champion", policy=eval_policy, store=store)
    mlgate.promote(model_name, v2, to="champion", policy=eval_policy, store=store)
    assert (
        main(["rollback", model_name, "--reason", "latency spike", "--policy", str(eval_policy)])
        == 0
    )
    assert store.version_by_alias(model_name, "champion").version == v1
    moves = [e for e in mlgate.history(model_name, policy=eval_policy, store=store) if e.moved]
    assert [(e.kind, e.from_version, e.to_version) for e in moves] == [
        ("rollback", v2, v1),
        ("promote", v1, v2),
        ("promote", None, v1),
    ]
    assert moves[0].reason == "latency spike"
    capsys.readouterr()
    assert main(["rollback", model_name, "--policy", str(eval_policy)]) == EXIT_USAGE
    assert "first champion" in capsys.readouterr().err
    st = mlgate.status(model_name, policy=eval_policy, store=store)
    assert st.aliases[0].version == v1 and st.aliases[0].last_move.kind == "rollback"


def test_promoting_the_challenger_to_champion_clears_challenger(
    store, model_name, make_version, eval_policy
):
    """When the challenger becomes champion, the challenger alias is removed in the same move."""
    v1 = make_version()
    mlgate.promote(model_name, v1, to="challenger", policy=eval_policy, store=store)
    event = mlgate.promote(model_name, v1, to="champion", policy=eval_policy, store=store)
    assert event.cleared == ("challenger",)
    assert store.version_by_alias(model_name, "challenger") is None


def test_alias_without_gates_is_refused(store, model_name, make_version, eval_policy, capsys):
    """A target alias the policy does not mention cannot be promoted to (exit 2, key named)."""
    v1 = make_version()
    rc = main(["promote", model_name, "-v", v1, "--to", "staging", "--policy", str(eval_policy)])
    assert rc == EXIT_USAGE
    assert "default.gates.staging" in capsys.readouterr().err


def test_github_summary_and_outputs(
    store, model_name, make_version, eval_policy, tmp_path, monkeypatch, capsys
):
    """In GitHub Actions the report goes to the job summary and results to step outputs."""
    summary, outputs = tmp_path / "summary.md", tmp_path / "out.txt"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    v1 = make_version()
    assert (
        main(["check", model_name, "-v", v1, "--to", "champion", "--policy", str(eval_policy)]) == 0
    )
    assert "✅" in summary.read_text() and "| gate |" in summary.read_text()
    text = outputs.read_text()
    assert "decision=passed" in text and f"version={v1}" in text and "report<<MLGATE_" in text


def test_broken_server_is_an_error_not_a_first_promotion(model_name, eval_policy, monkeypatch):
    """A tracking server that does not answer fails the check (exit 1); it is never 'no champion'."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    dead = mlgate.Store("http://127.0.0.1:9")
    with pytest.raises(TrackingServerError):
        mlgate.check(model_name, "1", to="champion", policy=eval_policy, store=dead)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert (
        main(["check", model_name, "-v", "1", "--to", "champion", "--policy", str(eval_policy)])
        == EXIT_ERROR
    )


# --------------------------------------------------------------------------- data gates


def big_frame(rows: int = 20_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(4)])
    df["label"] = (x[:, 0] + x[:, 1] > 0).astype(int)
    return df


def test_data_change_past_row_10000_blocks_promotion(store, model_name, make_version, tmp_path):
    """Training data altered at row 15,000 (where MLflow's digest is blind) blocks promotion."""
    import mlflow.data

    data = big_frame()
    data.to_csv(tmp_path / "train.csv", index=False)
    altered = data.copy()
    altered.loc[15_000, "f2"] += 0.5
    altered.to_csv(tmp_path / "train_altered.csv", index=False)
    assert mlflow.data.from_pandas(data).digest == mlflow.data.from_pandas(altered).digest
    policy = write_policy(
        tmp_path,
        """
[[default.gates.champion]]
type = "data"
train_path = "train.csv"
""",
    )
    good = make_version(train_data=tmp_path / "train.csv")
    bad = make_version(train_data=tmp_path / "train_altered.csv")
    assert mlgate.check(model_name, good, to="champion", policy=policy, store=store).passed
    with pytest.raises(GateRejected) as err:
        mlgate.promote(model_name, bad, to="champion", policy=policy, store=store)
    assert "differs from train.csv" in err.value.decision.results[0].reason


def test_recorded_data_changed_after_registration(store, model_name, make_version, tmp_path):
    """verify_recorded: the file registered as training data was edited afterwards -> rejected."""
    path = tmp_path / "train.csv"
    big_frame().to_csv(path, index=False)
    v = make_version(train_data=path)
    policy = write_policy(
        tmp_path, "[[default.gates.champion]]\ntype = 'data'\nverify_recorded = true\n"
    )
    assert mlgate.check(model_name, v, to="champion", policy=policy, store=store).passed
    edited = big_frame()
    edited.loc[15_000, "f0"] = 99.0
    edited.to_csv(path, index=False)
    decision = mlgate.check(model_name, v, to="champion", policy=policy, store=store)
    assert not decision.passed and "changed since registration" in decision.results[0].reason


# --------------------------------------------------------------------------- signature, lineage, bootstrap


def test_signature_gate_on_real_models(store, model_name, make_version, classifier, tmp_path):
    """A candidate trained without a column the champion takes is refused; the same schema passes."""
    _model, train, _ = classifier
    policy = write_policy(tmp_path, "[[default.gates.champion]]\ntype = 'signature'\n")
    v1 = make_version()
    mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
    assert mlgate.check(
        model_name, make_version(), to="champion", policy=policy, store=store
    ).passed
    narrow = train.drop(columns=["f5"])
    m2 = LogisticRegression(max_iter=200).fit(narrow.drop(columns="label"), narrow["label"])
    v3 = make_version(m2, train_data=narrow, input_example=narrow.drop(columns="label").head(3))
    decision = mlgate.check(model_name, v3, to="champion", policy=policy, store=store)
    assert not decision.passed and "'f5' (double) was removed" in decision.results[0].reason


def _git(path: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)


def test_lineage_gate_on_real_registrations(
    store, model_name, make_version, tracking_server, tmp_path
):
    """Clean commit passes; a dirty tree fails; artifacts tampered on the server fail."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    (repo / "train.py").write_text("# train\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "x")
    policy = write_policy(tmp_path, "[[default.gates.champion]]\ntype = 'lineage'\n")
    clean = make_version(code_path=repo)
    assert mlgate.check(model_name, clean, to="champion", policy=policy, store=store).passed
    (repo / "train.py").write_text("# edited\n")
    dirty = make_version(code_path=repo)
    decision = mlgate.check(model_name, dirty, to="champion", policy=policy, store=store)
    assert not decision.passed and "dirty" in decision.results[0].reason
    # Tamper with the stored artifact of the clean version, on the server's disk.
    mv = store.get_version(model_name, clean)
    model_id = mv.source.rsplit("/", 1)[-1]
    pickles = [
        p for p in (tracking_server.root / "artifacts").rglob("model.*") if model_id in str(p)
    ]
    assert len(pickles) == 1
    pickles[0].write_bytes(pickles[0].read_bytes() + b"\0")
    decision = mlgate.check(model_name, clean, to="champion", policy=policy, store=store)
    assert (
        not decision.passed and "artifacts changed since registration" in decision.results[0].reason
    )


def test_bootstrap_gate_on_real_models(store, model_name, make_version, classifier, tmp_path):
    """A clearly better model passes the paired bootstrap; an equally good one does not."""
    _, train, test = classifier
    test.to_csv(tmp_path / "eval.csv", index=False)
    policy = write_policy(
        tmp_path,
        """
[default.evaluation]
data = "eval.csv"
target = "label"
[[default.gates.champion]]
type = "bootstrap"
metric = "accuracy"
confidence = 0.95
samples = 500
""",
    )
    v1 = make_version(dummy(train))
    mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
    better = mlgate.check(model_name, make_version(), to="champion", policy=policy, store=store)
    assert better.passed, better.results[0].reason
    assert better.results[0].observed["lower"] > 0
    same = mlgate.check(
        model_name, make_version(dummy(train)), to="champion", policy=policy, store=store
    )
    assert not same.passed and "interval" in same.results[0].reason


def test_logged_metrics_from_other_eval_data_refuse_comparison(
    store, model_name, make_version, classifier, tmp_path
):
    """Without evaluation data, metrics logged on different evaluation sets are not compared."""
    _, _, test = classifier
    policy = write_policy(
        tmp_path, "[[default.gates.champion]]\ntype = 'no_regression'\nmetric = 'accuracy'\n"
    )
    v1 = make_version(metrics={"accuracy": 0.8})
    mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
    same_rows = mlgate.check(
        model_name,
        make_version(metrics={"accuracy": 0.85}),
        to="champion",
        policy=policy,
        store=store,
    )
    assert same_rows.passed and "same evaluation data" in same_rows.results[0].reason
    other = make_version(metrics={"accuracy": 0.95}, eval_data=test.iloc[:50])
    decision = mlgate.check(model_name, other, to="champion", policy=policy, store=store)
    assert not decision.passed and "different evaluation data" in decision.results[0].reason


NO_TARGET_POLICY = """
[[default.gates.champion]]
type = "metric"
metric = "accuracy"
min = 0.6
"""


def test_target_option_names_the_evaluation_target(
    store, model_name, make_version, classifier, tmp_path, capsys
):
    """`check --eval-data F --target COL` evaluates on F; without a target the error names --target."""
    _, _, test = classifier
    data = tmp_path / "rows.csv"
    test.to_csv(data, index=False)
    policy = write_policy(tmp_path, NO_TARGET_POLICY)
    v1 = make_version()
    base = ["check", f"{model_name}/{v1}", "--to", "champion", "--policy", str(policy)]
    capsys.readouterr()
    assert main([*base, "--eval-data", str(data)]) == EXIT_USAGE
    assert "--target" in capsys.readouterr().err
    assert main([*base, "--eval-data", str(data), "--target", "label", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["evaluation"]["target"] == "label" and report["evaluation"]["rows"] == len(test)
    event = mlgate.promote(
        model_name, v1, to="champion", policy=policy, eval_data=data, target="label", store=store
    )
    assert event.outcome == "moved"


def test_rollback_version_option_and_hidden_to(store, model_name, make_version, eval_policy):
    """`rollback --version N` returns to N; the old spelling `--to N` still works."""
    v1, v2 = make_version(), make_version()
    mlgate.promote(model_name, v1, to="champion", policy=eval_policy, store=store)
    mlgate.promote(model_name, v2, to="champion", policy=eval_policy, store=store)
    assert main(["rollback", model_name, "--version", v1, "--policy", str(eval_policy)]) == 0
    assert store.version_by_alias(model_name, "champion").version == v1
    assert main(["rollback", model_name, "--to", v2, "--policy", str(eval_policy)]) == 0
    assert store.version_by_alias(model_name, "champion").version == v2
    rc = main(["rollback", model_name, "--to", v1, "--version", v2, "--policy", str(eval_policy)])
    assert rc == EXIT_USAGE


def test_rollback_to_a_version_that_never_held_the_alias_is_refused(
    store, model_name, make_version, eval_policy, capsys
):
    """`rollback --version N` cannot put a never-served (e.g. gate-rejected) version in place."""
    v1, v2, v3 = make_version(), make_version(), make_version()
    mlgate.promote(model_name, v1, to="champion", policy=eval_policy, store=store)
    mlgate.promote(model_name, v2, to="champion", policy=eval_policy, store=store)
    base = ["rollback", model_name, "--version", v3, "--policy", str(eval_policy)]
    for extra in ([], ["--dry-run"]):
        capsys.readouterr()
        assert main([*base, *extra]) == EXIT_USAGE
        assert "never held" in capsys.readouterr().err
    assert store.version_by_alias(model_name, "champion").version == v2
    assert main([*base, "--force", "-m", "hotfix"]) == 0
    assert store.version_by_alias(model_name, "champion").version == v3


def test_rollback_hint_names_the_version_option(store, model_name, make_version, eval_policy):
    """A champion set outside mlgate cannot be rolled back by the ledger; the hint says --version."""
    v1 = make_version()
    store.set_alias(model_name, "champion", v1)
    with pytest.raises(UsageError) as err:
        mlgate.rollback(model_name, policy=eval_policy, store=store)
    assert "--version VERSION" in str(err.value)


def test_status_after_a_traffic_change_raises_no_false_alarm(
    store, model_name, make_version, eval_policy
):
    """A traffic change is not an alias move: status shows the promotion and no outside-move note."""
    from mlgate.promotion.traffic import set_traffic

    v1, v2 = make_version(), make_version()
    mlgate.promote(model_name, v1, to="champion", policy=eval_policy, store=store)
    mlgate.promote(model_name, v2, to="challenger", policy=eval_policy, store=store)
    set_traffic(store, model_name, weight=50)
    st = mlgate.status(model_name, policy=eval_policy, store=store)
    assert st.notes == ()
    challenger = next(a for a in st.aliases if a.alias == "challenger")
    assert challenger.last_move.kind == "promote" and challenger.last_move.to_version == v2
    assert st.traffic == {"mode": "split", "challenger_weight": 50.0}


def test_status_names_an_interrupted_attach_by_its_version(
    store, model_name, make_version, eval_policy, capsys
):
    """A version event left pending (an attach killed mid-way) is named by its version, not as
    the move of an alias it never had ("a attach of  to 3" before)."""
    from mlgate.promotion.ledger import attach_event
    from mlgate.promotion.workflow import ledger_for

    version = make_version()
    ledger_for(store, eval_policy).append(
        attach_event(model_name, version, written=("mlgate.git.commit",), forced={})
    )
    st = mlgate.status(model_name, policy=eval_policy, store=store)
    assert [n for n in st.notes if "interrupted" in n] == [
        f"an attach of version {version} by {st.pending[0].actor} at {st.pending[0].at} was "
        "interrupted; run it again to finish it"
    ]
    capsys.readouterr()
    assert main(["status", model_name, "--policy", str(eval_policy)]) == 0
    out = capsys.readouterr().out
    assert f"an attach of version {version}" in out and " of  to " not in out


def test_status_shows_the_traffic_split(store, model_name, make_version, eval_policy, capsys):
    """`mlgate status` says what share the challenger answers (or shadows)."""
    from mlgate.promotion.traffic import set_traffic

    v1, v2 = make_version(), make_version()
    mlgate.promote(model_name, v1, to="champion", policy=eval_policy, store=store)
    mlgate.promote(model_name, v2, to="challenger", policy=eval_policy, store=store)
    set_traffic(store, model_name, weight=20)
    capsys.readouterr()
    assert main(["status", model_name, "--policy", str(eval_policy)]) == 0
    assert f"traffic: challenger (version {v2}) answers 20% of requests" in capsys.readouterr().out
    set_traffic(store, model_name, weight=5, mode="shadow")
    assert main(["status", model_name, "--policy", str(eval_policy)]) == 0
    assert "scores a copy of every request (shadow" in capsys.readouterr().out


def test_successful_promote_prints_its_gates_or_one_line_when_quiet(
    store, model_name, make_version, eval_policy, capsys
):
    """A passing `promote` prints the gate table; with --quiet exactly one summary line."""
    v1, v2 = make_version(), make_version()
    capsys.readouterr()
    assert (
        main(["promote", model_name, "-v", v1, "--to", "champion", "--policy", str(eval_policy)])
        == 0
    )
    out = capsys.readouterr().out
    assert "PASSED" in out and "metric:accuracy" in out and "no_regression:accuracy" in out
    assert "moved" in out
    rc = main(
        [
            "promote",
            model_name,
            "-v",
            v2,
            "--to",
            "champion",
            "--quiet",
            "--policy",
            str(eval_policy),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "moved" in out and f"{v1} -> {v2}" in out
