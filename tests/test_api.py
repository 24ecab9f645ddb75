"""`mlgate.api` from Python, against the real tracking server: what the CLI does, a notebook can."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest
import requests
import yaml

import mlgate
from mlgate import api
from mlgate.cli import main
from mlgate.deploy.build import build as build_version
from mlgate.errors import DockerError, GateRejected, NotFoundError, UsageError
from mlgate.keys import Tags
from mlgate.promotion import rollout as ro
from mlgate.testing import free_port, tiny_classifier, wait_http

USE_CASES = (
    "register",
    "attach",
    "show",
    "fingerprint",
    "check",
    "promote",
    "rollback",
    "history",
    "status",
    "traffic",
    "rollout",
    "rollout_status",
    "abort_rollout",
    "build",
    "serve",
    "export",
)
#: Parameters that may come before the keyword-only ones (after the first).
POSITIONAL = {"check": {"version"}, "promote": {"version"}, "rollout": {"endpoints"}}
#: ``export TARGET MODEL`` keeps the order of the command and of its callers before the api.
FIRST = {"fingerprint": ("data",), "export": ("target", "model")}
WRITERS = {
    "register",
    "attach",
    "promote",
    "rollback",
    "traffic",
    "rollout",
    "abort_rollout",
    "build",
}


@pytest.fixture
def policy(tmp_path):
    """A policy with no gates (what the moves below need is not what gates judge)."""
    p = tmp_path / "mlgate.toml"
    p.write_text("[default.gates]\nchampion = []\nchallenger = []\n")
    return p


@pytest.fixture(scope="module")
def champion(tracking_server, tmp_path_factory) -> tuple[str, str]:
    """(name, version): one registered version, the champion, shared by the tests that only
    read it (registering takes seconds)."""
    model, train, test = tiny_classifier()
    name = f"api-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLGATE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        store = mlgate.Store(tracking_server.uri)
        reg = mlgate.register(
            model,
            name=name,
            train_data=train,
            eval_data=test,
            input_example=test.drop(columns="label").head(3),
            code_path=tmp_path_factory.mktemp("no-git"),
            store=store,
        )
    store.set_alias(name, "champion", reg.number)
    return name, reg.number


def test_every_use_case_is_exported_from_mlgate():
    """Each use case is one function of mlgate.api, the same object as mlgate.NAME, in __all__."""
    for name in USE_CASES:
        assert getattr(mlgate, name) is getattr(api, name), name
        assert name in mlgate.__all__, name
    assert set(mlgate.__all__) <= set(dir(mlgate))


def test_use_cases_share_one_signature_shape():
    """The model (or what is named) first, the rest keyword-only; store, policy and actor are
    optional keywords, and every use case that writes takes an actor."""
    for name in USE_CASES:
        params = list(inspect.signature(getattr(api, name)).parameters.values())
        first = FIRST.get(name, ("model",))
        assert tuple(p.name for p in params[: len(first)]) == first, name
        for p in params[len(first) :]:
            if p.name in POSITIONAL.get(name, ()):
                continue
            assert p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD), (name, p.name)
        by_name = {p.name: p for p in params}
        for common in ("store", "policy", "actor"):
            if common in by_name:
                assert by_name[common].default is None, (name, common)
        if name != "fingerprint":
            assert "store" in by_name, name
        assert ("actor" in by_name) == (name in WRITERS), name


def test_traffic_status_history_and_actor_from_python(
    tracking_uri, make_version, model_name, policy
):
    """traffic() sets the split every server follows, status() shows it, history() lists the
    event with the actor the caller named; the next call without one is the OS/CI user again."""
    v = make_version()
    mlgate.promote(model_name, v, to="challenger", policy=policy, store=tracking_uri)
    event = mlgate.traffic(
        model_name, weight=10, reason="canary", policy=policy, store=tracking_uri, actor="alice"
    )
    assert event.actor == "alice" and event.reason == "canary" and event.kind == "traffic"
    st = mlgate.status(model_name, policy=policy, store=tracking_uri)
    assert st.traffic == {"mode": "split", "challenger_weight": 10.0}
    (last,) = mlgate.history(model_name, policy=policy, limit=1, store=tracking_uri)
    assert last.event_id == event.event_id and last.actor == "alice"
    again = mlgate.traffic(model_name, weight=0, policy=policy, store=tracking_uri)
    assert again.actor not in ("alice", "")
    with pytest.raises(UsageError, match="actor"):
        mlgate.traffic(model_name, weight=0, policy=policy, store=tracking_uri, actor=" ")


def test_rollout_status_and_abort_from_python(
    tracking_uri, store, make_version, model_name, policy
):
    """rollout_status() reads the registry's rollout state (None before one starts);
    abort_rollout() stops it, sets the challenger's traffic to 0 and returns its events."""
    v = make_version()
    store.set_alias(model_name, "challenger", v)
    assert mlgate.rollout_status(model_name, store=tracking_uri) is None
    running = ro.RolloutState(champion="0", challenger=v, steps=[5.0, 100.0])
    store.set_model_tag(model_name, ro.ROLLOUT_TAG, running.to_json())
    assert mlgate.rollout_status(model_name, store=store).status == "running"
    mlgate.traffic(model_name, weight=5, policy=policy, store=store)
    result = mlgate.abort_rollout(
        model_name, reason="pager", policy=policy, store=store, actor="bob"
    )
    state = result.state
    assert state.status == "aborted" and state.challenger == v
    assert result.events and {e.actor for e in result.events} == {"bob"}
    assert mlgate.rollout_status(model_name, store=store).status == "aborted"
    assert mlgate.status(model_name, store=store).traffic["challenger_weight"] == 0
    assert {e.actor for e in mlgate.history(model_name, limit=2, store=store)} == {"bob"}
    with pytest.raises(UsageError, match="no running rollout"):
        mlgate.abort_rollout(model_name, policy=policy, store=store)


def test_rollout_prints_its_steps_on_stderr_via_the_cli(
    tracking_uri, store, make_version, model_name, policy, capsys
):
    """`mlgate rollout` shows each step on stderr as a bare line (logged on mlgate.rollout);
    with no endpoint answering, the step rolls back: exit 3, traffic back to 0."""
    v = make_version()
    for alias in ("champion", "challenger"):
        store.set_alias(model_name, alias, v)
    capsys.readouterr()
    args = ["rollout", model_name, "-e", "http://127.0.0.1:9", "--steps", "100"]
    args += ["--min-seconds", "0", "--max-seconds", "1", "--poll", "0.2", "--policy", str(policy)]
    assert main(args) == 3
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == [
        f"rollout of {model_name} version {v} over champion {v}: steps [100.0]",
        "step 1/1: challenger at 100%",
    ]
    assert err[-2].startswith("rolled back: ") and err[-1].startswith("mlgate: error: rollout")
    assert mlgate.status(model_name).traffic["challenger_weight"] == 0


def test_build_refuses_bad_arguments_before_any_engine(
    tracking_uri, champion, tmp_path, monkeypatch
):
    """build() says what is wrong with its arguments before contacting Docker; an engine that is
    down is one DockerError naming it (no Docker needed for any of this)."""
    model_name, v = champion
    ref = f"{model_name}/{v}"
    with pytest.raises(UsageError, match="say which version"):
        mlgate.build(model_name)
    with pytest.raises(UsageError, match="no such file"):
        mlgate.build(ref, ca_bundle=tmp_path / "missing.pem")
    with pytest.raises(UsageError, match="--no-download needs --wheelhouse"):
        mlgate.build(ref, offline=True, no_download=True)
    with pytest.raises(UsageError, match="argument 'engine' expects an Engine or None"):
        mlgate.build(ref, engine=object(), docker_host="unix:///nowhere.sock")
    with pytest.raises(UsageError, match="not both"):
        build_version(ref, engine=object(), docker_host="unix:///nowhere.sock")
    with pytest.raises(UsageError, match="bad image repository"):
        mlgate.build(ref, repo="Not A Repository")
    with pytest.raises(NotFoundError):
        mlgate.build(f"{model_name}/99")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(DockerError, match="not reachable"):
        mlgate.build(ref, store=tracking_uri)


def test_build_progress_is_a_bare_stderr_line_unless_quiet(
    tracking_uri, champion, tmp_path, monkeypatch, capsys
):
    """`mlgate build` prints its progress (the mlgate.build logger) on stderr as bare lines, as
    before; --quiet leaves only the error."""
    model_name, v = champion
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    capsys.readouterr()
    assert main(["build", f"{model_name}/{v}"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"building {model_name} version {v} as mlgate:{model_name}-v{v}"
    assert len(err) == 2 and err[1].startswith("mlgate: error: connecting to Docker")
    assert main(["build", f"{model_name}/{v}", "--quiet"]) == 1
    assert capsys.readouterr().err.startswith("mlgate: error: connecting to Docker")


def test_serve_check_and_usage_errors_from_python(store, champion, tmp_path):
    """serve(check=True) loads and verifies what would serve and returns it; contradictory
    arguments are one UsageError, before anything loads."""
    model_name, v = champion
    loaded = mlgate.serve(model_name, check=True, store=store)
    assert loaded is not None
    assert loaded.to_dict() == {"model": model_name, "version": v, "verified": True, "ok": True}
    local = store.download(f"models:/{model_name}/{v}", dst=str(tmp_path / "m"))
    digest = store.get_version(model_name, v).tags[Tags.ARTIFACT_DIGEST]
    manifest = tmp_path / "image.json"
    manifest.write_text(
        json.dumps(
            {"model": model_name, "version": v, "model_dir": local, "artifact_digest": digest}
        )
    )
    assert mlgate.serve(manifest=manifest, check=True).to_dict()["version"] == v
    with pytest.raises(UsageError, match="missing argument MODEL"):
        mlgate.serve()
    with pytest.raises(UsageError, match="do not apply"):
        mlgate.serve(model_name, model_dir=local, pin=v)
    with pytest.raises(UsageError, match="already names"):
        mlgate.serve(manifest=manifest, model_dir=local)
    with pytest.raises(UsageError, match="need --model-dir"):
        mlgate.serve(model_name, expect_digest=digest)


def _serving(code: str, tracking_uri: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    return err


def test_serve_from_python_answers_like_the_cli(tracking_uri, store, champion, classifier):
    """mlgate.serve() in a plain Python process serves the champion and prints nothing; the CLI
    around the same call says where it listens, on stderr, as before."""
    model_name, v = champion
    frame = classifier[2].drop(columns="label").head(4)
    want = store.load_pyfunc(f"models:/{model_name}/{v}").predict(frame)
    body = {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
    port = free_port()
    proc = _serving(
        f"import mlgate; mlgate.serve({model_name!r}, port={port}, poll=0.5)",
        tracking_uri,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", alive=lambda: proc.poll() is None)
        r = requests.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=30)
        assert r.status_code == 200 and r.headers["X-Mlgate-Version"] == v
        assert np.array_equal(np.asarray(r.json()["predictions"]), np.asarray(want))
    finally:
        err = _stop(proc)
    assert "mlgate serving" not in err  # the library logs; it never prints
    port = free_port()
    proc = _serving(
        f"from mlgate.cli import main; main(['serve', {model_name!r}, '-p', '{port}'])",
        tracking_uri,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", alive=lambda: proc.poll() is None)
    finally:
        err = _stop(proc)
    banner = f"mlgate serving {model_name} on http://127.0.0.1:{port} (Ctrl-C to stop)"
    assert banner in err.splitlines(), err


def test_export_from_python_is_what_the_cli_prints(store, champion, capsys):
    """export() with option fields renders the same YAML as `mlgate export` with those options;
    an unknown field is a UsageError naming the known ones."""
    model_name, v = champion
    record = {"image": f"registry.example.com/ml:{model_name}-v{v}", "id": "sha256:" + "1" * 64}
    store.set_version_tags(model_name, v, {Tags.IMAGE: json.dumps(record)})
    result = mlgate.export("k8s", model_name, namespace="ml", replicas=3, store=store)
    kinds = {d["kind"]: d for d in yaml.safe_load_all(result.yaml()) if d}
    assert kinds["Deployment"]["metadata"]["namespace"] == "ml"
    assert kinds["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 3
    capsys.readouterr()
    assert main(["export", "k8s", model_name, "-n", "ml", "--replicas", "3"]) == 0
    assert capsys.readouterr().out == result.yaml()
    with pytest.raises(UsageError, match="known: "):
        mlgate.export("k8s", model_name, namespaces="ml", store=store)


def test_check_and_promote_from_python_take_a_tracking_uri(
    tracking_uri, make_version, model_name, policy
):
    """check() and promote() accept the tracking URI as the store; promote(expected=...) still
    guards the move, and a rejection carries its decision."""
    v = make_version()
    assert mlgate.check(model_name, v, to="champion", policy=policy, store=tracking_uri).passed
    event = mlgate.promote(model_name, v, to="champion", policy=policy, store=tracking_uri)
    assert event.outcome == "moved" and event.to_version == v
    with pytest.raises(mlgate.ConflictError):
        mlgate.promote(
            model_name, v, to="challenger", expected="7", policy=policy, store=tracking_uri
        )
    strict = policy.parent / "strict.toml"
    strict.write_text(
        '[[default.gates.challenger]]\ntype = "metric"\nmetric = "accuracy"\nmin = 2.0\n'
    )
    with pytest.raises(GateRejected) as info:
        mlgate.promote(model_name, v, to="challenger", policy=strict, store=tracking_uri)
    assert info.value.decision is not None and not info.value.decision.passed
