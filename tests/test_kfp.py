"""Kubeflow Pipelines components: compiled, committed, loaded strictly; the step runner for real.

The ``kfp`` SDK pins ``requests``, ``urllib3`` and ``kubernetes`` exactly, so it never enters
mlgate's environment: it is installed from ``requirements/kfp.txt`` into a virtual environment
of its own (created once per requirements file, in the pytest cache or the temp directory), and
everything that imports ``kfp`` runs there as a subprocess. The step runner
(``python -m mlgate.kfp_step``, what the containers run) needs mlgate only and runs here against
the session's real tracking server. The Docker runs are in ``test_kfp_docker.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import write_policy
from mlgate.deploy import recipe, tools
from mlgate.testing import side_venv

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements" / "kfp.txt"
COMPONENTS = ROOT / "components"
EXAMPLE = ROOT / "mlruns_example" / "kfp_pipeline.py"
COMMANDS = ("register", "check", "promote", "rollback", "export")


def kfp_venv(cache: Path) -> Path:
    """A virtual environment with requirements/kfp.txt installed (made once per file content)."""
    return side_venv(REQUIREMENTS, cache, "kfp")


@pytest.fixture(scope="session")
def kfp_python(request: pytest.FixtureRequest) -> Path:
    """The Python of kfp's own virtual environment (pytest cache, else the temp directory, so
    that `make test` and `make test-docker` in one CI run share it)."""
    cache = getattr(request.config, "cache", None)
    root = (
        cache.mkdir("kfp")
        if cache is not None
        else Path(tempfile.gettempdir()) / "mlgate-test-venvs"
    )
    return kfp_venv(Path(root)) / "bin" / "python"


def run_kfp(
    python: Path,
    args: list[str],
    *,
    with_mlgate: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` in kfp's venv; mlgate importable from this checkout or not at all."""
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if with_mlgate:
        base["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run(
        [str(python), *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd or tempfile.gettempdir(),
        timeout=timeout,
    )


def load_yaml_docs(path: Path) -> list[dict]:
    import yaml

    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# --------------------------------------------------------------------------- components/
def test_committed_components_are_what_the_code_compiles(kfp_python, tmp_path):
    """components/*.yaml are byte-identical to a fresh `python -m mlgate.kfp DIR` (no stale file)."""
    out = run_kfp(kfp_python, ["-m", "mlgate.kfp", str(tmp_path)])
    assert out.returncode == 0, out.stderr
    fresh = sorted(p.name for p in tmp_path.iterdir())
    assert fresh == [f"mlgate-{c}.yaml" for c in sorted(COMMANDS)]
    assert sorted(p.name for p in COMPONENTS.glob("*.yaml")) == fresh
    for name in fresh:
        assert (COMPONENTS / name).read_text() == (tmp_path / name).read_text(), (
            f"components/{name} is stale: regenerate with `python -m mlgate.kfp components`"
        )


def test_components_load_strictly_without_mlgate(kfp_python):
    """Each committed YAML parses strictly as a PipelineSpec and loads with
    load_component_from_file in an environment where mlgate cannot even be imported."""
    code = """
import json, sys, yaml
from google.protobuf import json_format
from kfp.components import load_component_from_file
from kfp.pipeline_spec import pipeline_spec_pb2
try:
    import mlgate
    sys.exit("mlgate is importable here")
except ImportError:
    pass
out = {}
for path in sys.argv[1:]:
    spec = yaml.safe_load(open(path))
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())  # unknown fields refused
    comp = load_component_from_file(path)
    task = next(iter(spec["root"]["dag"]["tasks"].values()))
    container = next(iter(spec["deploymentSpec"]["executors"].values()))["container"]
    out[comp.name] = {
        "inputs": sorted(comp.component_spec.inputs or {}),
        "outputs": {k: v.type for k, v in (comp.component_spec.outputs or {}).items()},
        "caching": task.get("cachingOptions"),
        "image": container["image"],
        "command": container["command"][:2],
        "env": container.get("env"),
    }
print(json.dumps(out))
"""
    paths = [str(COMPONENTS / f"mlgate-{c}.yaml") for c in COMMANDS]
    out = run_kfp(kfp_python, ["-c", code, *paths], with_mlgate=False)
    assert out.returncode == 0, out.stderr + out.stdout
    found = json.loads(out.stdout)
    assert sorted(found) == [f"mlgate-{c}" for c in sorted(COMMANDS)]
    for name, info in found.items():
        assert info["caching"] == {}, name  # enableCache absent: a gate runs every time
        assert info["image"] == tools.DEFAULT_IMAGE
        assert info["command"] == ["sh", "-c"]
        assert info["env"] is None  # no tracking URI or credential baked in
        secret_like = [i for i in info["inputs"] if "tracking" in i and i != "tracking_secret"]
        secret_like += [i for i in info["inputs"] if any(w in i for w in ("password", "token"))]
        assert secret_like == [], name
        assert info["outputs"]["report"] == "system.Markdown@0.0.1"
        assert info["outputs"]["exit_code"] == "Integer"
        assert info["outputs"]["outcome"] == "String"
    for name in ("mlgate-check", "mlgate-promote", "mlgate-rollback"):
        assert {"decision", "version"} <= set(found[name]["outputs"])
    assert "fail_on_reject" in found["mlgate-check"]["inputs"]
    assert "fail_on_reject" in found["mlgate-promote"]["inputs"]
    assert found["mlgate-register"]["outputs"]["version"] == "String"
    assert found["mlgate-export"]["outputs"]["manifests"] == "system.Artifact@0.0.1"


def test_default_image_is_the_tools_image(kfp_python):
    """The components' default image is the one `mlgate build --tools-image` tags."""
    out = run_kfp(kfp_python, ["-c", "import mlgate.kfp as k; print(k.DEFAULT_IMAGE)"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == tools.DEFAULT_IMAGE == f"mlgate-tools:{mlgate_version()}"


def mlgate_version() -> str:
    from mlgate import __version__

    return __version__


# --------------------------------------------------------------------------- the example
@pytest.fixture(scope="module")
def example_spec(kfp_python, tmp_path_factory) -> Path:
    """mlruns_example/kfp_pipeline.py compiled by its own `compile` command."""
    path = tmp_path_factory.mktemp("kfp-example") / "pipeline.yaml"
    out = run_kfp(kfp_python, [str(EXAMPLE), "compile", str(path)], cwd=EXAMPLE.parent)
    assert out.returncode == 0, out.stderr
    return path


def test_example_pipeline_loads_back_strictly(kfp_python, example_spec):
    """The compiled example parses strictly (PipelineSpec and its Kubernetes PlatformSpec) and
    loads with load_component_from_file, without mlgate installed."""
    code = """
import json, sys, yaml
from google.protobuf import json_format
from kfp.components import load_component_from_file
from kfp.pipeline_spec import pipeline_spec_pb2
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec())
comp = load_component_from_file(sys.argv[1])
print(json.dumps({"name": comp.name, "inputs": sorted(comp.component_spec.inputs)}))
"""
    out = run_kfp(kfp_python, ["-c", code, str(example_spec)], with_mlgate=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "name": "mlgate-example",
        "inputs": ["altered", "model_name"],
    }


def _all_tasks(dag: dict, components: dict) -> dict[str, dict]:
    """Every task of a DAG, sub-DAGs (conditions) included."""
    found: dict[str, dict] = {}
    for name, task in dag.get("tasks", {}).items():
        found[name] = task
        sub = components.get(task["componentRef"]["name"], {}).get("dag")
        if sub:
            found.update(_all_tasks(sub, components))
    return found


def test_example_pipeline_branches_and_never_caches(example_spec):
    """train -> register -> check, then promote only if the decision is 'passed' and the
    rejection step otherwise; no task caches; every mlgate step reads the tracking secret."""
    spec, platform = load_yaml_docs(example_spec)
    tasks = _all_tasks(spec["root"]["dag"], spec["components"])
    assert {"train", "mlgate-register", "mlgate-check", "mlgate-promote", "post-rejection"} <= set(
        tasks
    )
    for name, task in tasks.items():
        assert not task.get("cachingOptions", {}).get("enableCache"), name
    conditions = [t["triggerPolicy"]["condition"] for t in tasks.values() if "triggerPolicy" in t]
    decision = "inputs.parameter_values['pipelinechannel--mlgate-check-decision']"
    assert f"{decision} == 'passed'" in conditions  # dsl.If: promote
    assert f"!({decision} == 'passed')" in conditions  # dsl.Else: post the rejection
    check = tasks["mlgate-check"]["inputs"]["parameters"]
    assert check["fail_on_reject"]["runtimeValue"]["constant"] is False
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for step in ("register", "check", "promote"):
        secrets = executors[f"exec-mlgate-{step}"]["secretAsEnv"]
        required = [s for s in secrets if not s["optional"]]
        assert required[0]["secretName"] == "mlflow-tracking"
        assert required[0]["keyToEnv"] == [
            {"envVar": "MLFLOW_TRACKING_URI", "secretKey": "MLFLOW_TRACKING_URI"}
        ]
    for executor in spec["deploymentSpec"]["executors"].values():
        env = executor["container"].get("env") or []
        assert not [e for e in env if e["name"].startswith("MLFLOW_")]


# --------------------------------------------------------------------------- the tools image
def test_tools_image_recipe():
    """The tools image is a runtime (same stages, venv, requirements and mlgate as a model's
    image) whose final stage has no entrypoint (kfp.local passes the step's command as
    arguments), no serving port or health check, and an import check."""
    kind = {"base_image": "mlgate-base:bookworm", "python": "3.11", "offline": True}
    tools_file = recipe.ToolsRuntime(**kind, labels={"a": "b"}).dockerfile().splitlines()
    model_file = recipe.Runtime(**kind).dockerfile().splitlines()

    def env_stage(lines: list[str]) -> list[str]:
        return lines[lines.index("FROM mlgate-base:bookworm AS env") : lines.index("")]

    assert env_stage(tools_file) == env_stage(model_file)  # the same runtime layers
    assert not [x for x in tools_file if x.startswith(("ENTRYPOINT", "HEALTHCHECK", "EXPOSE"))]
    assert f"COPY --from=env {recipe.PREFIX} {recipe.PREFIX}" in tools_file
    assert any(x.startswith("RUN ") and "mlgate.kfp_step" in x for x in tools_file)
    assert tools_file[-2:] == ['CMD ["python", "-m", "mlgate", "--help"]', 'LABEL a="b"']
    reqs = tools.tools_requirements().splitlines()
    names = {recipe.normalize_name(r.split("==")[0]) for r in reqs}
    from importlib.metadata import version

    assert f"mlflow-skinny=={version('mlflow')}" in reqs
    assert {"scikit-learn", "pandas", "blake3", "click", "skops"} <= names
    assert not names & {"mlflow", "docker", "uvicorn", "starlette", "kfp"}
    assert all("==" in r for r in reqs)


def test_build_tools_image_refuses_a_model(workdir):
    """`mlgate build --tools-image MODEL/1` is a usage error; `mlgate build` alone still says
    which argument is missing."""
    from click.testing import CliRunner

    from mlgate.cli import cli

    runner = CliRunner()
    got = runner.invoke(cli, ["build", "--tools-image", "churn/1"])
    assert got.exit_code != 0
    assert "--tools-image builds no model's image" in str(got.exception) + got.output
    from mlgate.cli import main

    assert main(["build"]) == 2
    assert main(["build", "--tools-image", "--no-verify"]) == 2


# --------------------------------------------------------------------------- the step runner
def step(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m mlgate.kfp_step ARGS`` as a container runs it (mlgate, no kfp)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_TRACKING_URI", "GITHUB_", "BUILD_", "CI"))
    }
    return subprocess.run(
        [sys.executable, "-m", "mlgate.kfp_step", *args],
        capture_output=True,
        text=True,
        env={**clean, "PYTHONPATH": str(ROOT / "src"), **env},
        cwd=cwd,
        timeout=300,
    )


def outputs(tmp: Path) -> list[str]:
    names = ("decision", "version", "outcome", "exit-code", "report")
    own: list[str] = []
    for name in names:
        own += [f"--{name}", str(tmp / "out" / name)]
    return own


def read_out(tmp: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (tmp / "out").iterdir()}


def test_step_without_tracking_server_fails_in_one_line(tmp_path):
    """No MLFLOW_TRACKING_URI in the container: exit 2 and one mlgate error line, never an
    embedded store created inside the container."""
    got = step([*outputs(tmp_path), "--", "register", "--name", "m", "--run", "r"], {}, tmp_path)
    assert got.returncode == 2
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlgate: error: no tracking server configured")
    assert not (tmp_path / "mlflow.db").exists()


def test_step_refuses_a_tracking_uri_parameter(tmp_path, tracking_uri):
    """--tracking-uri given through extra_args (a recorded parameter) is refused."""
    extra = json.dumps(["--tracking-uri", tracking_uri])
    got = step(
        ["--extra-args", extra, "--", "check", "m", "--to", "challenger"],
        {"MLFLOW_TRACKING_URI": tracking_uri},
        tmp_path,
    )
    assert got.returncode == 2
    assert "--tracking-uri cannot be a pipeline parameter" in got.stderr


def test_step_for_a_version_that_does_not_exist(tmp_path, tracking_uri, make_version, model_name):
    """check of a missing version: mlgate's own one-line error and exit 2, written to the
    exit_code output; nothing is reported as passed."""
    make_version()
    policy = ["--policy-text", "[default.gates]\nchallenger = []\n"]
    got = step(
        [*outputs(tmp_path), *policy, "--", "check", model_name, "--version", "99", "--to", "x"],
        {"MLFLOW_TRACKING_URI": tracking_uri},
        tmp_path,
    )
    assert got.returncode == 2, got.stderr
    errors = [line for line in got.stderr.splitlines() if line.startswith("mlgate: error:")]
    assert len(errors) == 1 and "99" in errors[0]
    out = read_out(tmp_path)
    assert out["exit-code"] == "2" and out["decision"] == "none" and out["outcome"] == "error"
    assert "exit 2" in out["report"]


def test_step_rejected_gate_fails_or_branches(tmp_path, tracking_uri, make_version, model_name):
    """A rejected check fails the step (exit 3) by default; with --fail-on-reject false it
    succeeds with decision=rejected and the Markdown gate report."""
    version = make_version()
    policy = write_policy(
        tmp_path, '[[default.gates.challenger]]\ntype = "metric"\nmetric = "accuracy"\nmin = 2\n'
    ).read_text()
    argv = ["--", "check", model_name, "--version", version, "--to", "challenger"]
    env = {"MLFLOW_TRACKING_URI": tracking_uri}
    strict = step([*outputs(tmp_path / "a"), "--policy-text", policy, *argv], env, tmp_path)
    assert strict.returncode == 3, strict.stderr
    assert read_out(tmp_path / "a")["decision"] == "rejected"
    lenient = step(
        [*outputs(tmp_path / "b"), "--policy-text", policy, "--fail-on-reject", "false", *argv],
        env,
        tmp_path,
    )
    assert lenient.returncode == 0, lenient.stderr
    out = read_out(tmp_path / "b")
    assert out["decision"] == "rejected" and out["exit-code"] == "3"
    assert out["version"] == version
    assert "accuracy" in out["report"] and "|" in out["report"]  # the Markdown gate table


def test_step_promote_names_the_pipeline_run(tmp_path, tracking_uri, make_version, model_name):
    """register and promote through the runner: the version comes back as an output, and the
    ledger event's actor and run link are the pipeline run's."""
    import mlgate

    version = make_version()
    policy = "[default.gates]\nchallenger = []\n"
    ident = ["--kfp-job", "pipe-run-7", "--kfp-job-id", "uuid-7", "--kfp-task", "mlgate-promote"]
    argv = ["--", "promote", model_name, "--version", version, "--to", "challenger"]
    argv += ["--reason", "from kfp", "--dry-run", "no"]
    got = step(
        [*outputs(tmp_path), *ident, "--policy-text", policy, *argv],
        {"MLFLOW_TRACKING_URI": tracking_uri},
        tmp_path,
    )
    assert got.returncode == 0, got.stderr
    out = read_out(tmp_path)
    assert (out["decision"], out["outcome"], out["version"]) == ("passed", "moved", version)
    event = mlgate.history(model_name, alias="challenger")[0]
    assert (event.outcome, event.to_version) == ("moved", version)
    assert event.actor == "kfp:pipe-run-7"
    assert event.ci_run_url == "kfp:run/uuid-7/mlgate-promote"


def test_step_expands_component_options():
    """Empty options are dropped, flags follow their boolean, JSON objects become KEY=VALUE."""
    from mlgate.kfp_step import command_line

    items = ["register", "--name", "m", "--train", "", "--metric", '{"b": 2, "a": 0.5}']
    items += ["--param", "{}", "--dry-run", "false", "--force", "true"]
    argv = command_line(items, '["--artifact-path", "clf"]')
    assert argv == [
        "register",
        "--name",
        "m",
        "--metric",
        "a=0.5",
        "--metric",
        "b=2",
        "--force",
        "--artifact-path",
        "clf",
    ]


# --------------------------------------------------------------------------- as documented
def _python_blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown text."""
    import re

    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _docstring_example() -> str:
    """The ``::`` example of mlgate.kfp's module docstring, dedented (read without kfp)."""
    import ast
    import textwrap

    doc = ast.get_docstring(ast.parse((ROOT / "src" / "mlgate" / "kfp.py").read_text()))
    assert doc is not None
    block = doc.split("::\n", 1)[1].split("\n\n* ", 1)[0]
    return textwrap.dedent(block).strip() + "\n"


def _kubeflow_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Kubeflow Pipelines: `mlgate.kfp`", 1)[1].split("\n## ", 1)[0]


def test_documented_examples_compile(kfp_python, tmp_path):
    """The example in mlgate.kfp's docstring and every Python block of the README's Kubeflow
    section define pipelines that kfp's compiler compiles (a wrong input name fails here)."""
    examples = {"docstring": _docstring_example()}
    examples.update({f"readme-{i}": b for i, b in enumerate(_python_blocks(_kubeflow_section()))})
    assert len(examples) >= 2
    code = """
import sys
from pathlib import Path
from kfp import compiler
from kfp.dsl.graph_component import GraphComponent
done = []
for path in sys.argv[1:]:
    scope = {"__name__": Path(path).stem}
    exec(compile(Path(path).read_text(), path, "exec"), scope)
    pipelines = [v for v in scope.values() if isinstance(v, GraphComponent)]
    assert pipelines, path + ": no pipeline defined"
    for p in pipelines:
        compiler.Compiler().compile(p, str(Path(path).with_suffix(".yaml")))
        done.append(Path(path).stem)
print(" ".join(done))
"""
    paths = []
    for name, text in examples.items():
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        paths.append(str(path))
    out = run_kfp(kfp_python, ["-c", code, *paths])
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(out.stdout.split()) == sorted(examples)


def test_every_component_input_and_output_is_described():
    """Each committed component describes every input and output in its spec (what the
    Kubeflow UI shows: inputDefinitions and outputDefinitions), besides its one-line summary."""
    missing = {}
    for command in COMMANDS:
        (spec,) = load_yaml_docs(COMPONENTS / f"mlgate-{command}.yaml")
        (component,) = spec["components"].values()
        ports = {}
        for side in ("inputDefinitions", "outputDefinitions"):
            for kind in ("parameters", "artifacts"):
                ports.update(component.get(side, {}).get(kind, {}))
        assert len(ports) >= 8, command
        missing[command] = sorted(k for k, v in ports.items() if not v.get("description"))
    assert missing == {c: [] for c in COMMANDS}


def test_module_help_and_the_missing_extra(kfp_python, tmp_path):
    """`python -m mlgate.kfp --help` prints its usage (no directory named --help); without kfp
    the module, `python -m mlgate.kfp DIR` and the example's compile name the extra to install."""
    out = run_kfp(kfp_python, ["-m", "mlgate.kfp", "--help"], cwd=tmp_path)
    assert out.returncode == 0 and "usage: python -m mlgate.kfp" in out.stdout, out.stderr
    assert list(tmp_path.iterdir()) == []
    install = "pip install 'mlgate[kfp]'"
    hide = "import sys, runpy; sys.modules['kfp'] = None; "  # as if kfp were not installed
    runs = {
        "import": hide + "import mlgate.kfp",
        "components": hide + "sys.argv = ['x', 'out']; runpy.run_module('mlgate.kfp', "
        "run_name='__main__')",
        "example": hide + f"sys.argv = ['kfp_pipeline.py', 'compile', 'p.yaml']; "
        f"runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')",
    }
    for name, code in runs.items():
        got = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            timeout=120,
        )
        last = got.stderr.strip().splitlines()[-1]
        assert got.returncode != 0 and install in last, (name, got.stderr)
        if name != "import":
            assert got.returncode == 2 and len(got.stderr.strip().splitlines()) == 1, name
    assert not (tmp_path / "out").exists()


def test_step_refuses_a_relative_path_in_an_inline_policy(tmp_path, tracking_uri):
    """policy= text naming data by a relative path: refused (exit 2, one line) naming the
    inputs to use instead, never resolved into the step's temporary directory."""
    policy = '[default.evaluation]\ndata = "data/eval.csv"\ntarget = "y"\n'
    policy += "[default.gates]\nchallenger = []\n"
    env = {"MLFLOW_TRACKING_URI": tracking_uri}
    got = step(
        [*outputs(tmp_path), "--policy-text", policy, "--", "check", "m", "--to", "challenger"],
        env,
        tmp_path,
    )
    assert got.returncode == 2, got.stderr
    (line,) = got.stderr.strip().splitlines()
    assert "default.evaluation.data = 'data/eval.csv' is a relative path" in line
    assert "eval_data" in line and "policy_path" in line and "mlgate-kfp-" not in line
    # with the eval_data input given, that input replaces evaluation.data: nothing to refuse
    data = tmp_path / "eval.csv"
    data.write_text("x,y\n1,0\n")
    args = ["check", "m", "--to", "challenger", "--eval-data", str(data)]
    got = step([*outputs(tmp_path), "--policy-text", policy, "--", *args], env, tmp_path)
    assert "relative path" not in got.stderr, got.stderr


def test_step_passed_promotion_report_shows_the_gates(
    tmp_path, tracking_uri, make_version, model_name
):
    """A passed promotion's Markdown report has the gate table, as a rejection's has."""
    version = make_version(metrics={"accuracy": 0.9})
    policy = '[[default.gates.challenger]]\ntype = "metric"\nmetric = "accuracy"\nmin = 0.5\n'
    argv = ["--", "promote", model_name, "--version", version, "--to", "challenger"]
    got = step(
        [*outputs(tmp_path), "--policy-text", policy, *argv],
        {"MLFLOW_TRACKING_URI": tracking_uri},
        tmp_path,
    )
    assert got.returncode == 0, got.stderr
    out = read_out(tmp_path)
    assert out["decision"] == "passed" and out["outcome"] == "moved"
    report = out["report"]
    assert "| gate |" in report and "accuracy" in report and "✅" in report, report
    assert "moved" in report  # and the ledger's row
