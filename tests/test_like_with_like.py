"""Gates compare like with like, on a real tracking server with real scikit-learn models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LinearRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

import mlgate
from conftest import write_policy
from mlgate.errors import UsageError
from mlgate.keys import Tags


def _typed_train(train: pd.DataFrame) -> pd.DataFrame:
    """The classifier's training frame plus an integer and a string column (CSV loses types)."""
    frame = train.copy()
    frame.insert(0, "store_id", np.arange(len(frame), dtype="int64") * 7)
    frame.insert(
        1, "city", [["Lyon", "Oslo", "Kyiv", "São Paulo, SP"][i % 4] for i in range(len(frame))]
    )
    return frame


DATA_POLICY = """
[[default.gates.champion]]
type = "data"
train_path = "{path}"
"""


def test_frame_fingerprint_matches_parquet_and_csv_of_the_same_rows(
    store, model_name, make_version, classifier, tmp_path
):
    """A frame-registered version matches Parquet and CSV of its rows; a changed cell fails."""
    _, train, _ = classifier
    frame = _typed_train(train)
    v = make_version(train_data=frame)
    tags = store.get_version(model_name, v).tags
    assert tags[Tags.data("train", "kind")] == "dataframe"
    frame.to_parquet(tmp_path / "train.parquet", index=False)
    frame.to_csv(tmp_path / "train.csv", index=False)
    for name in ("train.parquet", "train.csv"):
        policy = write_policy(tmp_path, DATA_POLICY.format(path=name))
        decision = mlgate.check(model_name, v, to="champion", policy=policy, store=store)
        assert decision.passed, decision.results[0].reason
    changed = frame.copy()
    changed.loc[123, "f3"] += 1e-9
    changed.to_csv(tmp_path / "train.csv", index=False)
    policy = write_policy(tmp_path, DATA_POLICY.format(path="train.csv"))
    decision = mlgate.check(model_name, v, to="champion", policy=policy, store=store)
    reason = decision.results[0].reason
    assert not decision.passed
    assert "DataFrame content, recorded" in reason and "the table it holds" in reason


def _count_target(train: pd.DataFrame) -> pd.DataFrame:
    frame = train.drop(columns="label")
    frame["label"] = np.clip(np.round(2 * frame["f0"] + frame["f1"] + 6), 0, None).astype("int64")
    return frame


REGRESSION_POLICY = """
[default.evaluation]
data = "eval.csv"
target = "label"
[[default.gates.champion]]
type = "metric"
metric = "rmse"
max = 5.0
"""


def test_regressor_with_integer_target_is_a_regression_task(
    store, model_name, make_version, classifier, tmp_path
):
    """A regressor on an integer target is evaluated as regression: its estimator says so."""
    _, train, test = classifier
    reg_train, reg_test = _count_target(train), _count_target(test)
    assert reg_test["label"].nunique() < 20  # the old rule called this classification
    model = LinearRegression().fit(reg_train.drop(columns="label"), reg_train["label"])
    v = make_version(model, train_data=reg_train, eval_data=reg_test, metrics={"rmse": 99.0})
    reg_test.to_csv(tmp_path / "eval.csv", index=False)
    policy = write_policy(tmp_path, REGRESSION_POLICY)
    decision = mlgate.check(model_name, v, to="champion", policy=policy, store=store)
    assert decision.evaluation["task"] == "regression"
    assert decision.evaluation["task_source"] == "estimator"
    assert decision.passed, decision.results[0].reason
    assert "(evaluated on" in decision.results[0].reason


def test_task_that_cannot_be_told_is_refused(store, model_name, make_version, classifier, tmp_path):
    """A model that is neither classifier nor regressor, on integer labels, needs task set."""
    _, train, test = classifier
    features = train.drop(columns="label")
    v = make_version(KMeans(n_clusters=2, n_init=1, random_state=0).fit(features))
    test.to_csv(tmp_path / "eval.csv", index=False)
    policy = write_policy(
        tmp_path,
        REGRESSION_POLICY.replace('metric = "rmse"\nmax = 5.0', 'metric = "accuracy"\nmin = 0.1'),
    )
    with pytest.raises(UsageError) as err:
        mlgate.check(model_name, v, to="champion", policy=policy, store=store)
    assert 'task = "classification" or "regression"' in str(err.value)
    (tmp_path / "mlgate.toml").write_text(
        policy.read_text().replace('target = "label"', 'target = "label"\ntask = "classification"')
    )
    decision = mlgate.check(model_name, v, to="champion", policy=policy, store=store)
    assert decision.evaluation["task"] == "classification"


PROBA_POLICY = """
[default.evaluation]
data = "eval.csv"
target = "label"
[default.evaluation.metrics]
weighted_cost = "mlgate_custom_metrics:weighted_cost"
[[default.gates.champion]]
type = "metric"
metric = "roc_auc"
min = 0.7
[[default.gates.champion]]
type = "no_regression"
metric = "log_loss"
[[default.gates.champion]]
type = "no_regression"
metric = "weighted_cost"
greater_is_better = false
"""

CUSTOM_METRICS = '''
import numpy as np


def weighted_cost(y_true, y_pred, y_proba=None):
    """False negatives cost 5, false positives 1; scaled by how sure the model was."""
    cost = np.where((y_true == 1) & (y_pred == 0), 5.0, np.where(y_true != y_pred, 1.0, 0.0))
    return float(np.mean(cost * y_proba.max(axis=1)))
'''


def test_probability_and_custom_metrics_from_the_models_own_predict_proba(
    store, model_name, make_version, classifier, tmp_path
):
    """Probability metrics come from the model's own predict_proba; custom metrics get y_proba."""
    model, train, test = classifier
    (tmp_path / "mlgate_custom_metrics.py").write_text(CUSTOM_METRICS)
    test.to_csv(tmp_path / "eval.csv", index=False)
    prior = DummyClassifier(strategy="prior").fit(train.drop(columns="label"), train["label"])
    v1 = make_version(prior)
    ungated = write_policy(tmp_path, "[default.gates]\nchampion = []\n")
    mlgate.promote(model_name, v1, to="champion", policy=ungated, store=store)
    policy = write_policy(tmp_path, PROBA_POLICY)
    v2 = make_version()
    decision = mlgate.check(model_name, v2, to="champion", policy=policy, store=store)
    assert decision.passed, [r.reason for r in decision.results]
    got = decision.evaluation["metrics"][v2]
    x, y = test.drop(columns="label"), test["label"]
    proba = model.predict_proba(x)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, proba[:, 1]))
    assert got["log_loss"] == pytest.approx(log_loss(y, proba))
    assert got["average_precision"] == pytest.approx(average_precision_score(y, proba[:, 1]))
    assert got["brier_score"] == pytest.approx(brier_score_loss(y, proba[:, 1]))
    assert "weighted_cost" in got and "evaluated on" in decision.results[2].reason
    # The other way round, the better champion blocks the worse candidate on log_loss.
    mlgate.promote(model_name, v2, to="champion", policy=ungated, store=store)
    policy = write_policy(tmp_path, PROBA_POLICY.replace("min = 0.7", "min = 0.4"))
    back_decision = mlgate.check(model_name, v1, to="champion", policy=policy, store=store)
    back = {r.name: r for r in back_decision.results}
    assert not back["no_regression:log_loss"].passed
    assert "is worse than champion" in back["no_regression:log_loss"].reason


COMPARE_POLICY = """
[default.evaluation]
data = "eval.csv"
target = "label"
[[default.gates.champion]]
type = "no_regression"
metric = "accuracy"
"""


def test_one_row_does_not_pass_no_regression_and_nan_target_is_named(
    store, model_name, make_version, classifier, tmp_path
):
    """A 1-row evaluation set fails no_regression; a NaN target is named as a missing value."""
    _, _, test = classifier
    policy = write_policy(tmp_path, COMPARE_POLICY)
    test.to_csv(tmp_path / "eval.csv", index=False)
    v1 = make_version()
    mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
    v2 = make_version()
    test.head(1).to_csv(tmp_path / "eval.csv", index=False)
    decision = mlgate.check(model_name, v2, to="champion", policy=policy, store=store)
    assert not decision.passed
    assert "needs at least 30 (evaluation.min_rows)" in decision.results[0].reason
    holed = test.astype({"label": "float64"})
    holed.loc[[3, 8], "label"] = np.nan
    holed.to_csv(tmp_path / "eval.csv", index=False)
    with pytest.raises(UsageError) as err:
        mlgate.check(model_name, v2, to="champion", policy=policy, store=store)
    assert "target column 'label' has 2 missing values" in str(err.value)


SPEED_POLICY = (
    COMPARE_POLICY
    + """
[[default.gates.champion]]
type = "signature"
[[default.gates.champion]]
type = "lineage"
require_commit = false
require_clean = false
"""
)


def test_check_fetches_each_versions_files_once(
    tracking_uri, model_name, make_version, classifier, tmp_path
):
    """A check fetches each version's files once for evaluation, signature and lineage gates."""
    from mlgate import Store

    class CountingStore(Store):
        """The real Store, counting what it fetches from the server by models:/ URI."""

        fetched: list[str]

        def download(self, uri, dst=None):
            self.fetched.append(uri)
            return super().download(uri, dst)

        def load_pyfunc(self, uri):
            self.fetched.append(uri)
            return super().load_pyfunc(uri)

        def model_info(self, uri):
            if uri.startswith("models:/"):
                self.fetched.append(uri)
            return super().model_info(uri)

    _, _, test = classifier
    test.to_csv(tmp_path / "eval.csv", index=False)
    policy = write_policy(tmp_path, SPEED_POLICY)
    store = CountingStore(tracking_uri)
    store.fetched = []
    v1 = make_version()
    mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
    v2 = make_version()
    store.fetched = []
    decision = mlgate.check(model_name, v2, to="champion", policy=policy, store=store)
    assert decision.passed, [r.reason for r in decision.results]
    assert sorted(store.fetched) == [f"models:/{model_name}/{v1}", f"models:/{model_name}/{v2}"]


def test_requirement_pins_are_compared_without_mlflows_scan(tmp_path):
    """The model's pinned requirements are compared with what is installed; mismatches listed."""
    from importlib.metadata import version

    from mlgate.registry.pyfunc import requirement_mismatches

    (tmp_path / "requirements.txt").write_text(
        f"mlflow=={version('mlflow')}\nscikit-learn==0.0.1\nnot-a-real-package-xyz==1.0\n"
        "pandas>=1\n# comment\n"
    )
    assert requirement_mismatches(str(tmp_path)) == [
        f"scikit-learn: model wants 0.0.1, installed {version('scikit-learn')}",
        "not-a-real-package-xyz: model wants 1.0, installed not installed",
    ]
    assert requirement_mismatches(str(tmp_path / "missing")) == []


def test_policy_task_cannot_contradict_the_estimator(
    store, model_name, make_version, classifier, tmp_path
):
    """task = "classification" for a regressor is refused, not scored as float equality."""
    _, train, test = classifier
    reg_train, reg_test = _count_target(train), _count_target(test)
    model = LinearRegression().fit(reg_train.drop(columns="label"), reg_train["label"])
    v = make_version(model, train_data=reg_train, eval_data=reg_test)
    reg_test.to_csv(tmp_path / "eval.csv", index=False)
    policy = write_policy(
        tmp_path,
        REGRESSION_POLICY.replace(
            'target = "label"', 'target = "label"\ntask = "classification"'
        ).replace('metric = "rmse"\nmax = 5.0', 'metric = "accuracy"\nmin = 0.0'),
    )
    with pytest.raises(UsageError, match="is a regression model"):
        mlgate.check(model_name, v, to="champion", policy=policy, store=store)


SCORED_POLICY = """
[default.evaluation]
data = "{data}"
target = "label"
[[default.gates.champion]]
type = "metric"
metric = "accuracy"
min = 0.5
[[default.gates.champion]]
type = "data"
distinct_train_eval = true
"""


@pytest.mark.parametrize("registered_as", ["file", "dataframe"])
def test_scoring_the_training_rows_fails_distinct_train_eval(
    store, model_name, make_version, classifier, tmp_path, registered_as, monkeypatch
):
    """distinct_train_eval fails when the rows actually scored are the training rows."""
    monkeypatch.chdir(tmp_path)  # --eval-data is relative to the working directory
    _, train, test = classifier
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "eval.csv", index=False)
    v = make_version(train_data=tmp_path / "train.csv" if registered_as == "file" else train)
    good = write_policy(tmp_path, SCORED_POLICY.format(data="eval.csv"))
    decision = mlgate.check(model_name, v, to="champion", policy=good, store=store)
    assert decision.passed, [r.reason for r in decision.results]
    for data in ("train.csv", tmp_path / "train.csv"):
        decision = mlgate.check(
            model_name, v, to="champion", policy=good, eval_data=data, store=store
        )
        data_gate = next(r for r in decision.results if r.type == "data")
        assert not decision.passed
        assert "scored for this check is the training data" in data_gate.reason
