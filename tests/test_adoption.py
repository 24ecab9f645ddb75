"""Where users adopt mlgate: the right registry or none, true lineage, plain-MLflow versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mlgate
from conftest import write_policy
from mlgate.cli import main
from mlgate.errors import EXIT_ERROR, EXIT_USAGE, UsageError
from mlgate.keys import Tags
from mlgate.testing import free_port

TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=300).fit(X, y)
    mlflow.set_experiment("plain-mlflow")
    with mlflow.start_run() as run:
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("accuracy", float(model.score(X, y)))
        mlflow.sklearn.log_model(model, name="clf", input_example=X.head(2))
        if len(sys.argv) > 1:
            mlflow.register_model(f"runs:/{run.info.run_id}/clf", sys.argv[1])
    print(run.info.run_id)
    """
)


def _git(path: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(path), *args], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def _repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q")
    _git(path, "config", "user.email", "t@example.com")
    _git(path, "config", "user.name", "t")
    (path / "train.py").write_text(TRAIN_SCRIPT)
    _git(path, "add", ".")
    _git(path, "commit", "-qm", "train")
    return path


def _train_with_plain_mlflow(cwd: Path, register_as: str | None = None) -> str:
    """Run train.py in ``cwd`` with plain MLflow (no mlgate); returns the run id."""
    args = [sys.executable, "train.py", *([register_as] if register_as else [])]
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- the right registry
def test_empty_tracking_uri_is_an_error_not_the_embedded_store(workdir, monkeypatch, capsys):
    """MLFLOW_TRACKING_URI set but empty (a fork's missing secret) is exit 2, and no store appears."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    code, _, err = _cli(capsys, "register", "--name", "m", "--model-uri", "models:/m-1")
    assert code == EXIT_USAGE
    assert "MLFLOW_TRACKING_URI is set but empty" in err
    code, _, err = _cli(capsys, "check", "m/1", "--to", "champion")
    assert code == EXIT_USAGE and "empty" in err
    assert not (workdir / "mlflow.db").exists()
    with pytest.raises(UsageError, match="set but empty"):
        mlgate.Store()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "  ")  # only spaces: the same, named the same way
    code, _, err = _cli(capsys, "status", "m")
    assert code == EXIT_USAGE and "MLFLOW_TRACKING_URI is set but empty" in err
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    code, _, err = _cli(capsys, "--tracking-uri", " ", "status", "m")
    assert code == EXIT_USAGE and "--tracking-uri" in err


@pytest.mark.parametrize("var", ["CI", "GITHUB_ACTIONS"])
def test_ci_refuses_the_embedded_default_unless_asked(workdir, monkeypatch, capsys, var):
    """In CI the embedded SQLite default is refused, saying how to ask for it explicitly."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(var, "true")
    code, _, err = _cli(capsys, "status", "m")
    assert code == EXIT_USAGE
    assert f"{var} is set" in err and "MLGATE_ALLOW_EMBEDDED=1" in err and "--tracking-uri" in err
    # Asked for explicitly: the refusal is gone (the store then simply does not exist yet).
    db = workdir / "explicit.db"
    code, _, err = _cli(capsys, "--tracking-uri", f"sqlite:///{db}", "status", "m")
    assert code == EXIT_USAGE and f"no tracking store at {db}" in err
    monkeypatch.setenv("MLGATE_ALLOW_EMBEDDED", "1")
    code, _, err = _cli(capsys, "status", "m")
    assert code == EXIT_USAGE and "no tracking store at" in err
    monkeypatch.setenv(var, "false")
    monkeypatch.delenv("MLGATE_ALLOW_EMBEDDED")
    assert mlgate.Store().uri.startswith("sqlite:")


@pytest.mark.parametrize(
    "args",
    [
        ["show", "m/1"],
        ["status", "m"],
        ["history", "m"],
        ["check", "m/1", "--to", "challenger"],
        ["promote", "m/1", "--to", "challenger"],
        ["rollback", "m"],
        ["attach", "m/1"],
        ["serve", "m", "--check"],
        ["serve", "m", "--port", str(free_port())],
    ],
    ids=lambda a: "-".join(a[:1] + a[2:3]),
)
def test_commands_that_need_a_store_never_create_one(workdir, monkeypatch, capsys, args):
    """A command run where no store exists says "no tracking store at ..." (exit 2), creating none."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    write_policy(workdir, "[default.gates]\nchallenger = []\nchampion = []\n")
    code, _, err = _cli(capsys, *args)
    assert code == EXIT_USAGE, err
    assert f"no tracking store at {workdir / 'mlflow.db'}" in err
    assert not (workdir / "mlflow.db").exists()
    assert not (workdir / "mlruns").exists()


def _forget_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_embedded_store_is_found_from_a_subdirectory(workdir, monkeypatch, capsys, classifier):
    """The embedded store lives beside the policy file, so a subdirectory opens the same store."""
    monkeypatch.delenv("MLGATE_HOME", raising=False)
    _forget_tracking_uri(monkeypatch)
    write_policy(workdir, "[default.gates]\nchallenger = []\n")
    sub = workdir / "notebooks" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    model, train, _ = classifier
    reg = mlgate.register(model, name="found-upward", train_data=train)
    assert (workdir / "mlflow.db").is_file() and not (sub / "mlflow.db").exists()
    assert (workdir / "mlruns").is_dir() and not (sub / "mlruns").exists()
    _forget_tracking_uri(monkeypatch)  # MLflow keeps the last URI in the process and its env
    code, out, err = _cli(capsys, "show", f"found-upward/{reg.number}")
    assert code == 0, err
    assert "found-upward version 1" in out
    # Without a policy to anchor it, a subdirectory points at the existing store by name.
    (workdir / "mlgate.toml").unlink()
    _forget_tracking_uri(monkeypatch)
    code, _, err = _cli(capsys, "show", "found-upward/1")
    assert code == EXIT_USAGE and f"there is one at {workdir / 'mlflow.db'}" in err


def test_unreachable_server_fails_at_once_in_one_line(tmp_path):
    """Connection refused is one short line, exit 1, without MLflow's retries or its long error."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:1"}
    env.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)  # MLflow's own retry default applies
    out = subprocess.run(
        [sys.executable, "-m", "mlgate", "show", "m/1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert out.returncode == EXIT_ERROR
    assert out.stderr.strip() == (
        "mlgate: error: cannot reach the tracking server at http://127.0.0.1:1: connection refused"
    )


# --------------------------------------------------------------------------- true lineage
def test_register_run_records_the_training_commit_not_a_later_one(
    tracking_uri, store, model_name, tmp_path, capsys
):
    """`register --run` takes the commit from the run's git tags, even after later commits."""
    repo = _repo(tmp_path / "project")
    trained_at = _git(repo, "rev-parse", "HEAD")
    run_id = _train_with_plain_mlflow(repo)
    (repo / "later.txt").write_text("a later change\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "later")
    assert _git(repo, "rev-parse", "HEAD") != trained_at
    os.chdir(repo)
    try:
        args = ["register", "--name", model_name, "--run", run_id, "--artifact-path", "clf"]
        code, out, err = _cli(capsys, *args, "--json")
    finally:
        os.chdir(tmp_path)
    assert code == 0, err
    recorded = json.loads(out)["git"]
    assert recorded["commit"] == trained_at
    assert recorded["source"] == "run"
    assert recorded["dirty"] is None  # MLflow does not record it; mlgate does not guess
    assert "no artifacts at artifact path" not in err
    text = mlgate.show(f"{model_name}/1", store=store)
    assert text.git.commit == trained_at and text.git_source == "run"


def test_register_uri_without_run_git_tags_labels_the_fallback(
    store, model_name, classifier, tmp_path, capsys
):
    """A run without git tags gets the current checkout, labelled as not the training run's."""
    import mlflow

    model, _, test = classifier
    mlflow.set_tracking_uri(store.uri)
    with mlflow.start_run() as run:  # a notebook outside git: MLflow records no commit
        mlflow.sklearn.log_model(model, name="model", input_example=test.drop(columns="label")[:2])
    repo = _repo(tmp_path / "elsewhere")
    reg = mlgate.register(f"runs:/{run.info.run_id}/model", name=model_name, code_path=repo)
    assert reg.lineage.git.commit == _git(repo, "rev-parse", "HEAD")
    assert reg.version.tags[Tags.GIT_SOURCE] == "checkout-at-registration"
    code, out, _ = _cli(capsys, "show", f"{model_name}/{reg.number}")
    assert code == 0 and "checkout at registration time, not the training run" in out


def test_register_run_with_wrong_artifact_path_lists_logged_models(
    tracking_uri, model_name, tmp_path, capsys
):
    """A run whose model is not at 'model' is exit 2 listing the names the run did log."""
    run_id = _train_with_plain_mlflow(_repo(tmp_path / "p"))
    code, _, err = _cli(capsys, "register", "--name", model_name, "--run", run_id)
    assert code == EXIT_USAGE
    assert f"run {run_id} has no model at 'model'" in err
    assert "it logged: clf (models:/m-" in err and "--artifact-path" in err
    assert "no artifacts at artifact path" not in err


@pytest.mark.parametrize("name", ["team@churn", "team/churn", "a:b"])
def test_names_that_refs_cannot_express_are_refused(store, classifier, capsys, name, tracking_uri):
    """Model names with '@', '/' or ':' are refused at registration (exit 2 from the CLI)."""
    with pytest.raises(UsageError, match="bad model name"):
        mlgate.register(classifier[0], name=name, store=store)
    code, _, err = _cli(capsys, "register", "--name", name, "--model-uri", "models:/m-0")
    assert code == EXIT_USAGE and "bad model name" in err
    if "@" in name:  # MLflow itself accepts '@' (it refuses '/' and ':')
        assert not store.model_exists(name)


def test_show_of_a_plain_mlflow_version_reads_the_run(tracking_uri, model_name, tmp_path, capsys):
    """`show` of a version registered by plain MLflow shows the run's git, params and metrics."""
    repo = _repo(tmp_path / "p")
    _train_with_plain_mlflow(repo, register_as=model_name)
    info = mlgate.show(f"{model_name}/1")
    assert info.git.commit == _git(repo, "rev-parse", "HEAD")
    assert info.from_run == ("git", "metrics", "params")
    assert info.params == {"C": "1.0"} and "accuracy" in info.metrics
    code, out, _ = _cli(capsys, "show", f"{model_name}/1")
    assert code == 0
    git_line = next(line for line in out.splitlines() if line.startswith("git"))
    assert info.git.commit[:12] in git_line and "read from the MLflow run" in git_line
    assert "none (not in a git repository)" not in out
    code, out, _ = _cli(capsys, "show", f"{model_name}/1", "--json")
    assert json.loads(out)["from_run"] == ["git", "metrics", "params"]


# --------------------------------------------------------------------------- attach
def test_attach_adds_lineage_once_and_guards_the_digest(
    tracking_uri, store, model_name, tmp_path, capsys, classifier
):
    """attach records digest, data, env and git on an existing version; idempotent; --force ledgered."""
    from mlgate.fingerprint import fingerprint_path
    from mlgate.promotion.evidence import artifact_digest

    repo = _repo(tmp_path / "p")
    _train_with_plain_mlflow(repo, register_as=model_name)
    train = tmp_path / "train.csv"
    classifier[1].to_csv(train, index=False)
    code, out, err = _cli(capsys, "attach", f"{model_name}/1", "--train", str(train))
    assert code == 0, err
    assert out.startswith(f"attached lineage to {model_name} version 1")
    v = store.get_version(model_name, "1")
    assert store.latest_version(model_name).version == "1"  # no new version
    assert v.tags[Tags.ARTIFACT_DIGEST] == artifact_digest(store, v)
    assert v.tags[Tags.data("train", "fingerprint")] == fingerprint_path(train).digest
    assert v.tags[Tags.GIT_COMMIT] == _git(repo, "rev-parse", "HEAD")
    assert v.tags[Tags.GIT_SOURCE] == "run"
    assert v.tags[Tags.ENV_PYTHON] == f"{sys.version_info.major}.{sys.version_info.minor}." + str(
        sys.version_info.micro
    )
    assert "scikit-learn" in json.loads(v.tags[Tags.ENV_PACKAGES])
    assert json.loads(v.tags[Tags.METRICS])["accuracy"] > 0.9

    code, out, _ = _cli(capsys, "attach", f"{model_name}/1", "--train", str(train))
    assert code == 0 and "nothing changed" in out
    attaches = [e for e in mlgate.history(model_name) if e.kind == "attach"]
    assert len(attaches) == 1

    store.set_version_tags(model_name, "1", {Tags.ARTIFACT_DIGEST: "blake3:" + "0" * 64})
    code, _, err = _cli(capsys, "attach", f"{model_name}/1")
    assert code == EXIT_USAGE and "refusing to overwrite" in err and "--force" in err
    assert store.get_version(model_name, "1").tags[Tags.ARTIFACT_DIGEST] == "blake3:" + "0" * 64
    done = mlgate.attach(f"{model_name}/1", force=True, reason="digest was hand-edited")
    assert done.version.tags[Tags.ARTIFACT_DIGEST] == v.tags[Tags.ARTIFACT_DIGEST]
    forced = next(e for e in mlgate.history(model_name) if e.kind == "attach")
    assert forced.reason == "digest was hand-edited" and "forced" in forced.message
    assert forced.event_id == done.event.event_id


def test_attach_needs_an_existing_version(tracking_uri, model_name, capsys):
    """attach on a model or version that does not exist is exit 2, and so is a bare model name."""
    code, _, err = _cli(capsys, "attach", f"{model_name}/1")
    assert code == EXIT_USAGE and "not found" in err
    code, _, err = _cli(capsys, "attach", model_name)
    assert code == EXIT_USAGE and "MODEL/VERSION" in err


# --------------------------------------------------------------------------- register's inputs
@pytest.mark.parametrize(
    "estimator",
    ["GradientBoostingClassifier", "RandomForestRegressor", "HistGradientBoostingClassifier"],
)
def test_tree_models_register_and_load_out_of_the_box(store, model_name, classifier, estimator):
    """Forests and boosted trees register through mlgate.register with no skops arguments."""
    import numpy as np
    import sklearn.ensemble as ens

    _, train, test = classifier
    x, y = train.drop(columns="label"), train["label"]
    size = {"max_iter": 5} if "Hist" in estimator else {"n_estimators": 5}
    model = getattr(ens, estimator)(random_state=0, **size).fit(x, y)
    reg = mlgate.register(model, name=model_name, input_example=x.head(2), store=store)
    loaded = store.load_pyfunc(f"models:/{model_name}/{reg.number}")
    features = test.drop(columns="label")
    assert np.allclose(np.asarray(loaded.predict(features)), model.predict(features))


@pytest.mark.parametrize(
    ("metrics", "match"),
    [
        ({"accuracy": float("nan")}, "accuracy' is nan"),
        ({"accuracy": "high"}, "its 'accuracy' is str 'high'"),
        ({"": 0.5}, "non-empty name"),
        ({"auc": float("inf")}, "only finite numbers"),
    ],
)
def test_bad_metrics_are_usage_errors(store, model_name, classifier, metrics, match):
    """A NaN, infinite or non-numeric metric, or an empty name, is a UsageError; nothing is written."""
    with pytest.raises(UsageError, match=match):
        mlgate.register(classifier[0], name=model_name, metrics=metrics, store=store)
    assert not store.model_exists(model_name)


def test_unfitted_estimator_is_a_usage_error(store, model_name):
    """An estimator that was never fitted is refused before anything is logged."""
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(UsageError, match="LogisticRegression is not fitted"):
        mlgate.register(LogisticRegression(), name=model_name, store=store)
    assert not store.model_exists(model_name)


def test_attach_on_a_relative_sqlite_store_is_ledgered(workdir, classifier, capsys, monkeypatch):
    """A relative sqlite:/// URI works for writers that create the ledger (attach is recorded)."""
    _forget_tracking_uri(monkeypatch)
    model, train, test = classifier
    mlgate.register(model, name="rel", train_data=train, store=mlgate.Store("sqlite:///rel.db"))
    test.to_csv(workdir / "eval.csv", index=False)
    uri = ["--tracking-uri", "sqlite:///rel.db"]
    code, out, err = _cli(capsys, *uri, "attach", "rel/1", "--eval", "eval.csv", "-m", "backfill")
    assert code == 0, err
    assert "attached lineage to rel version 1" in out
    code, out, err = _cli(capsys, *uri, "history", "rel", "--json")
    events = json.loads(out)
    assert [(e["kind"], e["outcome"], e["reason"]) for e in events] == [
        ("attach", "attached", "backfill"),
        ("register", "registered", ""),
    ]
    assert (workdir / "mlruns").is_dir()


def test_run_metrics_that_are_not_numbers_never_pass_a_gate(
    tracking_uri, store, model_name, classifier, tmp_path, capsys
):
    """A run's inf (stored by MLflow as 1.8e308) or NaN metric is left out; its gate fails closed."""
    import mlflow

    model, _, test = classifier
    mlflow.set_tracking_uri(store.uri)
    with mlflow.start_run() as run:
        mlflow.log_metrics({"r2": float("inf"), "rmse": float("nan"), "accuracy": 0.9})
        mlflow.sklearn.log_model(model, name="model", input_example=test.drop(columns="label")[:2])
    reg = mlgate.register(f"runs:/{run.info.run_id}/model", name=model_name, store=store)
    assert reg.lineage.metrics == {"accuracy": 0.9}
    policy = write_policy(
        tmp_path, '[[default.gates.champion]]\ntype = "metric"\nmetric = "r2"\nmin = 0.5\n'
    )
    decision = mlgate.check(model_name, reg.number, to="champion", policy=policy, store=store)
    assert not decision.passed and "was not logged" in decision.results[0].reason
    capsys.readouterr()  # MLflow printed the run's URL when the run ended
    code, out, _ = _cli(capsys, "show", f"{model_name}/{reg.number}", "--json")
    assert code == 0 and "NaN" not in out and json.loads(out)["metrics"] == {"accuracy": 0.9}


def test_register_never_rewrites_a_metric_the_training_run_logged(
    tracking_uri, store, model_name, tmp_path, capsys
):
    """`register --run RUN --metric rmse=0.5` is refused when the run logged another rmse."""
    run_id = _train_with_plain_mlflow(_repo(tmp_path / "p"))
    logged = store.get_run(run_id).metrics["accuracy"]
    args = ["register", "--name", model_name, "--run", run_id, "--artifact-path", "clf"]
    code, _, err = _cli(capsys, *args, "--metric", "accuracy=0.5")
    assert code == EXIT_USAGE and "will not overwrite the training run's record" in err
    assert store.get_run(run_id).metrics["accuracy"] == logged
    assert not store.model_exists(model_name)
    code, _, err = _cli(capsys, *args, "--metric", f"accuracy={logged!r}", "--metric", "f1=0.8")
    assert code == 0, err
    assert store.get_run(run_id).metrics == {"accuracy": logged, "f1": 0.8}


def test_a_file_store_path_that_does_not_exist_is_not_created(workdir, monkeypatch, capsys):
    """A typo'd legacy file-store path is "no tracking store", not a new empty store."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    for uri in ("./newmlruns", (workdir / "other").as_uri()):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        code, _, err = _cli(capsys, "status", "reg")
        assert code == EXIT_USAGE and "no tracking store at" in err
    assert list(workdir.iterdir()) == []


def test_a_policy_for_another_model_says_so(store, model_name, make_version, tmp_path, capsys):
    """A policy whose only section names another model (a typo) says which section is missing."""
    v = make_version()
    policy = write_policy(tmp_path, "[models.churn-typo.gates]\nchampion = []\n")
    code, _, err = _cli(
        capsys, "check", f"{model_name}/{v}", "--to", "champion", "--policy", str(policy)
    )
    assert code == EXIT_USAGE
    assert f"[models.churn-typo] but no [models.{model_name}] and no [default]" in err


def test_a_settled_ledger_event_is_not_named_pending(store, model_name, make_version, tmp_path):
    """The MLflow run that stores an event is renamed when the event settles (UI shows 'moved')."""
    v = make_version()
    policy = write_policy(tmp_path, "[default.gates]\nchampion = []\n")
    event = mlgate.promote(model_name, v, to="champion", policy=policy, store=store)
    name = store.get_run(event.record_id).tags["mlflow.runName"]
    assert name == f"promote moved {model_name}@champion -> {v}"
