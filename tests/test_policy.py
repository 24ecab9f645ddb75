"""Policy files: found by walking up, validated strictly, errors name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.errors import PolicyError
from mlgate.promotion.policy import find_policy, load_policy

GOOD = """
ledger_experiment = "ledger-x"
lease_ttl = 30

[default]
[[default.gates.challenger]]
type = "metric"
metric = "accuracy"
min = 0.5

[models.churn]
champion_alias = "prod"
challenger_alias = "canary"
[models.churn.evaluation]
data = "eval.csv"
target = "label"
task = "classification"
[[models.churn.gates.prod]]
type = "no_regression"
metric = "rmse"
tolerance = 0.1
relative = true
[[models.churn.gates.prod]]
type = "bootstrap"
metric = "accuracy"
confidence = 0.9
samples = 200
[[models.churn.gates.prod]]
type = "data"
distinct_train_eval = true
[[models.churn.gates.prod]]
type = "signature"
[[models.churn.gates.prod]]
type = "lineage"
require_clean = false
[models.churn.gates]
canary = []
"""


def write(tmp_path: Path, text: str, name: str = "mlgate.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_policy_parses(tmp_path):
    """Every gate type and section parses into typed values; relative paths resolve to the file."""
    pol = load_policy(write(tmp_path, GOOD))
    assert pol.ledger_experiment == "ledger-x" and pol.lease_ttl == 30
    churn = pol.for_model("churn")
    assert (churn.champion_alias, churn.challenger_alias) == ("prod", "canary")
    assert [g.type for g in churn.gates_for("prod")] == [
        "no_regression",
        "bootstrap",
        "data",
        "signature",
        "lineage",
    ]
    assert churn.gates_for("canary") == ()
    assert churn.gates_for("champion") is None
    assert churn.evaluation.data == str(tmp_path / "eval.csv")
    other = pol.for_model("anything-else")
    assert other.gates_for("challenger")[0].name == "metric:accuracy"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("bogus = 1", "bogus", "unknown key"),
        ("lease_ttl = 'x'", "lease_ttl", "must be a number"),
        ("lease_ttl = 0", "lease_ttl", "between 1 and 3600"),
        ("[models.m]\ncolour = 1", "models.m.colour", "unknown key"),
        (
            "[[models.m.gates.champion]]\ntype = 'magic'",
            "models.m.gates.champion[0].type",
            "unknown gate type",
        ),
        (
            "[[models.m.gates.champion]]\ntype = 'metric'\nmetric = 'accuracy'",
            "models.m.gates.champion[0]",
            "needs min, max",
        ),
        (
            "[[models.m.gates.champion]]\ntype = 'metric'\nmetric = 'accuracy'\nmin = 0.9\nmax = 0.1",
            "models.m.gates.champion[0].min",
            "no value can pass",
        ),
        (
            "[[models.m.gates.champion]]\ntype = 'metric'\nmin = 0.9",
            "models.m.gates.champion[0].metric",
            "is required",
        ),
        (
            "[[models.m.gates.champion]]\ntype = 'metric'\nmetric = 'accuracy'\nmin = 'high'",
            "models.m.gates.champion[0].min",
            "must be a number",
        ),
        (
            "[[models.m.gates.champion]]\ntype = 'no_regression'\nmetric = 'zork'",
            "models.m.gates.champion[0].greater_is_better",
            "does not know",
        ),
        (
            "[[models.m.gates.champion]]\ntype = 'no_regression'\nmetric = 'rmse'\ntolerance = -1",
            "models.m.gates.champion[0].tolerance",
            "zero or more",
        ),
        (
            "[[models.m.gates.champion]]\ntype = 'bootstrap'\nmetric = 'accuracy'\nconfidence = 1.5",
            "models.m.gates.champion[0].confidence",
            "in [0.5, 1)",
        ),
        (
            "[[models.m.gates.champion]]\ntype = 'data'",
            "models.m.gates.champion[0]",
            "at least one of",
        ),
        (
            "[[models.m.gates.champion]]\ntype = 'data'\ntrain_fingerprint = 'abc'",
            "models.m.gates.champion[0].train_fingerprint",
            "blake3:",
        ),
        (
            "[[models.m.gates.champion]]\ntype = 'lineage'\nrequire_data = ['test']",
            "models.m.gates.champion[0].require_data",
            "train",
        ),
        ("[models.m.gates]\nchampion = 'x'", "models.m.gates.champion", "array of tables"),
        ("[models.m.gates]\nlatest = []", "models.m.gates.latest", "reserved"),
        (
            "[models.m]\nchampion_alias = 'a'\nchallenger_alias = 'a'",
            "models.m.challenger_alias",
            "must differ",
        ),
        ("[models.m.evaluation]\ndata = 'x.csv'", "models.m.evaluation.target", "is required"),
        ("[models.m.evaluation]\ntask = 'ranking'", "models.m.evaluation.task", "classification"),
    ],
)
def test_bad_policies_name_file_and_key(tmp_path, text, key, problem):
    """Each malformed policy raises PolicyError naming the file and the exact key path."""
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert err.value.path == str(path)
    assert err.value.key == key
    assert problem in err.value.problem
    assert str(path) in str(err.value) and key in str(err.value)


def test_not_toml(tmp_path):
    """A file that is not TOML is reported as such, with the file."""
    path = write(tmp_path, "this is [not toml")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(path)


def test_missing_file(tmp_path):
    """An explicit policy path that does not exist is an error naming it."""
    with pytest.raises(PolicyError, match="no such file"):
        load_policy(tmp_path / "nope.toml")


def test_pyproject_tool_table_and_walk_up(tmp_path):
    """[tool.mlgate] in pyproject.toml is found from a subdirectory; its keys are prefixed."""
    write(tmp_path, '[project]\nname = "x"\n[tool.mlgate]\nlease_ttl = 10\n', "pyproject.toml")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert find_policy(sub) == tmp_path / "pyproject.toml"
    assert load_policy(start=str(sub)).lease_ttl == 10
    write(tmp_path, "[tool.mlgate]\nfoo = 1\n", "pyproject.toml")
    with pytest.raises(PolicyError) as err:
        load_policy(tmp_path / "pyproject.toml")
    assert err.value.key == "tool.mlgate.foo"


def test_mlgate_toml_wins_over_pyproject(tmp_path):
    """mlgate.toml in the same directory is preferred."""
    write(tmp_path, "[tool.mlgate]\nlease_ttl = 10\n", "pyproject.toml")
    write(tmp_path, "lease_ttl = 20\n")
    assert load_policy(start=str(tmp_path)).lease_ttl == 20


def test_no_policy_anywhere(tmp_path):
    """No policy up the tree: a clear error that says how to make one."""
    with pytest.raises(PolicyError, match="no policy found"):
        load_policy(start=str(tmp_path))


def test_policy_is_data_not_code(tmp_path):
    """TOML cannot run code: a string that looks like Python stays a string (and fails checks)."""
    path = write(
        tmp_path, "[[models.m.gates.champion]]\ntype = \"__import__('os').system('false')\"\n"
    )
    with pytest.raises(PolicyError, match="unknown gate type"):
        load_policy(path)


def test_evaluation_min_rows_and_custom_metrics(tmp_path):
    """evaluation.min_rows and evaluation.metrics parse; bad entries name the file and key."""
    pol = load_policy(
        write(
            tmp_path,
            "[default]\n[default.evaluation]\nmin_rows = 100\n"
            "[default.evaluation.metrics]\nprofit = 'my_metrics:profit'\n",
        )
    )
    ev = pol.for_model("m").evaluation
    assert ev.min_rows == 100 and dict(ev.metrics) == {"profit": "my_metrics:profit"}
    assert ev.base_dir == str(tmp_path.resolve())
    assert load_policy(write(tmp_path, "[default]\n")).for_model("m").evaluation.min_rows == 30
    bad = [
        ("[models.m.evaluation]\nmin_rows = 0", "models.m.evaluation.min_rows", "at least 1"),
        (
            "[models.m.evaluation.metrics]\nprofit = 'profit'",
            "models.m.evaluation.metrics.profit",
            "module:function",
        ),
        (
            "[models.m.evaluation.metrics]\nroc_auc = 'a:b'",
            "models.m.evaluation.metrics.roc_auc",
            "built-in",
        ),
    ]
    for text, key, problem in bad:
        with pytest.raises(PolicyError) as err:
            load_policy(write(tmp_path, text))
        assert err.value.key == key and problem in err.value.problem
