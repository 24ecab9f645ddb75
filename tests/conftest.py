"""Shared fixtures: one real `mlflow server` per test session, real models, real data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgate.testing import TrackingServer, tiny_classifier


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    """A real MLflow tracking server (SQLite backend, proxied artifacts) for the whole session."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with TrackingServer(root) as server:
        yield server


@pytest.fixture
def tracking_uri(tracking_server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point mlgate (library and CLI) at the session's tracking server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.uri)
    return tracking_server.uri


@pytest.fixture
def store(tracking_uri: str):
    """A Store bound to the session's tracking server."""
    from mlgate import Store

    return Store(tracking_uri)


@pytest.fixture
def model_name() -> str:
    """A registered-model name no other test uses."""
    return f"m-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the fingerprint cache and the embedded store out of the user's home, and run every
    test as on a developer's machine (CI refuses the embedded store; tests that pin that set
    CI themselves)."""
    monkeypatch.setenv("MLGATE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    for name in ("CI", "GITHUB_ACTIONS", "MLGATE_ALLOW_EMBEDDED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES", os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    )


@pytest.fixture(autouse=True)
def _mlflow_global_uris() -> Iterator[None]:
    """Put MLflow's global tracking and registry URIs back after each test: a test that calls
    ``mlflow.set_tracking_uri`` as a user's notebook does (which also writes the environment
    variable) must not redirect the tests after it."""
    from mlflow.tracking._model_registry import utils as registry_state
    from mlflow.tracking._tracking_service import utils as tracking_state

    from mlgate.registry.store import restore_environ

    saved = (tracking_state._tracking_uri, registry_state._registry_uri)
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    yield
    tracking_state._tracking_uri, registry_state._registry_uri = saved
    restore_environ(saved_env)


@pytest.fixture(scope="session")
def classifier():
    """A fitted LogisticRegression with its train/test frames (label column ``label``)."""
    return tiny_classifier()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from an empty directory (so no policy file or mlflow.db is inherited)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def inferred_requirements(tracking_server, classifier, tmp_path_factory) -> list[str]:
    """The pip requirements MLflow infers for the session's sklearn models, inferred once.

    MLflow infers them by importing the model in a subprocess: 9 of a registration's 10 s here.
    :func:`make_version` passes this list as ``pip_requirements`` (what MLflow would write
    anyway, for these models in this environment); tests of registration itself, and every
    CLI run, still infer.
    """
    import mlgate

    model, train, _ = classifier
    store = mlgate.Store(tracking_server.uri)
    with pytest.MonkeyPatch.context() as mp:  # the autouse cache isolation is per test
        mp.setenv("MLGATE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        reg = mlgate.register(
            model,
            name=f"requirements-{uuid.uuid4().hex[:8]}",
            input_example=train.drop(columns="label").head(3),
            code_path=tmp_path_factory.mktemp("no-git"),
            store=store,
        )
    local = Path(store.download(f"models:/{reg.name}/{reg.number}"))
    lines = (local / "requirements.txt").read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


@pytest.fixture
def make_version(store, model_name, classifier, tmp_path_factory, inferred_requirements):
    """Register a version of ``model_name`` (a real sklearn model) through mlgate.register
    (with :func:`inferred_requirements` unless ``log_model_kwargs`` is given)."""
    import mlgate

    _, train, test = classifier
    outside_git = tmp_path_factory.mktemp("no-git")

    def make(
        model=None,
        *,
        name: str | None = None,
        train_data=None,
        eval_data=None,
        metrics=None,
        input_example=None,
        code_path=None,
        log_model_kwargs=None,
        **kwargs,
    ) -> str:
        model = model if model is not None else classifier[0]
        features = train.drop(columns="label")
        reg = mlgate.register(
            model,
            name=name or model_name,
            train_data=train if train_data is None else train_data,
            eval_data=test if eval_data is None else eval_data,
            metrics=metrics,
            input_example=features.head(3) if input_example is None else input_example,
            code_path=code_path or outside_git,
            log_model_kwargs=(
                {"pip_requirements": inferred_requirements}
                if log_model_kwargs is None
                else log_model_kwargs
            ),
            store=store,
            **kwargs,
        )
        return reg.number

    return make


def write_policy(directory: Path, text: str) -> Path:
    """Write an mlgate.toml into ``directory`` and return its path."""
    path = directory / "mlgate.toml"
    path.write_text(text)
    return path
