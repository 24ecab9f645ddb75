"""The places users meet mlgate: the example project, its notebook, CI workflows, the action."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    for schema, files in (
        ("vendor.github-workflows", workflows),
        ("vendor.github-actions", [str(ROOT / ".github/actions/mlgate/action.yml")]),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *files],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stdout + out.stderr


USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
EMPTINESS = re.compile(r"\$\{\{\s*secrets\.\w+ != ''\s*\}\}")


def test_workflow_hygiene():
    """No permissions by default, SHA-pinned actions, secrets only in server steps, split queues."""
    files = [
        *(ROOT / ".github" / "workflows").glob("*.yml"),
        ROOT / ".github/actions/mlgate/action.yml",
    ]
    for path in files:
        for line in path.read_text().splitlines():
            m = USES.match(line)
            if m and not m.group(1).startswith("./"):
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", m.group(1)), (path.name, line)
                assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", m.group(2)), (path.name, line)
    for path in (ROOT / ".github" / "workflows").glob("*.yml"):
        wf = yaml.safe_load(path.read_text())
        assert wf["permissions"] == {}, path.name
        assert "secrets." not in json.dumps(wf.get("env", {})), (
            f"{path.name}: workflow-wide secrets"
        )
        for name, job in wf["jobs"].items():
            assert "secrets." not in json.dumps(job.get("env", {})), f"{path.name}: {name} job env"
            for step in job.get("steps", []):
                values = [str(v) for v in step.get("env", {}).values()]
                # `${{ secrets.X != '' }}` tells a step whether X is set, never its value.
                given = [v for v in values if "secrets." in v and not EMPTINESS.fullmatch(v)]
                if not given:
                    continue
                uses_server = any(w in step.get("run", "") for w in ("mlgate ", "train.py"))
                assert uses_server or step.get("uses") == "./.github/actions/mlgate", step
    promote = yaml.safe_load((ROOT / ".github/workflows/promote.yml").read_text())
    assert "concurrency" not in promote, (
        "one workflow-wide group lets a pull request displace a promotion"
    )
    groups = {name: job["concurrency"] for name, job in promote["jobs"].items()}
    assert (
        "github.ref" in groups["check"]["group"] and groups["check"]["cancel-in-progress"] is True
    )
    for name in ("challenger", "manual"):
        assert groups[name]["cancel-in-progress"] is False
        assert groups[name]["group"] != groups["check"]["group"]
        assert (
            "github.ref" not in groups[name]["group"]
            and "example-classifier" in groups[name]["group"]
        )


def runner_env(**extra: str) -> dict[str, str]:
    """The environment a runner step sees: this interpreter's bin first (pip install puts
    `python` and `mlgate` there on a real runner)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GITHUB_OUTPUT")}
    return {**env, "PATH": path, "CI": "true", "GITHUB_ACTIONS": "true", **extra}


# ------------------------------------------------------------------ a small Actions evaluator
# Just enough of GitHub's expression language for these files: context references, string
# literals, ==, !=, &&, ||, always(). Anything else fails the test instead of guessing.
EXPR = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
TOKEN = re.compile(r"\s*(&&|\|\||==|!=|'[^']*'|always\(\)|success\(\)|[\w.-]+)")


def _lookup(ref: str, context: dict[str, Any]) -> Any:
    value: Any = context
    for part in ref.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part, "")
    return value


def _evaluate_expr(expr: str, context: dict[str, Any]) -> Any:
    tokens = TOKEN.findall(expr)
    assert "".join(tokens).replace(" ", "") == expr.replace(" ", ""), f"unsupported: {expr}"

    def operand(tok: str) -> Any:
        if tok.startswith("'"):
            return tok[1:-1]
        if tok in ("always()", "success()"):
            return True
        if tok in ("true", "false"):
            return tok == "true"
        return _lookup(tok, context)

    def comparison(i: int) -> tuple[Any, int]:
        left = operand(tokens[i])
        if i + 1 < len(tokens) and tokens[i + 1] in ("==", "!="):
            right = operand(tokens[i + 2])
            same = str(left).lower() == str(right).lower()
            return (same if tokens[i + 1] == "==" else not same), i + 3
        return left, i + 1

    value, i = comparison(0)
    while i < len(tokens):
        op = tokens[i]
        right, i = comparison(i + 1)
        # As GitHub evaluates them: `a && b` is a when a is falsy, else b; `a || b` is a when
        # a is truthy, else b (so `inputs.target || 'k8s'` is a string, not a boolean).
        value = (right if value else value) if op == "&&" else (value if value else right)
    return value


def _evaluate(text: str, context: dict[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        value = _evaluate_expr(m.group(1), context)
        return str(value).lower() if isinstance(value, bool) else str(value)

    return EXPR.sub(sub, text)


def _condition(step: dict[str, Any], context: dict[str, Any]) -> bool:
    cond = str(step.get("if", "success()"))
    cond = EXPR.sub(lambda m: m.group(1), cond)
    return bool(_evaluate_expr(cond, context))


def _outputs(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            key, delim = line.split("<<", 1)
            j = lines.index(delim, i + 1)
            out[key] = "\n".join(lines[i + 1 : j])
            i = j + 1
            continue
        key, _, value = line.partition("=")
        out[key] = value
        i += 1
    return out


ACTION = ROOT / ".github/actions/mlgate/action.yml"


def run_action(
    inputs: dict[str, str],
    env: dict[str, str],
    tmp: Path,
    *,
    action_path: Path = ACTION.parent,
    install: bool = False,
    cwd: Path | None = None,
) -> tuple[int, dict[str, str], str, str]:
    """Run the composite action's `run:` steps the way the runner does: each step with its own
    GITHUB_OUTPUT and step summary, `${{ }}` evaluated from the action's inputs and earlier
    steps. The setup-python step belongs to GitHub; with `install=False` the install step is
    replaced by this test environment's mlgate. Returns (exit code, outputs, summary, stderr)."""
    action = yaml.safe_load((action_path / "action.yml").read_text())
    values = {k: str(v.get("default", "")) for k, v in action["inputs"].items()}
    values.update(inputs)
    runner_temp = tmp / "runner-temp"
    runner_temp.mkdir(parents=True, exist_ok=True)
    context: dict[str, Any] = {
        "inputs": values,
        "steps": {},
        "runner": {"temp": str(runner_temp)},
        "github": {"action_path": str(action_path)},
    }
    summary, stderr, code = "", "", 0
    for n, step in enumerate(action["runs"]["steps"]):
        sid = step.get("id", f"step{n}")
        if not _condition(step, context):
            continue
        if "uses" in step:
            assert "setup-python" in step["uses"], step  # GitHub's part: a Python to build from
            context["steps"][sid] = {"outputs": {"python-path": sys.executable}}
            continue
        if sid == "install" and not install:
            bin_dir = Path(sys.executable).parent
            context["steps"][sid] = {
                "outputs": {"mlgate": str(bin_dir / "mlgate"), "python": sys.executable}
            }
            continue
        out_file, sum_file = tmp / f"action-{sid}.out", tmp / f"action-{sid}.md"
        for f in (out_file, sum_file):
            f.unlink(missing_ok=True)
        step_env = {
            **env,
            "GITHUB_OUTPUT": str(out_file),
            "GITHUB_STEP_SUMMARY": str(sum_file),
            "GITHUB_ACTION_PATH": str(action_path),
            "RUNNER_TEMP": str(runner_temp),
        }
        step_env.update({k: _evaluate(str(v), context) for k, v in step.get("env", {}).items()})
        assert step["shell"] == "bash"
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=cwd or tmp,
            env=step_env,
            capture_output=True,
            text=True,
        )
        context["steps"][sid] = {"outputs": _outputs(out_file)}
        summary += sum_file.read_text() if sum_file.exists() else ""
        stderr += done.stderr
        code = done.returncode
        if code != 0:
            break
    outputs = {}  # an output whose step never set it is absent (GitHub would give "")
    for key, spec in action["outputs"].items():
        sid, _, name = (
            EXPR.fullmatch(spec["value"]).group(1).removeprefix("steps.").partition(".outputs.")
        )
        if name in context["steps"].get(sid, {}).get("outputs", {}):
            outputs[key] = _evaluate(spec["value"], context)
    return code, outputs, summary, stderr


def run_job(
    job: str,
    repo: Path,
    tmp: Path,
    *,
    secrets: dict[str, str],
    inputs: dict[str, str] | None = None,
    workflow: str = "promote.yml",
    env: dict[str, str] | None = None,
) -> tuple[dict[str, Any], str, str | None]:
    """Run a workflow job's steps in order, the way the runner would: `if:` conditions,
    per-step env and `${{ }}` evaluated; checkout and setup-python are GitHub's and the install
    step is this environment's; the local mlgate action runs through `run_action`. ``env``
    overrides the workflow's own `env:` values (e.g. its MODEL). Returns the step outputs, the
    job summary and the name of the step that failed (None: all passed)."""
    wf = yaml.safe_load((ROOT / ".github/workflows" / workflow).read_text())
    event = (
        "workflow_dispatch" if inputs is not None else "pull_request" if job == "check" else "push"
    )
    context: dict[str, Any] = {
        "secrets": secrets,
        "steps": {},
        "inputs": inputs or {},
        "github": {"event_name": event},
    }
    summary = ""
    base_env = runner_env(
        GITHUB_ACTOR="octocat", GITHUB_REPOSITORY="acme/models", GITHUB_RUN_ID="42"
    )
    base_env.update({k: _evaluate(str(v), context) for k, v in wf.get("env", {}).items()})
    base_env.update(env or {})
    context["env"] = base_env
    assert _condition(wf["jobs"][job], context)
    for n, step in enumerate(wf["jobs"][job]["steps"]):
        sid = step.get("id", f"step{n}")
        if not _condition(step, context):
            continue
        env = {
            **base_env,
            **{k: _evaluate(str(v), context) for k, v in step.get("env", {}).items()},
        }
        if step.get("uses") == "./.github/actions/mlgate":
            with_inputs = {k: _evaluate(str(v), context) for k, v in step.get("with", {}).items()}
            code, outputs, text, _ = run_action(with_inputs, env, tmp / sid, cwd=repo)
            summary += text
            context["steps"][sid] = {"outputs": outputs}
            if code:
                return context["steps"], summary, step.get("name", sid)
            continue
        if "uses" in step or sid == "install":
            continue  # checkout and setup-python are GitHub's; mlgate is already installed here
        out_file, sum_file = tmp / f"{job}-{sid}.out", tmp / f"{job}-{sid}.md"
        env.update({"GITHUB_OUTPUT": str(out_file), "GITHUB_STEP_SUMMARY": str(sum_file)})
        cwd = repo / step.get("working-directory", ".")
        out = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
        summary += sum_file.read_text() if sum_file.exists() else ""
        context["steps"][sid] = {"outputs": _outputs(out_file), "stdout": out.stdout + out.stderr}
        if out.returncode != 0:
            return context["steps"], summary, step.get("name", sid)
    return context["steps"], summary, None


def test_promote_workflow_steps_run_here(example_copy, tracking_uri, store, tmp_path):
    """The pull-request job gates a candidate; the push job promotes it to challenger."""
    repo = example_copy.parent
    (repo / "requirements").mkdir()
    secrets = {"MLFLOW_TRACKING_URI": tracking_uri}
    steps, summary, failed = run_job("check", repo, tmp_path, secrets=secrets)
    assert failed is None, steps
    version = steps["register"]["outputs"]["version"]
    gate = steps["gate"]["outputs"]
    assert gate["decision"] == "passed" and gate["version"] == version
    assert "✅ mlgate: `example-classifier`" in summary and "| gate |" in summary
    assert "metric:accuracy" in gate["report"]
    steps, summary, failed = run_job("challenger", repo, tmp_path, secrets=secrets)
    assert failed is None, steps
    assert steps["promote"]["outputs"]["outcome"] == "moved"
    assert (
        store.version_by_alias("example-classifier", "challenger").version
        == steps["register"]["outputs"]["version"]
    )
    import mlgate

    event = mlgate.history("example-classifier", store=store)[0]
    assert (
        event.actor == "octocat"
        and event.ci_run_url == "https://github.com/acme/models/actions/runs/42"
    )


def test_fork_pull_request_is_skipped_not_passed(example_copy, tmp_path):
    """A fork's pull request (empty secret) is 'skipped: no tracking server configured', not passed."""
    repo = example_copy.parent
    steps, summary, failed = run_job("check", repo, tmp_path, secrets={})
    assert failed is None
    assert "skipped: no tracking server configured" in summary
    assert "skipped: no tracking server configured" in steps["server"]["stdout"]
    assert "register" not in steps and "gate" not in steps
    assert not list(repo.rglob("mlflow.db")) and not (repo / "mlruns_example" / "data").exists()


def test_promotions_fail_without_a_tracking_server(example_copy, tmp_path):
    """Push and manual runs without the secret fail naming it, before training or promoting."""
    repo = example_copy.parent
    for job, inputs in (
        ("challenger", None),
        ("manual", {"action": "rollback", "version": "", "reason": "r"}),
    ):
        steps, _, failed = run_job(job, repo, tmp_path, secrets={}, inputs=inputs)
        assert failed is not None and "server" in steps, job
        assert "set the MLFLOW_TRACKING_URI secret" in steps["server"]["stdout"]
        assert list(steps) == ["server"], job


def test_manual_champion_promotion_needs_a_version(example_copy, tracking_uri, tmp_path):
    """promote-champion without a numeric version input stops, naming the input, before the action."""
    repo = example_copy.parent
    for version in ("", "7 --to challenger"):
        inputs = {"action": "promote-champion", "version": version, "reason": "Q3 retrain"}
        steps, _, failed = run_job(
            "manual", repo, tmp_path, secrets={"MLFLOW_TRACKING_URI": tracking_uri}, inputs=inputs
        )
        assert failed is not None and "champion" not in steps
        assert "version input" in steps["inputs"]["stdout"]


def test_manual_champion_promotion_runs_the_action(
    example_copy, tracking_uri, store, tmp_path, make_version, model_name
):
    """promote-champion by hand: the action promotes, keeps the reason's spaces, sets outputs."""
    repo = example_copy.parent
    steps, _, failed = run_job(
        "check", repo, tmp_path, secrets={"MLFLOW_TRACKING_URI": tracking_uri}
    )
    assert failed is None
    version = steps["register"]["outputs"]["version"]
    inputs = {"action": "promote-champion", "version": version, "reason": "Q3 retrain"}
    steps, _, failed = run_job(
        "manual", repo, tmp_path / "m", secrets={"MLFLOW_TRACKING_URI": tracking_uri}, inputs=inputs
    )
    assert failed is None, steps
    out = steps["champion"]["outputs"]
    assert out["exit-code"] == "0" and out["outcome"] in ("moved", "unchanged")
    assert out["decision"] == "passed" and out["version"] == version
    import mlgate

    assert mlgate.history("example-classifier", store=store)[0].reason == "Q3 retrain"


# ------------------------------------------------------------------ the composite action
ACTION_KEYS = ("decision", "outcome", "version", "report", "exit-code")


@pytest.fixture
def champion_policy(tmp_path: Path) -> Path:
    """A policy whose champion gate needs accuracy >= 0.8 (logged)."""
    path = tmp_path / "policy" / "mlgate.toml"
    path.parent.mkdir()
    path.write_text("[[default.gates.champion]]\ntype = 'metric'\nmetric = 'accuracy'\nmin = 0.8\n")
    return path


def test_action_outputs_on_every_exit(
    tracking_uri, tmp_path, store, make_version, model_name, champion_policy
):
    """The action sets every output and the summary on exit 0, 1, 2, 3 and 4."""
    good = make_version(metrics={"accuracy": 0.9})
    bad = make_version(metrics={"accuracy": 0.5})
    env = runner_env(MLFLOW_TRACKING_URI=tracking_uri)
    pol = f"--policy '{champion_policy}'"
    cases = [
        (0, "check", f"{model_name} --version {good} --to champion {pol}", "passed", "none", good),
        (3, "check", f"{model_name} --version {bad} --to champion {pol}", "rejected", "none", bad),
        (
            0,
            "promote",
            f"{model_name} --version {good} --to champion {pol}",
            "passed",
            "moved",
            good,
        ),
        (
            4,
            "promote",
            f"{model_name} --version {good} --to champion --expected 999 {pol}",
            "none",
            "conflict",
            good,
        ),
        (
            3,
            "promote",
            f"{model_name} --version {bad} --to champion {pol}",
            "rejected",
            "rejected",
            bad,
        ),
        (2, "promote", f"{model_name} --version 999 --to champion {pol}", "none", "error", ""),
        (2, "status", "", "none", "error", ""),
        (0, "history", f"{model_name} {pol}", "none", "none", ""),
        (2, "check", f"{model_name} --version '{good}", "none", "error", ""),
    ]
    for n, (code, command, args, decision, outcome, version) in enumerate(cases):
        rc, out, summary, err = run_action(
            {"command": command, "args": args}, env, tmp_path / str(n)
        )
        assert rc == code, (command, args, err)
        assert set(ACTION_KEYS) <= set(out), (args, out)
        assert out["exit-code"] == str(code) and out["decision"] == decision, (args, out)
        assert out["outcome"] == outcome and out["version"] == version, (args, out)
        if code:
            said = "rejected" if code == 3 else f"exit {code}"  # a rejection is the gate report
            assert said in out["report"] and out["report"].strip() in summary, (args, out)
    unexpected = runner_env(
        MLFLOW_TRACKING_URI="http://127.0.0.1:9", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"
    )
    rc, out, summary, _ = run_action(
        {"command": "promote", "args": f"{model_name} --version {good} --to champion {pol}"},
        unexpected,
        tmp_path / "dead",
    )
    assert rc == 1 and out["exit-code"] == "1" and out["outcome"] == "error" and "exit 1" in summary


def test_cli_sets_github_outputs_on_every_exit(
    tracking_uri, tmp_path, monkeypatch, make_version, model_name, champion_policy
):
    """check/promote/rollback set every step output on failures too; other commands set none."""
    from mlgate.cli import main

    version = make_version(metrics={"accuracy": 0.9})
    pol = ["--policy", str(champion_policy)]
    runs = [
        (
            4,
            ["promote", model_name, "-v", version, "--to", "champion", "--expected", "7", *pol],
            {"decision": "none", "outcome": "conflict", "version": version},
        ),
        (
            2,
            ["rollback", model_name, *pol],
            {"decision": "none", "outcome": "error", "version": ""},
        ),
        (
            0,
            ["promote", model_name, "-v", version, "--to", "champion", *pol],
            {"decision": "passed", "outcome": "moved", "version": version},
        ),
        (
            0,
            ["promote", model_name, "-v", version, "--to", "champion", *pol],
            {"decision": "none", "outcome": "unchanged", "version": version},
        ),
    ]
    for n, (code, argv, expected) in enumerate(runs):
        out, summary = tmp_path / f"out{n}", tmp_path / f"summary{n}.md"
        monkeypatch.setenv("GITHUB_OUTPUT", str(out))
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
        assert main(argv) == code
        values = _outputs(out)
        assert {**values, **expected} == values and values["exit-code"] == str(code), (argv, values)
        assert values["report"].strip() and values["report"].strip() in summary.read_text()
        if code:
            assert f"exit {code}" in values["report"], values
    out = tmp_path / "status.out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    assert main(["status", model_name]) == 0
    assert not out.exists()  # another program's outputs in the same step are never overwritten


def test_action_outputs_when_not_permitted(tmp_path, champion_policy):
    """Refused credentials (exit 5) still set every output and the step summary."""
    from mlgate.testing import TrackingServer

    ini = tmp_path / "auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path / 'auth.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    server_env = {
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "k",
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": "Adm1n-pass-2f9c",
    }
    with TrackingServer(
        tmp_path / "server", extra_args=["--app-name", "basic-auth"], env=server_env
    ) as server:
        env = runner_env(
            MLFLOW_TRACKING_URI=server.uri,
            MLFLOW_TRACKING_USERNAME="admin",
            MLFLOW_TRACKING_PASSWORD="wrong",
        )
        args = f"churn --version 1 --to champion --policy {champion_policy}"
        rc, out, summary, _ = run_action(
            {"command": "promote", "args": args}, env, tmp_path / "run"
        )
    assert rc == 5 and set(ACTION_KEYS) <= set(out)
    assert (
        out["exit-code"] == "5" and out["outcome"] == "not_permitted" and out["decision"] == "none"
    )
    assert "exit 5" in out["report"] and "exit 5" in summary


def test_action_keeps_spaces_and_expands_nothing(
    tracking_uri, tmp_path, store, make_version, model_name, champion_policy
):
    """`reason` keeps its spaces; `args` is split like a shell's words but never expanded."""
    version = make_version(metrics={"accuracy": 0.9})
    env = runner_env(MLFLOW_TRACKING_URI=tracking_uri, HOME=str(tmp_path))
    pol_dir = tmp_path / "a dir with spaces"
    pol_dir.mkdir()
    (pol_dir / "mlgate.toml").write_text(champion_policy.read_text())
    args = f"{model_name} --version {version} --to champion --policy '{pol_dir}/mlgate.toml'"
    rc, out, _, err = run_action(
        {"command": "promote", "args": args, "reason": "Q3 retrain"}, env, tmp_path / "a"
    )
    assert rc == 0, err
    import mlgate

    assert mlgate.history(model_name, store=store)[0].reason == "Q3 retrain"
    canary = tmp_path / "pwned"
    second = make_version(metrics={"accuracy": 0.9})
    args = (
        f'{model_name} --version {second} --to champion -m "$(touch {canary}) $HOME *" '
        f"--policy '{pol_dir}/mlgate.toml'"
    )
    rc, out, _, err = run_action({"command": "promote", "args": args}, env, tmp_path / "b")
    assert rc == 0, err
    assert not canary.exists()
    assert mlgate.history(model_name, store=store)[0].reason == f"$(touch {canary}) $HOME *"
    rc, out, _, err = run_action(
        {"command": "status", "args": model_name, "reason": "why"}, env, tmp_path / "c"
    )
    assert rc == 2 and "reason input" in out["report"]


def mlgate_source_copy(dst: Path) -> Path:
    """mlgate's repository as GitHub checks it out for `<owner>/mlgate/.github/actions/mlgate@ref`."""
    for name in ("src", "requirements", ".github"):
        shutil.copytree(
            ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dst / name)
    return dst


def other_project(path: Path) -> Path:
    """A repository of someone else's whose pyproject.toml cannot even be built."""
    path.mkdir(parents=True)
    (path / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "no_such_backend"\n\n'
        '[project]\nname = "churn-models"\nversion = "3.0"\n'
    )
    return path


def test_action_copied_into_another_repository_asks_for_a_version(tmp_path):
    """A copy of the action in another repository asks for `version` (exit 2), never installs it."""
    repo = other_project(tmp_path / "churn")
    shutil.copytree(ACTION.parent, repo / ".github/actions/mlgate")
    env = runner_env()
    rc, out, summary, _ = run_action(
        {"command": "status", "args": "churn"},
        env,
        tmp_path / "run",
        action_path=repo / ".github/actions/mlgate",
        install=True,
        cwd=repo,
    )
    assert rc == 2 and out["exit-code"] == "2" and out["outcome"] == "error"
    assert "version input" in out["report"] and "version input" in summary
    assert not (tmp_path / "run" / "runner-temp" / "mlgate-action").exists()


@pytest.mark.slow
def test_action_installs_mlgate_from_its_own_source_in_another_project(
    tracking_uri, tmp_path, make_version, model_name, champion_policy
):
    """In another project the action installs mlgate from its own source (or version), in its own venv."""
    version = make_version(metrics={"accuracy": 0.9})
    repo = other_project(tmp_path / "churn")
    action_path = (
        mlgate_source_copy(tmp_path / "_actions/acme/mlgate/v1") / ".github/actions/mlgate"
    )
    github_env, github_path = tmp_path / "github_env", tmp_path / "github_path"
    env = runner_env(
        MLFLOW_TRACKING_URI=tracking_uri, GITHUB_ENV=str(github_env), GITHUB_PATH=str(github_path)
    )
    inputs = {
        "command": "check",
        "args": f"{model_name} --version {version} --to champion --policy {champion_policy}",
    }
    rc, out, _, err = run_action(
        inputs, env, tmp_path / "run", action_path=action_path, install=True, cwd=repo
    )
    assert rc == 0, err[-3000:]
    assert out["decision"] == "passed" and out["exit-code"] == "0"
    venv = tmp_path / "run" / "runner-temp" / "mlgate-action"
    py = venv / "bin" / "python"
    where = subprocess.run(
        [str(py), "-c", "import mlgate; print(mlgate.__file__)"], capture_output=True, text=True
    )
    assert str(venv) in where.stdout, where
    listed = subprocess.run([str(py), "-m", "pip", "list"], capture_output=True, text=True).stdout
    assert "churn-models" not in listed and "mlgate" in listed
    assert (
        not github_env.exists() and not github_path.exists()
    )  # the caller's later steps unchanged
    rc, out, _, err = run_action(
        {**inputs, "version": "0.1.0"},
        env,
        tmp_path / "run",
        action_path=action_path,
        install=True,
        cwd=repo,
    )
    assert rc == 0 and out["decision"] == "passed", err[-3000:]
    assert (venv / ".mlgate-install").read_text().startswith("mlgate==0.1.0")


# ------------------------------------------------------------------ make targets
def run_make(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`make` with this environment's venv, never reinstalling it (-o: the stamp counts as fresh)."""
    venv = Path(sys.executable).parent.parent
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            str(ROOT / "Makefile"),
            f"VENV={venv}",
            "-o",
            f"{venv}/.installed",
            *args,
        ],
        cwd=cwd or ROOT,
        env=env or runner_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_make_reports_mlgate_exit_code_and_meaning(
    tracking_uri, tmp_path, store, make_version, model_name, champion_policy
):
    """make exits 2 whenever mlgate fails; the target prints mlgate's own code and its meaning."""
    from mlgate.errors import EXIT_CODES

    bad = make_version(metrics={"accuracy": 0.5})
    env = runner_env(MLFLOW_TRACKING_URI=tracking_uri)
    done = run_make(
        "check",
        f"MODEL={model_name}",
        f"VERSION={bad}",
        "TO=champion",
        f"ARGS=--policy {champion_policy}",
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert f"mlgate exited 3: {EXIT_CODES[3]}" in done.stderr
    good = make_version(metrics={"accuracy": 0.9})
    done = run_make(
        "promote",
        f"MODEL={model_name}",
        f"VERSION={good}",
        "TO=champion",
        f"ARGS=--expected 999 --policy {champion_policy}",
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and f"mlgate exited 4: {EXIT_CODES[4]}" in done.stderr
    done = run_make(
        "promote",
        f"MODEL={model_name}",
        f"VERSION={good}",
        "TO=champion",
        'MESSAGE=Q3 retrain: it\'s $5 "now"',
        f"ARGS=--policy {champion_policy}",
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "mlgate exited" not in done.stderr
    import mlgate

    assert mlgate.history(model_name, store=store)[0].reason == 'Q3 retrain: it\'s $5 "now"'


def test_make_names_a_missing_variable(tmp_path):
    """A target without a variable it needs (unset or empty, MODEL= and TO= too) stops with a
    make error naming it, before anything runs."""
    cases = [
        ("check", "VERSION", ["MODEL=churn"]),
        ("promote", "VERSION", ["MODEL=churn"]),
        ("build", "VERSION", ["MODEL=churn"]),
        ("check", "VERSION", ["MODEL=churn", "VERSION="]),
        ("check", "MODEL", ["MODEL=", "VERSION=3"]),
        ("check", "TO", ["VERSION=3", "TO="]),
        ("promote", "TO", ["VERSION=3", "TO= "]),
        ("build", "MODEL", ["MODEL=", "VERSION=3"]),
        *((target, "MODEL", ["MODEL="]) for target in ("rollback", "history", "status", "serve")),
    ]
    for target, var, args in cases:
        done = run_make(target, *args, cwd=tmp_path)
        assert done.returncode == 2, (target, args)
        assert f"*** {var} is not set (e.g. make {target} " in done.stderr, done.stderr
        assert "mlgate" not in done.stdout and "Usage:" not in done.stderr
    assert run_make("build", "MODEL=", "REF=churn@champion", "-n", cwd=tmp_path).returncode == 0


def _developer_env() -> dict[str, str]:
    """A developer's shell: no tracking URI, no MLGATE_HOME, not CI."""
    unset = ("MLFLOW_TRACKING_URI", "MLGATE_HOME", "CI", "GITHUB_ACTIONS", "MLGATE_ALLOW_EMBEDDED")
    return {k: v for k, v in runner_env().items() if k not in unset}


def test_make_targets_use_the_demo_store_and_policy_on_a_checkout(tmp_path):
    """After `make demo`, the checkout's make targets use the demo's embedded store and policy on
    a developer's machine (a --policy in ARGS wins); in CI a tracking URI is still required; with
    no demo store they say how to point at one instead of reading an empty one."""
    import mlgate
    from mlgate.testing import tiny_classifier

    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "mlgate.toml").write_text(
        "[[default.gates.challenger]]\ntype = 'metric'\nmetric = 'accuracy'\nmin = 0.5\n"
    )
    model, train, _ = tiny_classifier()
    store = mlgate.Store(f"sqlite:///{demo / 'mlflow.db'}")
    mlgate.register(
        model, name="demo-model", train_data=train, metrics={"accuracy": 0.9}, store=store
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    common = ("MODEL=demo-model", f"DEMO={demo}")

    done = run_make("status", *common, env=_developer_env(), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert "demo-model" in done.stdout
    assert (
        f"make: using the demo's store {demo / 'mlflow.db'} and policy {demo / 'mlgate.toml'}"
        in done.stderr
    )
    done = run_make(
        "check", *common, "VERSION=1", "TO=challenger", env=_developer_env(), cwd=elsewhere
    )
    assert done.returncode == 0, done.stderr
    assert "accuracy" in done.stdout and "PASSED" in done.stdout
    mine = tmp_path / "mine.toml"
    mine.write_text(
        "[[default.gates.challenger]]\ntype = 'metric'\nmetric = 'accuracy'\nmin = 0.95\n"
    )
    done = run_make(
        "check",
        *common,
        "VERSION=1",
        "TO=challenger",
        f"ARGS=--policy {mine}",
        env=_developer_env(),
        cwd=elsewhere,
    )
    assert done.returncode == 2 and "make: mlgate exited 3" in done.stderr, done.stderr
    assert "and policy" not in done.stderr

    done = run_make("status", *common, env=runner_env(), cwd=elsewhere)  # CI, no tracking URI
    assert done.returncode == 2 and "refuses its embedded SQLite default" in done.stderr
    assert "demo's store" not in done.stderr
    done = run_make(
        "status", "MODEL=demo-model", f"DEMO={elsewhere}", env=_developer_env(), cwd=elsewhere
    )
    assert done.returncode == 2
    assert "make: no tracking store: run `make demo` first" in done.stderr
    assert "MLFLOW_TRACKING_URI=URI" in done.stderr and not (elsewhere / "mlflow.db").exists()


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
    # MLflow's chatter during mlgate's calls stays out of the notebook (#24)
    chatter = [o.get("text", "") for c in nb.cells for o in c.get("outputs", [])]
    assert not [t for t in chatter if "mlflow" in t.lower() or "View run" in t], chatter


@pytest.mark.slow
def test_demo_tells_the_whole_story(example_copy):
    """`make demo`'s script runs every step on a fresh embedded store and leaves no process behind."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["CI"] = "true"  # as in CI, where only the demo's explicit opt-in allows the embedded store
    env["DOCKER_HOST"] = f"unix://{example_copy}/no-docker.sock"  # the build step: see test_build
    out = subprocess.run(
        [sys.executable, "demo.py"],
        cwd=example_copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
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
