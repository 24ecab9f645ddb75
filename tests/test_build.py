"""`mlgate build` on a real Docker engine: real images of real sklearn models, run and scored.

Every test here is marked ``docker`` (``make test-docker`` runs them alone; ``.ci/run`` starts an
engine for them with ``scripts/docker-engine.sh``). They skip, saying why, only where no engine
answers. Builds are offline (wheels downloaded on the host) so they need no network inside the
engine; ``MLGATE_BASE_IMAGE`` names a local base image where no registry can be pulled from
(default: ``python:X.Y-slim``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

import mlgate
from mlgate.cli import main
from mlgate.deploy.build import build
from mlgate.errors import (
    EXIT_ERROR,
    EXIT_REJECTED,
    EXIT_USAGE,
    DockerError,
    MlgateError,
    TrackingServerError,
)
from mlgate.keys import Tags
from mlgate.testing import TrackingServer, free_port, scoring_bodies, tiny_classifier, wait_http

pytestmark = pytest.mark.docker

BASE = os.environ.get("MLGATE_BASE_IMAGE") or None
REPO = "mlgate-test"


@pytest.fixture(scope="module")
def engine():
    from mlgate.deploy.engine import Engine

    try:
        return Engine()
    except MlgateError as exc:
        if os.environ.get("MLGATE_REQUIRE_DOCKER"):  # CI: an engine was promised
            pytest.fail(f"MLGATE_REQUIRE_DOCKER is set but no Docker engine answers: {exc}")
        pytest.skip(f"no Docker engine reachable ({exc}); run `make test-docker`")


@pytest.fixture(scope="module")
def module_env(tmp_path_factory) -> Iterator[None]:
    """The same isolated cache as the function-level fixture, for module-scoped builds."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLGATE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


@contextlib.contextmanager
def on_log(name: str, hook: Callable[[str], None]) -> Iterator[None]:
    """Call ``hook`` with each message logged at INFO or above on logger ``name`` (the progress
    `mlgate build` prints on stderr comes from the ``mlgate.build`` logger)."""

    class Hook(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            hook(record.getMessage())

    logger, handler = logging.getLogger(name), Hook()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def image_record(store, name: str, version: str) -> dict[str, Any] | None:
    """What `mlgate show` reports of the version's image (the mlgate.image tag)."""
    from mlgate.versioning.registration import show

    return show(f"{name}/{version}", store=store).image


def _register(store, name: str, model, train, test, outside_git: Path) -> str:
    reg = mlgate.register(
        model,
        name=name,
        train_data=train,
        eval_data=test,
        metrics={"accuracy": 0.9},
        input_example=test.drop(columns="label").head(3),
        code_path=outside_git,
        store=store,
    )
    return reg.number


@pytest.fixture(scope="module")
def built(engine, module_env, tracking_server, tmp_path_factory) -> dict[str, Any]:
    """v1 built (with the test's own engine) through an alias that moves to v2 while the build
    runs; then v2 built (CLI).

    Shared by the tests below because an image build takes a minute on a vfs engine.
    """
    store = mlgate.Store(tracking_server.uri)
    name = f"img-{uuid.uuid4().hex[:8]}"
    model, train, test = tiny_classifier()
    outside = tmp_path_factory.mktemp("no-git")
    v1 = _register(store, name, model, train, test, outside)
    m2, _, _ = tiny_classifier(c=0.01)
    v2 = _register(store, name, m2, train, test, outside)
    store.set_alias(name, "champion", v1)

    moved: list[str] = []

    def move_alias_once(message: str) -> None:
        if not moved:  # the alias moves after the build started: the image must not follow it
            store.set_alias(name, "champion", v2)
            moved.append(message)

    with on_log("mlgate.build", move_alias_once):
        first = build(
            f"{name}@champion",
            store=store,
            repository=REPO,
            base_image=BASE,
            offline=True,
            engine=engine,
        )
    engine.client.ping()  # the engine it was given is left open
    argv = [
        "--tracking-uri",
        tracking_server.uri,
        "build",
        f"{name}/{v2}",
        "--repo",
        REPO,
        "--offline",
        "--json",
        "--quiet",
    ]
    if BASE:
        argv += ["--base-image", BASE]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    assert code == 0, out.getvalue()
    second = json.loads(out.getvalue())
    return {
        "store": store,
        "name": name,
        "v1": v1,
        "v2": v2,
        "first": first,
        "second": second,
        "test": test,
        "moved": moved,
    }


class Container:
    """A container of an image, on the host network at a free port (works on bridge-less engines)."""

    def __init__(
        self,
        engine,
        image: str,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.c = engine.client.containers.run(
            image,
            command=command,
            detach=True,
            network_mode="host",
            environment={"MLGATE_PORT": str(self.port), **(env or {})},
        )

    def alive(self) -> bool:
        self.c.reload()
        return self.c.status in ("created", "running")

    def logs(self) -> str:
        return self.c.logs().decode("utf-8", "replace")

    def close(self) -> None:
        self.c.remove(force=True)


@pytest.fixture
def served_v1(engine, built) -> Iterator[Container]:
    box = Container(engine, built["first"].image)
    try:
        wait_http(f"{box.url}/ping", timeout=120, alive=box.alive)
        yield box
    finally:
        box.close()


def test_alias_resolved_once_and_image_serves_every_format_like_pyfunc(built, served_v1):
    """The alias moved to v2 mid-build, yet the image is v1; each input format scores exactly as
    in-process pyfunc does; a bad payload gets a 4xx JSON error and the server stays up."""
    first, name, v1 = built["first"], built["name"], built["v1"]
    assert built["moved"], "the progress hook never ran"
    assert first.version == v1 and first.image == f"{REPO}:{name}-v{v1}"
    assert first.verified and first.checked
    frame = built["test"].drop(columns="label").head(9)
    want = np.asarray(built["store"].load_pyfunc(f"models:/{name}/{v1}").predict(frame))
    for fmt, (ctype, body) in scoring_bodies(frame).items():
        r = requests.post(
            f"{served_v1.url}/invocations", data=body, headers={"Content-Type": ctype}, timeout=30
        )
        assert r.status_code == 200, (fmt, r.text)
        assert np.array_equal(np.asarray(r.json()["predictions"]), want), fmt
        assert r.headers["X-Mlgate-Version"] == v1
    for body, ctype in [
        (b"{not json", "application/json"),
        (b'{"dataframe_split": {"columns": ["x"], "data": [[1]]}}', "application/json"),
        (b"a,b\n1,2", "text/plain"),
    ]:
        r = requests.post(
            f"{served_v1.url}/invocations", data=body, headers={"Content-Type": ctype}, timeout=30
        )
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        assert r.json()["message"]
    info = requests.get(f"{served_v1.url}/version", timeout=10).json()
    assert info["model"] == name and info["serving"][0]["version"] == v1
    assert info["serving"][0]["verified"] is True
    assert requests.get(f"{served_v1.url}/health", timeout=10).json()["source"] == "model_dir"
    assert served_v1.alive(), served_v1.logs()


def test_image_is_non_root_labelled_healthy_and_recorded(engine, built, served_v1):
    """Non-root user, one exposed port, a HEALTHCHECK that turns healthy, lineage labels, and
    the image id written back to the model version."""
    first, name, v1, store = built["first"], built["name"], built["v1"], built["store"]
    info = engine.inspect(first.image)
    assert info.user and not info.user.startswith(("0", "root"))
    assert info.exposed_ports == ("8080/tcp",)
    assert info.healthcheck and "mlgate.serving.probe" in " ".join(info.healthcheck["Test"])
    tags = store.get_version(name, v1).tags
    labels = info.labels
    assert labels["io.mlgate.model.name"] == name and labels["io.mlgate.model.version"] == v1
    assert labels["io.mlgate.run_id"] == store.get_version(name, v1).run_id
    assert labels["io.mlgate.artifact.digest"] == tags[Tags.ARTIFACT_DIGEST]
    assert labels["io.mlgate.data.train.fingerprint"] == tags[Tags.data("train", "fingerprint")]
    assert labels["io.mlgate.data.eval.fingerprint"] == tags[Tags.data("eval", "fingerprint")]
    assert labels["io.mlgate.git.commit"] == tags[Tags.GIT_COMMIT]
    assert labels["io.mlgate.version"] == mlgate.__version__
    assert labels["org.opencontainers.image.title"] == name
    rec = image_record(store, name, v1)
    assert rec and rec["image"] == first.image and rec["id"] == first.image_id
    uid = served_v1.c.exec_run(["id", "-u"]).output.decode().strip()
    assert uid != "0", uid
    deadline = time.time() + 90
    while True:
        served_v1.c.reload()
        health = served_v1.c.attrs["State"].get("Health", {}).get("Status")
        if health == "healthy":
            break
        assert health != "unhealthy" and time.time() < deadline, (health, served_v1.logs())
        time.sleep(1)


def test_each_recorded_build_is_a_ledger_event(built):
    """A recorded build returns its BuildEvent (image, id, no push) and appends it to the
    ledger; `mlgate build --json` prints what it printed before (no event in it)."""
    from mlgate.promotion.ledger import BuildEvent

    first, second, name, store = built["first"], built["second"], built["name"], built["store"]
    event = first.event
    assert isinstance(event, BuildEvent) and event.record_id and event.outcome == "built"
    assert (event.version, event.image, event.image_id, event.digest) == (
        built["v1"],
        first.image,
        first.image_id,
        None,
    )
    recorded = {e.image_id: e for e in mlgate.history(name, store=store, kind="build")}
    assert recorded[first.image_id] == event
    assert recorded[second["image_id"]].version == built["v2"] and "event" not in second


def test_model_only_rebuild_reuses_every_requirement_layer(engine, built):
    """v2 has the same requirements as v1: its build reuses the whole runtime, and the two images
    share every layer but the model's."""
    first, second = built["first"], built["second"]
    assert second["version"] == built["v2"] and second["checked"]
    assert second["runtime_reused"] and second["steps"] == 0  # nothing rebuilt but the model
    assert second["runtime_image"] == first.runtime_image
    a = engine.inspect(first.image).layers
    b = engine.inspect(second["image"]).layers
    assert len(a) == len(b)
    assert a[:-1] == b[:-1], "a layer below the model changed between two versions"
    assert a[-1] != b[-1]


def test_tampered_artifacts_are_refused_before_building(
    engine, module_env, built, tracking_server, capsys
):
    """Artifacts changed on the server since registration: exit 3 naming both digests; no image."""
    store, name = built["store"], built["name"]
    model, train, test = tiny_classifier(c=0.3)
    v3 = _register(store, name, model, train, test, Path(tracking_server.root))
    model_id = store.get_version(name, v3).model_id
    [blob] = [
        p for p in (tracking_server.root / "artifacts").rglob("model.*") if model_id in str(p)
    ]
    blob.write_bytes(blob.read_bytes() + b"\0")
    code = main(
        [
            "--tracking-uri",
            tracking_server.uri,
            "build",
            f"{name}/{v3}",
            "--repo",
            REPO,
            "--offline",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_REJECTED, err
    recorded = store.get_version(name, v3).tags[Tags.ARTIFACT_DIGEST]
    assert recorded in err and err.count("blake3:") == 2
    assert not engine.exists(f"{REPO}:{name}-v{v3}")
    assert Tags.IMAGE not in store.get_version(name, v3).tags


def test_failed_build_leaves_no_image_under_the_tag(engine, module_env, built, tmp_path):
    """A base image without Python fails the build: DockerError, the target tag never appears,
    and an existing tag (from an earlier good build) still points at the good image."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("etc/hostname")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"none\n"))
    no_python = "mlgate-test-nopython:latest"
    engine.client.api.import_image_from_data(
        buf.getvalue(), repository="mlgate-test-nopython", tag="latest"
    )
    store, name, v2 = built["store"], built["name"], built["v2"]
    fresh = f"fresh-{uuid.uuid4().hex[:6]}"
    with pytest.raises(DockerError, match="image build failed at step"):
        build(
            f"{name}/{v2}",
            store=store,
            repository=REPO,
            tag=fresh,
            base_image=no_python,
            offline=True,
            record=False,
        )
    assert not engine.exists(f"{REPO}:{fresh}")
    good = engine.inspect(built["second"]["image"]).id
    with pytest.raises(DockerError):
        build(f"{name}/{v2}", store=store, repository=REPO, base_image=no_python, offline=True)
    assert engine.inspect(built["second"]["image"]).id == good
    assert image_record(store, name, v2)["id"] == good


def test_missing_version_alias_and_no_pyfunc_are_one_line_usage_errors(
    engine, module_env, built, tracking_server, tmp_path, capsys
):
    """A version that does not exist, an alias that is not set, a model with no pyfunc flavor:
    one line each, exit 2, and nothing built."""
    import mlflow

    name, uri = built["name"], tracking_server.uri
    for ref, words in [
        (f"{name}/999", "999"),
        (f"{name}@nosuchalias", "not set"),
        (name, "say which version"),
    ]:
        code = main(["--tracking-uri", uri, "build", ref, "--repo", REPO, "--quiet"])
        err = capsys.readouterr().err.strip()
        assert code == EXIT_USAGE and words in err and "\n" not in err, err

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors:\n  custom_thing:\n    data: weights.bin\n")
    (model_dir / "weights.bin").write_bytes(b"\x00\x01")
    client = mlflow.MlflowClient(uri)
    run = client.create_run(client.get_experiment_by_name("Default").experiment_id)
    client.log_artifacts(run.info.run_id, str(model_dir), "model")
    client.set_terminated(run.info.run_id)
    store = mlgate.Store(uri)
    v = mlgate.register(
        f"runs:/{run.info.run_id}/model", name=f"{name}-nopyfunc", store=store, code_path=tmp_path
    ).number
    capsys.readouterr()  # what registering printed
    code = main(["--tracking-uri", uri, "build", f"{name}-nopyfunc/{v}", "--repo", REPO, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_USAGE and "pyfunc" in err and "\n" not in err, err


def test_tracking_server_dies_during_a_build_then_rerun_completes(
    engine, module_env, tmp_path, monkeypatch
):
    """The server is killed while the image builds (as its model layer is added): exit 1 with a
    clear error and no mlgate.image tag; after the server returns, the rerun completes."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = TrackingServer(tmp_path / "srv").start()
    try:
        store = mlgate.Store(server.uri)
        model, train, test = tiny_classifier()
        name = f"fault-{uuid.uuid4().hex[:6]}"
        v = _register(store, name, model, train, test, tmp_path)
        killed = threading.Event()

        def kill_when_building(message: str) -> None:
            if message.startswith("adding the model layer") and not killed.is_set():
                server.stop()
                killed.set()

        with pytest.raises(MlgateError) as info, on_log("mlgate.build", kill_when_building):
            build(f"{name}/{v}", store=store, repository=REPO, base_image=BASE, offline=True)
        assert killed.is_set() and isinstance(info.value, TrackingServerError), info.value
        assert info.value.exit_code == EXIT_ERROR
        server.start()
        assert Tags.IMAGE not in store.get_version(name, v).tags
        result = build(f"{name}/{v}", store=store, repository=REPO, base_image=BASE, offline=True)
        assert result.runtime_reused  # the first attempt built it; only the model layer is new
        assert image_record(store, name, v)["id"] == result.image_id
    finally:
        server.stop()


def test_demo_builds_the_challenger_image_when_an_engine_answers(engine, module_env, tmp_path):
    """`make demo` with an engine: step 2 builds the challenger's image (offline) and the story
    goes on to the end."""
    import shutil
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[1] / "mlruns_example"
    dst = tmp_path / "repo" / "mlruns_example"
    shutil.copytree(
        example, dst, ignore=shutil.ignore_patterns("mlflow.db", "mlruns", "data", "__pycache__")
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = subprocess.run(
        [sys.executable, "demo.py"], cwd=dst, env=env, capture_output=True, text=True, timeout=1200
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "built mlgate:example-classifier-v2" in out.stdout
    assert "rollback moved: example-classifier@champion 2 -> 1" in out.stdout


@pytest.fixture
def registry(tmp_path) -> Iterator[str]:
    """A real Docker registry (Debian's docker-registry, distribution 2.x) on a loopback port."""
    import shutil
    import subprocess

    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("no docker-registry binary (apt-get install docker-registry)")
    port = free_port()
    cfg = tmp_path / "registry.yml"
    cfg.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [binary, "serve", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/", timeout=30, alive=lambda: proc.poll() is None)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_push_records_the_registry_digest(engine, module_env, built, registry):
    """--push sends the image to a real registry; the digest the registry serves is the one
    recorded on the version."""
    store, name, v1 = built["store"], built["name"], built["v1"]
    repo = f"{registry}/mlgate-test"
    result = build(
        f"{name}/{v1}", store=store, repository=repo, base_image=BASE, offline=True, push=True
    )
    assert result.pushed_digest and result.pushed_digest.startswith("sha256:")
    r = requests.get(
        f"http://{registry}/v2/mlgate-test/manifests/{name}-v{v1}",
        timeout=30,
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == result.pushed_digest
    rec = image_record(store, name, v1)
    assert rec["digest"] == result.pushed_digest and rec["image"] == f"{repo}:{name}-v{v1}"


def test_a_base_image_missing_from_the_engine_is_pulled(engine, registry):
    """ensure_image (how a build gets its --base-image) pulls what the engine lacks from a real
    registry, saying so; a reference no registry has is one DockerError naming it."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"mlgate pull test\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    repo = f"{registry}/mlgate-pull-test"
    engine.client.api.import_image_from_data(buf.getvalue(), repository=repo, tag="v1")
    image_id = engine.inspect(f"{repo}:v1").id
    engine.push(repo, "v1")
    engine.remove(f"{repo}:v1")
    assert not engine.exists(f"{repo}:v1")
    said: list[str] = []
    try:
        with on_log("mlgate.build", said.append):
            assert engine.ensure_image(f"{repo}:v1") == image_id
            assert said == [f"pulling {repo}:v1"] and engine.exists(f"{repo}:v1")
            assert engine.ensure_image(f"{repo}:v1") == image_id
        assert len(said) == 1  # present now: no second pull
        with pytest.raises(DockerError, match="could not be pulled"):
            engine.ensure_image(f"{repo}:missing")
    finally:
        with contextlib.suppress(MlgateError):
            engine.remove(f"{repo}:v1")


def test_image_can_follow_the_registry_instead(engine, built, tracking_server):
    """The same image, given `serve MODEL` and a tracking URI, serves the registry's champion
    (not the version baked in) and follows it when the alias moves."""
    store, name, v1, v2 = built["store"], built["name"], built["v1"], built["v2"]
    assert store.version_by_alias(name, "champion").version == v2  # moved during the first build
    box = Container(
        engine,
        built["first"].image,
        ["serve", name, "--poll", "0.5"],
        {"MLFLOW_TRACKING_URI": tracking_server.uri},
    )
    try:
        wait_http(f"{box.url}/ping", timeout=120, alive=box.alive)
        info = requests.get(f"{box.url}/version", timeout=10).json()
        assert [s["version"] for s in info["serving"]] == [v2], info
        store.set_alias(name, "champion", v1)
        deadline = time.time() + 60
        while requests.get(f"{box.url}/version", timeout=10).json()["serving"][0]["version"] != v1:
            assert time.time() < deadline, box.logs()
            time.sleep(0.5)
        health = requests.get(f"{box.url}/health", timeout=10).json()
        assert health["source"] == "registry" and health["registry"]["reachable"] is True
    finally:
        store.set_alias(name, "champion", v2)
        box.close()
