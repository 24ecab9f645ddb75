"""Registration records lineage on real MLflow versions; show reads it back."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import mlgate
from mlgate.errors import NotFoundError, UsageError
from mlgate.fingerprint import fingerprint, fingerprint_model_artifacts
from mlgate.keys import Tags


def _git_repo(path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "config", "user.email", "t@example.com"], check=True)
    subprocess.run(["git", "-C", str(path), "config", "user.name", "t"], check=True)
    (path / "train.py").write_text("print('train')\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "init"], check=True)


def test_register_records_full_lineage(store, model_name, classifier, tmp_path):
    """A registered version carries git, data, environment, artifact digest, params and metrics."""
    model, train, test = classifier
    _git_repo(tmp_path)
    reg = mlgate.register(
        model,
        name=model_name,
        train_data=train,
        eval_data=test,
        target="label",
        params={"C": 1.0},
        metrics={"accuracy": 0.91},
        input_example=train.drop(columns="label").head(3),
        code_path=tmp_path,
        store=store,
    )
    v = store.get_version(model_name, reg.number)
    assert (
        v.tags[Tags.GIT_COMMIT]
        == subprocess.run(
            ["git", "-C", str(tmp_path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    assert v.tags[Tags.GIT_DIRTY] == "false"
    assert v.tags[Tags.data("train", "fingerprint")] == fingerprint(train).digest
    assert v.tags[Tags.data("eval", "fingerprint")] == fingerprint(test).digest
    assert v.tags[Tags.data("train", "rows")] == str(len(train))
    assert v.tags[Tags.ENV_PYTHON]
    assert v.tags[Tags.ENV_REQUIREMENTS].startswith("blake3:")
    assert reg.lineage.metrics == {"accuracy": 0.91}
    assert reg.lineage.params == {"C": "1.0"}
    # The artifact digest is that of the artifacts the registry serves for this version.
    local = store.download(f"models:/{model_name}/{reg.number}")
    assert fingerprint_model_artifacts(local).digest == v.tags[Tags.ARTIFACT_DIGEST]
    # The data sets are visible as MLflow dataset inputs with the truncated fingerprint.
    import mlflow

    run = mlflow.MlflowClient(store.uri).get_run(reg.run_id)
    digests = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert digests["train"] == fingerprint(train).short()
    assert digests["eval"] == fingerprint(test).short()


def test_dirty_tree_and_no_git(store, model_name, classifier, tmp_path):
    """An uncommitted change marks the version dirty; outside a repo the commit is 'none'."""
    model, train, _ = classifier
    _git_repo(tmp_path)
    (tmp_path / "train.py").write_text("print('changed')\n")
    reg = mlgate.register(model, name=model_name, train_data=train, code_path=tmp_path, store=store)
    assert reg.lineage.git.dirty is True
    outside = tmp_path.parent / "not-a-repo"
    outside.mkdir(exist_ok=True)
    reg2 = mlgate.register(model, name=model_name, code_path=outside, store=store)
    assert reg2.lineage.git.commit == "none"
    assert reg2.number == str(int(reg.number) + 1)


def test_register_an_existing_run_with_path_data(store, model_name, classifier, tmp_path):
    """A model logged by the user's own code is registered by URI, with file data fingerprints."""
    import mlflow
    import mlflow.sklearn

    model, train, _ = classifier
    train_csv = tmp_path / "train.csv"
    train.to_csv(train_csv, index=False)
    mlflow.set_tracking_uri(store.uri)
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model")
    reg = mlgate.register(
        f"runs:/{run.info.run_id}/model", name=model_name, train_data=train_csv, store=store
    )
    tags = store.get_version(model_name, reg.number).tags
    assert tags[Tags.data("train", "fingerprint")] == fingerprint(train_csv).digest
    assert tags[Tags.data("train", "source")] == str(train_csv.resolve())
    shown = mlgate.show(f"{model_name}/{reg.number}", store=store)
    assert shown.run_id == run.info.run_id
    assert shown.artifact_digest == tags[Tags.ARTIFACT_DIGEST]


def test_bad_input_is_refused_before_writing(store, model_name, classifier):
    """A missing data path or model name fails before any version is created."""
    model, _, _ = classifier
    with pytest.raises(NotFoundError, match=r"no-such\.csv"):
        mlgate.register(model, name=model_name, train_data="no-such.csv", store=store)
    with pytest.raises(UsageError):
        mlgate.register(model, name="", store=store)
    with pytest.raises(UsageError, match="reserved"):
        mlgate.register(model, name=model_name, tags={"mlgate.x": "1"}, store=store)
    assert not store.model_exists(model_name)


def test_embedded_default_store(workdir, monkeypatch, classifier):
    """With no MLFLOW_TRACKING_URI, mlgate writes a SQLite store in MLGATE_HOME, not mlruns/."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = workdir / "home"
    monkeypatch.setenv("MLGATE_HOME", str(home))
    import mlflow

    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    model, train, _ = classifier
    store = mlgate.Store()
    assert store.uri == f"sqlite:///{home / 'mlflow.db'}"
    reg = mlgate.register(model, name="embedded", train_data=train, store=store)
    assert reg.number == "1"
    assert (home / "mlflow.db").is_file()


def test_mlgate_leaves_the_users_mlflow_globals_as_they_were(
    tracking_server, monkeypatch, classifier, tmp_path
):
    """A notebook's own ``mlflow.set_tracking_uri`` (and the ``$MLFLOW_TRACKING_URI`` it writes)
    survive mlgate's calls on another store, so mlgate's store never leaks into the user's next
    ``mlflow`` call or the next ``Store()``."""
    import mlflow

    model, train, _ = classifier
    mine = f"sqlite:///{tmp_path / 'mine.db'}"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(mine)  # the user's choice, for their own mlflow calls
    server = mlgate.Store(tracking_server.uri)
    name = f"globals-{os.urandom(4).hex()}"
    reg = mlgate.register(model, name=name, train_data=train, store=server)  # log + register
    server.model_info(f"models:/{name}/{reg.number}")
    server.load_pyfunc(f"models:/{name}/{reg.number}")
    assert mlflow.get_tracking_uri() == mine
    assert mlflow.get_registry_uri() == mine
    assert os.environ["MLFLOW_TRACKING_URI"] == mine
    assert mlgate.Store().uri == mine  # "a URI the user set with mlflow.set_tracking_uri"
