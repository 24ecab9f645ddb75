"""Gates are pure functions over evidence, and they fail closed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlgate.keys import Tags
from mlgate.promotion.gates import Column, EvaluationEvidence, Evidence, VersionEvidence, run_gates
from mlgate.promotion.measures import paired_bootstrap
from mlgate.promotion.policy import GateSpec

EVAL_A = "blake3:" + "a" * 64
EVAL_B = "blake3:" + "b" * 64


def spec(type_: str, **opts) -> GateSpec:
    name = f"{type_}:{opts['metric']}" if "metric" in opts else type_
    return GateSpec(type=type_, options={"type": type_, **opts}, where="test", name=name)


def version(v: str = "2", **kw) -> VersionEvidence:
    kw.setdefault("logged_eval_fingerprint", EVAL_A)
    return VersionEvidence(version=v, **kw)


def evidence(candidate: VersionEvidence, champion: VersionEvidence | None = None, **kw) -> Evidence:
    return Evidence(model="m", alias="champion", candidate=candidate, champion=champion, **kw)


def one(s: GateSpec, ev: Evidence):
    (r,) = run_gates([s], ev)
    return r


@pytest.mark.parametrize("value", [None, math.nan, math.inf])
def test_threshold_fails_closed_on_missing_or_nan(value):
    """A missing, NaN or infinite metric fails a threshold gate."""
    logged = {} if value is None else {"accuracy": value}
    r = one(spec("metric", metric="accuracy", min=0.5), evidence(version(logged=logged)))
    assert not r.passed


def test_threshold_bounds():
    """min and max are inclusive bounds on the candidate's metric."""
    ev = evidence(version(logged={"rmse": 3.2}))
    assert one(spec("metric", metric="rmse", max=3.2), ev).passed
    assert not one(spec("metric", metric="rmse", max=3.1), ev).passed
    assert one(spec("metric", metric="rmse", min=1, max=4), ev).passed


def test_evaluated_metric_wins_over_logged():
    """A metric computed on shared evaluation rows is used before the logged one."""
    ev = evidence(version(logged={"accuracy": 0.99}, evaluated={"accuracy": 0.5}))
    r = one(spec("metric", metric="accuracy", min=0.9), ev)
    assert not r.passed and r.observed == 0.5


def test_no_regression_first_promotion_is_explicit():
    """With no champion, comparison gates pass and say it is the first promotion."""
    r = one(spec("no_regression", metric="accuracy"), evidence(version(logged={"accuracy": 0.1})))
    assert r.passed and "first promotion" in r.reason


def test_no_regression_tolerance_and_direction():
    """Worse beyond the tolerance fails; lower-is-better metrics are handled."""
    cand = version(logged={"accuracy": 0.895, "rmse": 2.0})
    champ = version("1", logged={"accuracy": 0.9, "rmse": 1.9})
    ev = evidence(cand, champ)
    assert one(spec("no_regression", metric="accuracy", tolerance=0.01), ev).passed
    assert not one(spec("no_regression", metric="accuracy", tolerance=0.001), ev).passed
    assert not one(spec("no_regression", metric="rmse", tolerance=0.05), ev).passed
    assert one(spec("no_regression", metric="rmse", tolerance=0.06, relative=True), ev).passed
    assert not one(spec("improvement", metric="accuracy", min_improvement=0.0), ev).passed


def test_logged_metrics_on_different_eval_data_are_not_compared():
    """Logged metrics from different evaluation data: the comparison refuses, and says why."""
    cand = version(logged={"accuracy": 0.99}, logged_eval_fingerprint=EVAL_B)
    champ = version("1", logged={"accuracy": 0.5}, logged_eval_fingerprint=EVAL_A)
    r = one(spec("no_regression", metric="accuracy"), evidence(cand, champ))
    assert not r.passed and "different evaluation data" in r.reason
    unknown = version(logged={"accuracy": 0.99}, logged_eval_fingerprint=None)
    assert not one(spec("no_regression", metric="accuracy"), evidence(unknown, champ)).passed


def test_unreadable_champion_fails_comparisons():
    """An unreadable champion is a failure, never a first promotion."""
    ev = evidence(version(logged={"accuracy": 1.0}), None, champion_error="boom")
    assert not ev.first_promotion
    for s in (
        spec("no_regression", metric="accuracy"),
        spec("signature"),
        spec("bootstrap", metric="accuracy"),
    ):
        assert not one(s, ev).passed


def test_unknown_gate_type_and_gate_crash_fail_closed():
    """An unknown gate type, or an exception inside a gate, fails that gate."""
    assert not one(GateSpec("nope", {}, "x", "nope"), evidence(version())).passed
    broken = spec("metric", metric="accuracy", min="not a number")
    r = one(broken, evidence(version(logged={"accuracy": 0.5})))
    assert not r.passed and "gate error" in r.reason


def cols(*items: tuple[str, str, bool]) -> tuple[Column, ...]:
    return tuple(Column(*c) for c in items)


@pytest.mark.parametrize(
    ("candidate", "ok", "words"),
    [
        (cols(("a", "double", True), ("b", "string", True)), True, "compatible"),
        (
            cols(("a", "double", True), ("b", "string", True), ("c", "long", False)),
            True,
            "optional",
        ),
        (cols(("a", "double", True)), False, "removed"),
        (cols(("a", "string", True), ("b", "string", True)), False, "changed type"),
        (
            cols(("a", "double", True), ("b", "string", True), ("c", "long", True)),
            False,
            "required",
        ),
    ],
)
def test_signature_rules(candidate, ok, words):
    """Removed/retyped champion columns and new required columns break; new optional ones do not."""
    champ = version("1", signature=cols(("a", "double", True), ("b", "string", True)))
    r = one(spec("signature"), evidence(version(signature=candidate), champ))
    assert r.passed is ok and words in r.reason


def test_signature_widening_and_missing():
    """long -> double widens safely; a candidate without a signature fails unless allowed."""
    champ = version("1", signature=cols(("a", "long", True)))
    assert one(
        spec("signature"), evidence(version(signature=cols(("a", "double", True))), champ)
    ).passed
    assert not one(spec("signature"), evidence(version(signature=None), champ)).passed
    assert one(
        spec("signature", allow_missing=True), evidence(version(signature=None), champ)
    ).passed


def lineage_tags(**over) -> dict[str, str]:
    tags = {Tags.GIT_COMMIT: "abc123", Tags.GIT_DIRTY: "false", Tags.ARTIFACT_DIGEST: EVAL_A}
    tags.update(over)
    return tags


def test_lineage_gate():
    """Commit recorded, clean tree and intact artifacts are each required."""
    good = version(tags=lineage_tags(), artifact_digest_now=EVAL_A)
    assert one(spec("lineage"), evidence(good)).passed
    dirty = version(tags=lineage_tags(**{Tags.GIT_DIRTY: "true"}), artifact_digest_now=EVAL_A)
    assert "dirty" in one(spec("lineage"), evidence(dirty)).reason
    nogit = version(tags=lineage_tags(**{Tags.GIT_COMMIT: "none"}), artifact_digest_now=EVAL_A)
    assert not one(spec("lineage"), evidence(nogit)).passed
    assert one(spec("lineage", require_commit=False, require_clean=False), evidence(nogit)).passed
    tampered = version(tags=lineage_tags(), artifact_digest_now=EVAL_B)
    r = one(spec("lineage"), evidence(tampered))
    assert not r.passed and "changed since registration" in r.reason


def test_data_gate():
    """Pinned fingerprints, paths, train != eval and recorded-path checks."""
    tags = {
        Tags.data("train", "fingerprint"): EVAL_A,
        Tags.data("eval", "fingerprint"): EVAL_B,
        Tags.data("train", "source"): "/data/train.csv",
    }
    v = version(tags=tags)
    assert one(spec("data", train_fingerprint=EVAL_A, distinct_train_eval=True), evidence(v)).passed
    assert not one(spec("data", train_fingerprint=EVAL_B), evidence(v)).passed
    same = version(tags={**tags, Tags.data("eval", "fingerprint"): EVAL_A})
    assert "identical" in one(spec("data", distinct_train_eval=True), evidence(same)).reason
    changed = evidence(v, path_fingerprints={"/data/train.csv": EVAL_B})
    r = one(spec("data", verify_recorded=True), changed)
    assert not r.passed and "changed since registration" in r.reason
    gone = evidence(v, path_fingerprints={"/data/train.csv": "error: no such file"})
    assert not one(spec("data", verify_recorded=True), gone).passed
    intact = evidence(v, path_fingerprints={"/data/train.csv": EVAL_A})
    assert one(spec("data", verify_recorded=True), intact).passed


def test_bootstrap_gate_and_interval():
    """A clearly better candidate passes the paired bootstrap; an equal one does not."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    good = np.where(rng.random(2000) < 0.9, y, 1 - y)
    bad = np.where(rng.random(2000) < 0.7, y, 1 - y)
    ev_eval = EvaluationEvidence(
        EVAL_A, 2000, "classification", "y", y, {"2": good, "1": bad, "3": bad}
    )
    better = evidence(version("2"), version("1"), evaluation=ev_eval)
    r = one(spec("bootstrap", metric="accuracy", samples=300), better)
    assert r.passed and r.observed["lower"] > 0.1
    same = Evidence("m", "champion", version("3"), version("1"), evaluation=ev_eval)
    assert not one(spec("bootstrap", metric="accuracy", samples=300), same).passed
    no_data = evidence(version("2"), version("1"))
    assert "needs evaluation data" in one(spec("bootstrap", metric="accuracy"), no_data).reason


def test_paired_bootstrap_generic_path_matches_direction():
    """The sklearn path (f1) and lower-is-better metrics orient improvement the same way."""
    rng = np.random.default_rng(2)
    y = rng.normal(size=500)
    close, far = y + rng.normal(0, 0.1, 500), y + rng.normal(0, 1.0, 500)
    b = paired_bootstrap("regression", "rmse", y, close, far, greater_is_better=False, samples=200)
    assert b.lower > 0
    yc = rng.integers(0, 3, 500)
    b2 = paired_bootstrap(
        "classification", "f1_macro", yc, yc, (yc + 1) % 3, greater_is_better=True, samples=100
    )
    assert b2.lower > 0.5


def test_negative_change_reads_worse_by_a_positive_amount():
    """A worse candidate is 'worse than champion ... by 0.138', never 'by -0.138'."""
    ev = evidence(
        version(logged={"accuracy": 0.812, "rmse": 2.5}),
        version("1", logged={"accuracy": 0.95, "rmse": 2.0}),
    )
    acc = one(spec("no_regression", metric="accuracy"), ev)
    assert (
        "is worse than champion v1 (0.95) by 0.138;" in acc.reason
        and "-" not in acc.reason.split(";")[0]
    )
    rmse = one(spec("no_regression", metric="rmse", relative=True), ev)
    assert "is worse than champion v1 (2) by 25% (relative)" in rmse.reason
    better = one(spec("improvement", metric="accuracy"), evidence(ev.champion, ev.candidate))
    assert "is better than champion v2 (0.812) by 0.138" in better.reason


def test_evaluation_given_never_falls_back_to_logged_metrics():
    """With evaluation data, an unevaluated metric fails instead of using the logged value."""
    e = EvaluationEvidence(EVAL_A, 200, "classification", "y", np.zeros(200), {})
    cand = version(
        logged={"f1": 0.99},
        evaluated={"accuracy": 0.9},
        unevaluated={"roc_auc": "no predict_proba"},
    )
    champ = version("1", logged={"f1": 0.5}, evaluated={"accuracy": 0.8})
    ev = evidence(cand, champ, evaluation=e)
    f1 = one(spec("metric", metric="f1", min=0.5), ev)
    assert not f1.passed and "the logged value is not used" in f1.reason
    auc = one(spec("metric", metric="roc_auc", min=0.5), ev)
    assert not auc.passed and "no predict_proba" in auc.reason
    assert not one(spec("no_regression", metric="f1"), ev).passed
    assert "(evaluated on 200 rows)" in one(spec("metric", metric="accuracy", min=0.5), ev).reason
    logged_only = evidence(version(logged={"f1": 0.99}))
    assert "(logged)" in one(spec("metric", metric="f1", min=0.5), logged_only).reason


def test_comparison_gates_need_min_rows():
    """An evaluation set smaller than min_rows fails no_regression and bootstrap, however good."""
    y = np.array([1])
    small = EvaluationEvidence(
        EVAL_A, 1, "classification", "y", y, {"2": y, "1": 1 - y}, min_rows=30
    )
    ev = evidence(
        version(evaluated={"accuracy": 1.0}),
        version("1", evaluated={"accuracy": 0.0}),
        evaluation=small,
    )
    for s in (spec("no_regression", metric="accuracy"), spec("bootstrap", metric="accuracy")):
        r = one(s, ev)
        assert (
            not r.passed and "1 row; a comparison with the champion needs at least 30" in r.reason
        )
    tags = {Tags.data("eval", "rows"): "5"}
    logged = evidence(
        version(tags=tags, logged={"accuracy": 1.0}),
        version("1", tags=tags, logged={"accuracy": 0.5}),
    )
    assert "from 5 evaluation rows" in one(spec("no_regression", metric="accuracy"), logged).reason


def test_data_gate_names_the_kind_of_each_digest():
    """A data-gate mismatch names the kind of digest on each side (frame content, file bytes)."""
    frame_tags = {
        Tags.data("train", "fingerprint"): EVAL_A,
        Tags.data("train", "kind"): "dataframe",
    }
    as_frame = evidence(
        version(tags=frame_tags),
        frame_fingerprints={"t.csv": EVAL_A},
        path_fingerprints={"t.csv": EVAL_B},
    )
    assert one(spec("data", train_path="t.csv"), as_frame).passed
    differs = evidence(version(tags=frame_tags), frame_fingerprints={"t.csv": EVAL_B})
    r = one(spec("data", train_path="t.csv"), differs)
    assert (
        "(DataFrame content, recorded) differs from t.csv" in r.reason
        and "the table it holds" in r.reason
    )
    file_tags = {Tags.data("train", "fingerprint"): EVAL_A, Tags.data("train", "kind"): "file"}
    r = one(
        spec("data", train_path="t.csv"),
        evidence(version(tags=file_tags), path_fingerprints={"t.csv": EVAL_B}),
    )
    assert "(file bytes, recorded) differs from t.csv" in r.reason and ", file bytes)" in r.reason


def test_probability_metrics_match_scikit_learn():
    """Probability metrics equal scikit-learn's for 2 and 3 classes; unknown labels are a reason."""
    import sklearn.metrics as skm

    from mlgate.promotion.measures import compute_proba

    rng = np.random.default_rng(0)
    y2 = rng.choice(["no", "yes"], 300)
    p2 = rng.dirichlet([1, 1], 300)
    got, why = compute_proba(y2, p2, np.array(["no", "yes"]))
    yb = (y2 == "yes").astype(int)
    assert not why
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(yb, p2[:, 1]))
    assert got["average_precision"] == pytest.approx(skm.average_precision_score(yb, p2[:, 1]))
    assert got["brier_score"] == pytest.approx(skm.brier_score_loss(yb, p2[:, 1]))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y2, p2, labels=["no", "yes"]))
    y3 = rng.integers(0, 3, 300)
    p3 = rng.dirichlet([1, 1, 1], 300)
    got3, _ = compute_proba(y3, p3, np.array([0, 1, 2]))
    assert got3["roc_auc"] == pytest.approx(skm.roc_auc_score(y3, p3, multi_class="ovr"))
    assert got3["brier_score"] == pytest.approx(skm.brier_score_loss(y3, p3, labels=[0, 1, 2]))
    _, unknown = compute_proba(np.array([0, 1, 5]), p3[:3], np.array([0, 1, 2]))
    assert "not among the model's classes" in unknown["roc_auc"]


def test_every_gate_type_lives_in_the_registry_with_a_schema_that_reparses():
    """Each built-in type is one module's GATE; its parsed defaults pass its own schema again."""
    from mlgate.promotion.gates import registry

    gates = registry.builtin()
    assert sorted(gates) == sorted(
        ["metric", "no_regression", "improvement", "bootstrap", "data", "signature", "lineage"]
    )
    minimal = {
        "metric": {"metric": "accuracy", "min": 0.5},
        "no_regression": {"metric": "accuracy"},
        "improvement": {"metric": "accuracy"},
        "bootstrap": {"metric": "accuracy"},
        "data": {"distinct_train_eval": True},
        "signature": {},
        "lineage": {},
    }
    for name, gate in gates.items():
        assert gate.type == name
        parsed = registry.parse_spec({"type": name, **minimal[name]}, path="p", key="k")
        again = registry.resolve(parsed)[1]
        assert again.options == parsed.options and set(parsed.options) >= gate.schema.keys()


def test_hand_built_spec_with_a_bad_option_fails_closed_naming_the_key():
    """A GateSpec built in Python is checked against its type's schema before its gate runs."""
    ev = evidence(version(logged={"accuracy": 0.9}))
    r = one(spec("metric", metric="accuracy", max="high"), ev)
    assert not r.passed and r.reason == "gate error: max: must be a number, got a string"
    r = one(spec("metric", metric="accuracy", colour=1), ev)
    assert not r.passed and "colour: unknown key" in r.reason
    r = one(spec("no_regression", metric="zork"), ev)
    assert not r.passed and "does not know whether higher 'zork' is better" in r.reason


def test_needs_are_derived_from_each_gate_type():
    """Evidence collection asks each gate type what it needs; only that is fetched."""
    from mlgate.promotion.evidence import needs

    got = needs(
        [
            spec("metric", metric="f1", min=0.5),
            spec("bootstrap", metric="accuracy"),
            spec("data", train_path="t.csv", verify_recorded=True),
            spec("lineage", verify_artifacts=False),
            GateSpec("nope", {}, "x", "nope"),
        ]
    )
    assert got.metrics == {"f1", "accuracy"}
    assert got.data_files == (("t.csv", "train"),) and got.recorded_data
    assert not got.signature and not got.artifact_digest and not got.scored_data
    assert needs([spec("signature"), spec("lineage")]).signature
    assert needs([spec("lineage")]).artifact_digest
    assert needs([spec("signature")]).metrics == frozenset()
