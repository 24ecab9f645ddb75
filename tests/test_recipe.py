"""What goes into an image (pure), and the parts of `build`/`serve --model-dir` that need no
Docker engine: bad references, an engine that is down, a tampered local model directory."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mlgate.cli import main
from mlgate.deploy import recipe
from mlgate.deploy.wheelhouse import pip_runner
from mlgate.deploy.wheelhouse import resolve as resolve_wheels
from mlgate.errors import EXIT_ERROR, EXIT_REJECTED, EXIT_USAGE, DockerError, UsageError

MODEL_REQS = """mlflow==3.17.2
numpy==2.4.6
# a comment
pandas==3.1.1
scikit-learn==1.9.1 ; python_version >= "3.9"
-r other.txt
--index-url https://user:secret@example.invalid/simple
"""


def test_requirements_keep_the_models_pins_and_add_the_servers():
    text = recipe.merge_requirements(
        MODEL_REQS, {"numpy": "1.0", "blake3": "1.0.8", "Click": "8.3.1"}
    )
    lines = text.splitlines()
    assert "numpy==2.4.6" in lines and "numpy==1.0" not in lines  # the model's pin wins
    assert "mlflow-skinny==3.17.2" in lines and not any(x.startswith("mlflow==") for x in lines)
    assert "blake3==1.0.8" in lines and "Click==8.3.1" in lines
    assert 'scikit-learn==1.9.1 ; python_version >= "3.9"' in lines
    assert not any(x.startswith("-") for x in lines) and "secret" not in text
    assert lines == sorted(lines, key=lambda x: recipe.normalize_name(re.split("[=<>; ]", x)[0]))
    full = recipe.merge_requirements(MODEL_REQS, {}, full_mlflow=True)
    assert "mlflow==3.17.2" in full.splitlines()
    # Same inputs, same bytes: the requirements layer is cached across model versions.
    assert recipe.merge_requirements(MODEL_REQS, {"blake3": "1"}) == recipe.merge_requirements(
        MODEL_REQS, {"blake3": "1"}
    )


def test_python_version_comes_from_the_model():
    assert recipe.python_minor("python: 3.11.7\nbuild_dependencies: []\n") == "3.11"
    assert recipe.python_minor(None, "3.12.1") == "3.12"
    with pytest.raises(UsageError, match="--python-version"):
        recipe.python_minor(None, None)
    assert recipe.default_base_image("3.11") == "python:3.11-slim"


def test_tags_and_repositories():
    assert recipe.image_tag("{model}-v{version}", "churn model/eu", "3") == "churn-model-eu-v3"
    assert recipe.image_tag("v{version}", "m", "12") == "v12"
    with pytest.raises(UsageError, match="template"):
        recipe.image_tag("{nope}", "m", "1")
    for good in ["mlgate", "registry.example.com:5000/team/models", "a_b/c-d"]:
        assert recipe.check_repository(good) == good
    for bad in ["Upper", "has space", "trailing/", ""]:
        with pytest.raises(UsageError, match="repository"):
            recipe.check_repository(bad)


def test_wheel_platforms():
    tags = recipe.wheel_platforms("linux/arm64")
    assert "manylinux2014_aarch64" in tags and "manylinux_2_36_aarch64" in tags
    assert "manylinux1_x86_64" in recipe.wheel_platforms(None)
    with pytest.raises(UsageError, match="platform"):
        recipe.wheel_platforms("windows/amd64")


def _runtime(**kw) -> recipe.Runtime:
    base = dict(base_image="python:3.11-slim", python="3.11", offline=True)
    base.update(kw)
    return recipe.Runtime(**base)  # type: ignore[arg-type]


def test_runtime_dockerfile_orders_layers_from_stable_to_changing():
    text = _runtime().dockerfile()
    steps = [line for line in text.splitlines() if re.match(r"^[A-Z]+ ", line)]
    order = [s.split()[0] + " " + s.split()[1] for s in steps]
    index = {k: i for i, k in enumerate(order)}
    venv = next(i for i, s in enumerate(steps) if s.startswith("RUN python3 -c"))
    pip = next(i for i, s in enumerate(steps) if "pip install" in s)
    assert venv < index["COPY requirements.txt"] < pip  # Python environment, then requirements
    assert "--no-index" in steps[pip] and "--only-binary=:all:" in steps[pip]
    final = order.index("FROM python:3.11-slim", 1)
    tail = order[final:]
    assert tail.index("COPY --from=env") < tail.index("COPY mlgate")
    assert sum(1 for s in steps if s.startswith("EXPOSE")) == 1
    user = next(s for s in steps if s.startswith("USER"))
    assert user.split()[1] == f"{recipe.UID}:{recipe.UID}" and recipe.UID != 0
    assert any(s.startswith("HEALTHCHECK") for s in steps)
    assert steps[-1] == f"CMD {json.dumps(recipe.SERVE_CMD)}"
    # Nothing about a model or a version: every version with these requirements shares it.
    assert recipe.MODEL_DIR not in text and recipe.MANIFEST not in text.split("CMD")[0]


def test_model_layer_is_one_commit_with_cmd_and_labels():
    layer = recipe.ModelLayer(
        model="churn",
        version="7",
        digest="blake3:abc",
        labels={"io.mlgate.model.version": "7", "b": 'quo"te'},
    )
    changes = layer.changes()
    assert changes[0] == f"CMD {json.dumps(recipe.SERVE_CMD)}"
    assert changes[1] == 'LABEL b="quo\\"te" io.mlgate.model.version="7"'
    assert layer.check_cmd() == [*recipe.SERVE_CMD, "--check"]
    assert layer.manifest("r")["model_dir"] == recipe.MODEL_DIR


def test_online_build_uses_the_ca_bundle_only_in_the_build_stage():
    text = _runtime(offline=False, ca_bundle=True).dockerfile()
    final = text.index("\nFROM python:3.11-slim\n")
    assert "--cert" in text[:final] and "ca-bundle" not in text[final:]
    assert "--no-index" not in text and "wheels" not in text


def test_labels_come_from_the_lineage_tags():
    tags = {
        "mlgate.git.commit": "abc123",
        "mlgate.git.dirty": "false",
        "mlgate.artifact.digest": "blake3:d",
        "mlgate.data.train.fingerprint": "blake3:t",
        "mlgate.data.holdout.fingerprint": "blake3:h",
        "mlgate.data.train.columns": "9",
    }
    labels = recipe.labels(
        model="m",
        version="2",
        run_id="r1",
        tags=tags,
        mlgate_version="0.1",
        base_image="b",
        created="2026-01-01T00:00:00Z",
    )
    assert labels["io.mlgate.git.commit"] == labels["org.opencontainers.image.revision"] == "abc123"
    assert labels["io.mlgate.data.holdout.fingerprint"] == "blake3:h"
    assert "io.mlgate.data.train.columns" not in labels
    assert labels["io.mlgate.run_id"] == "r1" and labels["io.mlgate.version"] == "0.1"


def test_manifest_round_trip_and_errors(tmp_path):
    r = recipe.ModelLayer(model="churn", version="7", digest="blake3:abc")
    path = tmp_path / "image.json"
    path.write_text(json.dumps(r.manifest("run1")))
    assert recipe.read_manifest(str(path))["artifact_digest"] == "blake3:abc"
    for text, words in [
        ("{", "not a JSON"),
        ("[]", "JSON object"),
        ('{"model": "m", "version": 1, "model_dir": "/x"}', "version"),
    ]:
        path.write_text(text)
        with pytest.raises(UsageError, match=words):
            recipe.read_manifest(str(path))
    with pytest.raises(UsageError, match="no such file"):
        recipe.read_manifest(str(tmp_path / "missing.json"))


def test_an_empty_wheelhouse_with_downloads_off_fails_clearly(tmp_path):
    (tmp_path / "wh").mkdir()
    with pytest.raises(DockerError, match="wheelhouse lacks"):
        resolve_wheels(
            "blake3==1.0.8\n", python="3.11", wheelhouse=tmp_path / "wh", allow_download=False
        )


def _wheel(directory: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel, written by hand (no network, no build backend)."""
    path = directory / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: mlgate-tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as whl:
        for arc, text in files.items():
            whl.writestr(arc, text)
        whl.writestr(f"{info}/RECORD", "".join(f"{arc},,\n" for arc in [*files, f"{info}/RECORD"]))
    return path


def test_the_wheelhouse_runs_pip_through_the_runner_it_is_given(tmp_path):
    """resolve() runs pip with the runner passed in (here the default one, recording each
    command): from the user's wheelhouse alone when downloads are off; not again once cached."""
    wheelhouse = tmp_path / "wh"
    wheelhouse.mkdir()
    wheel = _wheel(wheelhouse, "mlgate_tiny_dist", "1.0")
    commands: list[list[str]] = []

    def recording(cmd):
        commands.append(list(cmd))
        return pip_runner(cmd)

    want = "mlgate-tiny-dist==1.0\n"
    got = resolve_wheels(
        want, python="3.11", wheelhouse=wheelhouse, allow_download=False, runner=recording
    )
    assert [p.name for p in got.glob("*.whl")] == [wheel.name]
    (cmd,) = commands
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-index" in cmd
    again = resolve_wheels(
        want, python="3.11", wheelhouse=wheelhouse, allow_download=False, runner=recording
    )
    assert again == got and len(commands) == 1


def test_what_the_runner_says_names_the_failure_redacted(tmp_path):
    """A runner's failing exit status is a DockerError quoting its last ERROR line, with any
    credentials in it hidden."""
    (tmp_path / "wh").mkdir()

    def refusing(cmd):
        return 1, "Looking in https://user:secret@mirror.invalid/simple\nERROR: no wheel for x"

    with pytest.raises(DockerError, match="no wheel for x"):
        resolve_wheels("x==1\n", python="3.11", wheelhouse=tmp_path / "wh", runner=refusing)

    def leaking(cmd):
        return 1, "ERROR: cannot reach https://user:secret@mirror.invalid/simple"

    with pytest.raises(DockerError) as info:
        resolve_wheels("y==1\n", python="3.11", wheelhouse=tmp_path / "wh", runner=leaking)
    assert "secret" not in str(info.value) and "***@" in str(info.value)


def test_build_needs_a_version_and_a_reachable_engine(
    tracking_uri, make_version, model_name, tmp_path, capsys, monkeypatch
):
    """A bare name is a usage error; an engine that is down is one line, exit 1."""
    v = make_version()
    assert main(["build", model_name, "--quiet"]) == EXIT_USAGE
    assert "say which version" in capsys.readouterr().err
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    code = main(["build", f"{model_name}/{v}", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_ERROR and "not reachable" in err and "\n" not in err, err
    assert main(["build", f"{model_name}/{v}", "--no-download"]) == EXIT_USAGE


def test_serve_model_dir_checks_the_digest_before_serving(
    store, make_version, model_name, classifier, tmp_path, capsys
):
    """What the image runs, run here: --check loads and verifies; a tampered directory is refused
    with exit 3 and nothing is served."""
    from mlgate.keys import Tags
    from mlgate.serving.server import Follower, ServeConfig

    v = make_version()
    digest = store.get_version(model_name, v).tags[Tags.ARTIFACT_DIGEST]
    local = Path(store.download(f"models:/{model_name}/{v}", dst=str(tmp_path / "m")))
    manifest = tmp_path / "image.json"
    manifest.write_text(
        json.dumps(
            {"model": model_name, "version": v, "model_dir": str(local), "artifact_digest": digest}
        )
    )
    capsys.readouterr()  # what registering printed
    assert main(["serve", "--manifest", str(manifest), "--check"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"model": model_name, "version": v, "verified": True, "ok": True}

    follower = Follower(
        ServeConfig(model=model_name, model_dir=str(local), pin=v, expect_digest=digest)
    )
    runtime = follower.load_now()
    frame = classifier[2].drop(columns="label").head(5)
    want = store.load_pyfunc(f"models:/{model_name}/{v}").predict(frame)
    assert np.array_equal(np.asarray(runtime.model.predict(frame)), np.asarray(want))
    follower.stop()

    blob = next(local.glob("model.*"))
    blob.write_bytes(blob.read_bytes() + b"\0")
    assert main(["serve", "--manifest", str(manifest), "--check"]) == EXIT_REJECTED
    err = capsys.readouterr().err
    assert digest in err and "refusing" in err
    assert main(["serve", "--manifest", str(tmp_path / "nope.json")]) == EXIT_USAGE
    assert main(["serve"]) == EXIT_USAGE
    assert main(["serve", model_name, "--model-version", "3"]) == EXIT_USAGE
