"""The example pipeline run for real: kfp.local's Docker runner, the tools image, a tracking server.

Marked ``docker`` (``make test-docker``). The tools image (``mlgate build --tools-image``) is
built once for the module; the pipeline (``mlruns_example/kfp_pipeline.py run``) and single
components run in kfp's own virtual environment (see ``test_kfp.py``), their containers on the
host network, where the session's tracking server listens on the loopback address. The tracking
URI reaches the containers through the Docker runner's environment, never a parameter.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

import mlgate
from mlgate.deploy.tools import DEFAULT_IMAGE
from test_build import BASE, engine, module_env  # noqa: F401 - fixtures
from test_kfp import EXAMPLE, kfp_python, run_kfp  # noqa: F401 - fixture

pytestmark = pytest.mark.docker

#: Runs one component with kfp.local (outside a pipeline) and says whether the task failed.
ONE_STEP = """
import json, os, sys
import docker.client
from kfp import local
docker.client.DEFAULT_TIMEOUT_SECONDS = 900  # as kfp_pipeline.py run: vfs is slow to create
from mlgate.kfp import components
image, command, kwargs, root = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
env = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_TRACKING_") and v}
runner = local.DockerRunner(
    environment=env, network_mode="host", user=f"{os.getuid()}:{os.getgid()}"
)
local.init(runner=runner, pipeline_root=root, raise_on_error=True)
try:
    task = getattr(components(image), command)(**kwargs)
except RuntimeError as exc:
    print("STEP-FAILED " + str(exc).splitlines()[0])
else:
    print("STEP-SUCCEEDED " + json.dumps(sorted(task.outputs)))
"""


@pytest.fixture(scope="module")
def tools_image(engine, module_env) -> str:  # noqa: F811
    """`mlgate build --tools-image`, offline, on the Docker tests' base image (built once)."""
    from mlgate.deploy.tools import build_tools_image

    result = build_tools_image(base_image=BASE, offline=True)
    assert result.image == DEFAULT_IMAGE
    info = engine.inspect(result.image)
    assert info.labels["io.mlgate.image.kind"] == "tools"
    assert info.healthcheck in (None, {"Test": ["NONE"]})
    return result.image


def run_example(kfp_python: Path, uri: str, image: str, name: str, root: Path, *extra: str):  # noqa: F811
    """``kfp_pipeline.py run``; returns what it reports (its last line) and its whole log."""
    args = [str(EXAMPLE), "run", "--model-name", name, "--pipeline-root", str(root), *extra]
    out = run_kfp(
        kfp_python,
        [*args, "--network", "host", "--no-raise"],
        env={"MLFLOW_TRACKING_URI": uri, "MLGATE_TOOLS_IMAGE": image},
        cwd=EXAMPLE.parent,
        timeout=1500,
    )
    lines = out.stdout.strip().splitlines()
    assert lines, out.stderr[-3000:]
    return json.loads(lines[-1]), out.stdout + out.stderr


@pytest.fixture(scope="module")
def runs(kfp_python, tools_image, tracking_server, tmp_path_factory) -> dict[str, Any]:  # noqa: F811
    """The example pipeline twice: as it is (passes, promotes), then with altered data."""
    name = f"kfp-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("kfp-root")
    first, log1 = run_example(kfp_python, tracking_server.uri, tools_image, name, root)
    second, log2 = run_example(
        kfp_python, tracking_server.uri, tools_image, name, root, "--altered"
    )
    return {"name": name, "first": first, "second": second, "logs": (log1, log2)}


def outputs_of(run: dict[str, Any], task: str) -> dict[str, str]:
    """A task's files under the local pipeline root (output parameters and artifacts)."""
    base = Path(run["run_dir"]) / task
    return {
        str(p.relative_to(base)): p.read_text(errors="replace")
        for p in base.rglob("*")
        if p.is_file()
    }


def test_pipeline_promotes_to_challenger(runs, tracking_server):
    """train -> register -> check -> promote ran in containers; the challenger alias points at
    the new version and the rejected branch did not run."""
    first = runs["first"]
    assert first["error"] is None, runs["logs"][0][-4000:]
    assert "post-rejection" not in first["tasks"]
    assert {"train", "mlgate-register", "mlgate-check", "mlgate-promote"} <= set(first["tasks"])
    store = mlgate.Store(tracking_server.uri)
    assert store.version_by_alias(runs["name"], "challenger").version == "1"


def test_ledger_names_the_pipeline_run(runs, tracking_server):
    """The promotion's ledger event: moved to version 1, with the pipeline run (its name, run
    id and task) as the actor and run link."""
    events = mlgate.history(
        runs["name"], alias="challenger", store=mlgate.Store(tracking_server.uri)
    )
    moved = [e for e in events if e.kind == "promote" and e.outcome == "moved"]
    assert len(moved) == 1 and moved[0].to_version == "1"
    run_name = Path(runs["first"]["run_dir"]).name
    assert moved[0].actor == f"kfp:{run_name}"
    assert moved[0].ci_run_url is not None
    assert moved[0].ci_run_url.startswith("kfp:run/") and moved[0].ci_run_url.endswith(
        "/mlgate-promote"
    )
    assert moved[0].reason == "passed the gates in the example pipeline"


def test_reports_are_markdown_artifacts(runs):
    """The check's and the promotion's Markdown reports exist as artifacts; the check's
    decision output says passed and its exit code 0."""
    check = outputs_of(runs["first"], "mlgate-check")
    assert check["decision"] == "passed" and check["exit_code"] == "0"
    assert "accuracy" in check["report"] and "|" in check["report"]
    promote = outputs_of(runs["first"], "mlgate-promote")
    assert promote["outcome"] == "moved" and promote["version"] == "1"
    assert promote["report"].strip()


def test_altered_data_takes_the_rejected_branch(runs, tracking_server):
    """With shuffled labels version 2 is registered, the gate rejects it (exit 3 without failing
    the run: fail_on_reject=False), the rejected branch posts the report, and the challenger
    stays at version 1."""
    second = runs["second"]
    assert second["error"] is None, runs["logs"][1][-4000:]
    assert "mlgate-promote" not in second["tasks"]
    assert "post-rejection" in second["tasks"]
    check = outputs_of(second, "mlgate-check")
    assert (check["decision"], check["exit_code"], check["version"]) == ("rejected", "3", "2")
    notice = outputs_of(second, "post-rejection")["notice"]
    assert notice.startswith("## Not promoted") and "accuracy" in notice
    store = mlgate.Store(tracking_server.uri)
    assert store.version_by_alias(runs["name"], "challenger").version == "1"
    assert store.get_version(runs["name"], "2").version == "2"


def one_step(kfp_python, image, command, kwargs, root, env) -> list[str]:  # noqa: F811
    """Run one component in kfp.local; the lines of its log, stripped."""
    out = run_kfp(
        kfp_python,
        ["-c", ONE_STEP, image, command, json.dumps(kwargs), str(root)],
        env=env,
        timeout=600,
    )
    return [line.strip() for line in (out.stdout + out.stderr).splitlines()]


def errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("mlgate: error:")]


@pytest.mark.parametrize("case", ["no tracking config", "image without mlgate", "no such version"])
def test_bad_input_fails_the_task_in_one_line(
    case,
    kfp_python,  # noqa: F811
    tools_image,
    tracking_server,
    runs,
    tmp_path,
):
    """Missing tracking configuration, an image without mlgate, a version that does not exist:
    the task fails, with mlgate's one-line error in its log."""
    env = {"MLFLOW_TRACKING_URI": tracking_server.uri}
    image = tools_image
    kwargs: dict[str, Any] = {
        "model": runs["name"],
        "candidate": "1",
        "to": "challenger",
        "policy": "[default.gates]\nchallenger = []\n",
    }
    if case == "no tracking config":
        env = {}
        expected = "no tracking server configured for this pipeline step"
    elif case == "image without mlgate":
        image = BASE or "python:3.11-slim"
        expected = "this image has no mlgate"
    else:
        kwargs["candidate"] = "999"
        expected = "999"
    clean = {k: "" for k in os.environ if k.startswith("MLFLOW_TRACKING_")}
    lines = one_step(kfp_python, image, "check", kwargs, tmp_path, {**clean, **env})
    said = errors(lines)
    assert len(said) == 1 and expected in said[0], "\n".join(lines[-40:])
    assert any(line.startswith("STEP-FAILED") for line in lines), "\n".join(lines[-40:])
