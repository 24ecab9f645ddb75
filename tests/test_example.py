"""The places users meet mlgate: the example project, its notebook, CI workflows, the action."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "mlruns_example"


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    """A copy of mlruns_example (without any local store or data) to run in."""
    dst = tmp_path / "repo" / "mlruns_example"
    shutil.copytree(
        EXAMPLE, dst, ignore=shutil.ignore_patterns("mlflow.db", "mlruns", "data", "__pycache__")
    )
    return dst


def test_workflows_and_action_validate_against_github_schemas():
    """Every workflow and the composite action validate against GitHub's schemas (offline)."""
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    for schema, files in (("vendor.github-workflows", workflows),
                          ("vendor.github-actions", [str(ROOT / ".github/actions/mlgate/action.yml")])):  # fmt: skip
        out = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *files],
                             capture_output=True, text=True)  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr


def test_workflow_hygiene():
    """Workflows start with no permissions, pin action versions, and serialise promotions."""
    for path in (ROOT / ".github" / "workflows").glob("*.yml"):
        wf = yaml.safe_load(path.read_text())
        assert wf["permissions"] == {}, path.name
        for job in wf["jobs"].values():
            for step in job.get("steps", []):
                uses = step.get("uses", "")
                if uses and not uses.startswith("./"):
                    assert re.search(r"@v\d+\.\d+\.\d+$", uses), uses
    promote = yaml.safe_load((ROOT / ".github/workflows/promote.yml").read_text())
    assert promote["concurrency"]["cancel-in-progress"] is False


def runner_env(**extra: str) -> dict[str, str]:
    """The environment a runner step sees: this interpreter's bin first (pip install puts
    `python` and `mlgate` there on a real runner)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, **extra}


EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def _evaluate(text: str, context: dict[str, dict[str, str]]) -> str:
    def sub(m: re.Match[str]) -> str:
        parts = m.group(1).split(".")
        if parts[0] == "steps":
            return context["steps"].get(f"{parts[1]}.{parts[3]}", "")
        return context.get(parts[0], {}).get(parts[1], "")

    return EXPR.sub(sub, text)


def _outputs(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line:
            key, delim = line.split("<<", 1)
            j = lines.index(delim, i + 1)
            out[key] = "\n".join(lines[i + 1 : j])
            i = j + 1
            continue
        key, _, value = line.partition("=")
        out[key] = value
        i += 1
    return out


def run_job(job: str, repo: Path, tracking_uri: str, tmp: Path) -> tuple[dict[str, str], str]:
    """Run a promote.yml job's `run:` steps in order, the way the runner would."""
    wf = yaml.safe_load((ROOT / ".github/workflows/promote.yml").read_text())
    secrets = {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_TRACKING_USERNAME": "",
        "MLFLOW_TRACKING_PASSWORD": "",
    }
    context: dict[str, dict[str, str]] = {"secrets": secrets, "steps": {}}
    summary = tmp / f"{job}-summary.md"
    base_env = runner_env(GITHUB_ACTOR="octocat", GITHUB_STEP_SUMMARY=str(summary),
                          GITHUB_REPOSITORY="acme/models", GITHUB_RUN_ID="42", CI="true")  # fmt: skip
    base_env.update({k: _evaluate(str(v), context) for k, v in wf["env"].items()})
    for step in wf["jobs"][job]["steps"]:
        if "run" not in step or step.get("id") == "install":
            continue  # `uses:` steps belong to GitHub; mlgate is already installed here
        output_file = tmp / f"{job}-{step['id']}.out"
        env = {**base_env, "GITHUB_OUTPUT": str(output_file)}
        env.update({k: _evaluate(str(v), context) for k, v in step.get("env", {}).items()})
        cwd = repo / step.get("working-directory", ".")
        out = subprocess.run(
            ["bash", "-e", "-c", step["run"]], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, (step["name"], out.stdout[-2000:], out.stderr[-2000:])
        for key, value in _outputs(output_file).items():
            context["steps"][f"{step['id']}.{key}"] = value
    return context["steps"], summary.read_text() if summary.exists() else ""


def test_promote_workflow_steps_run_here(example_copy, tracking_uri, store, tmp_path):
    """The pull-request job gates a candidate; the push job promotes it to challenger."""
    repo = example_copy.parent
    (repo / "requirements").mkdir()
    steps, summary = run_job("check", repo, tracking_uri, tmp_path)
    version = steps["register.version"]
    assert steps["gate.decision"] == "passed" and steps["gate.version"] == version
    assert "✅ mlgate: `example-classifier`" in summary and "| gate |" in summary
    assert "metric:accuracy" in steps["gate.report"]
    steps, summary = run_job("challenger", repo, tracking_uri, tmp_path)
    assert steps["promote.outcome"] == "moved"
    assert (
        store.version_by_alias("example-classifier", "challenger").version
        == steps["register.version"]
    )
    import mlgate

    event = mlgate.history("example-classifier", store=store)[0]
    assert (
        event.actor == "octocat"
        and event.ci_run_url == "https://github.com/acme/models/actions/runs/42"
    )


def test_composite_action_run_step(tracking_uri, tmp_path, store, make_version, model_name):
    """The action's run step passes the reason, and reports mlgate's exit code as an output."""
    action = yaml.safe_load((ROOT / ".github/actions/mlgate/action.yml").read_text())
    [run_step] = [s for s in action["runs"]["steps"] if s.get("id") == "run"]
    (tmp_path / "mlgate.toml").write_text("[default.gates]\nchampion = []\n")
    version = make_version()
    out_file = tmp_path / "out"
    env = runner_env(MLFLOW_TRACKING_URI=tracking_uri, GITHUB_OUTPUT=str(out_file), COMMAND="promote",
                     ARGS=f"{model_name} --version {version} --to champion", REASON="release 7")  # fmt: skip
    done = subprocess.run(
        ["bash", "-c", run_step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    outputs = _outputs(out_file)
    assert outputs["exit-code"] == "0" and outputs["outcome"] == "moved"
    import mlgate

    assert mlgate.history(model_name, store=store)[0].reason == "release 7"
    env["ARGS"] = f"{model_name} --version 999 --to champion"
    failed = subprocess.run(["bash", "-c", run_step["run"]], cwd=tmp_path, env={**env, "GITHUB_OUTPUT": str(tmp_path / "o2")},
                            capture_output=True, text=True)  # fmt: skip
    assert failed.returncode == 2 and _outputs(tmp_path / "o2")["exit-code"] == "2"


def test_notebook_runs_end_to_end(example_copy, tmp_path, monkeypatch):
    """The example notebook executes cell by cell against a throwaway embedded store."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLGATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    nb = nbformat.read(example_copy / "notebook.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(example_copy)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "PASSED" in outputs and "promote moved" in outputs
    assert (tmp_path / "home" / "mlflow.db").is_file()


@pytest.mark.slow
def test_demo_tells_the_whole_story(example_copy):
    """`make demo`'s script runs every step on a fresh embedded store and leaves no process behind."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["CI"] = "true"  # as in CI, where only the demo's explicit opt-in allows the embedded store
    env["DOCKER_HOST"] = f"unix://{example_copy}/no-docker.sock"  # the build step: see test_build
    out = subprocess.run([sys.executable, "demo.py"], cwd=example_copy, env=env, capture_output=True, text=True,
                         timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "rollout completed: version 2 is now champion" in text
    assert "REJECTED" in text and "[exit 3]" in text and "differs from data/train.csv" in text
    assert "rollback moved: example-classifier@champion 2 -> 1" in text
    assert "(server stopped)" in text
    assert "(skipping `mlgate build example-classifier@challenger`" in text
    leftover = subprocess.run(
        ["pgrep", "-f", "mlgate serve example-classifier --port"], capture_output=True, text=True
    )
    assert leftover.stdout.strip() == ""
