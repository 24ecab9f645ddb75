"""Third-party gate types register under the ``mlgate.gates`` entry-point group and are then
validated, collected for, run and reported like mlgate's own; a broken plug-in is one clear
line naming its entry point."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mlgate
from conftest import write_policy
from mlgate.cli import main
from mlgate.errors import EXIT_REJECTED, EXIT_USAGE, PolicyError
from mlgate.promotion.gates import Evidence, GateSpec, VersionEvidence, registry, run_gates
from mlgate.promotion.policy import load_policy

PLUGIN = Path(__file__).parent / "plugins" / "mlgate_group_gap"
ENTRY_POINTS = """\
[mlgate.gates]
group_gap = mlgate_group_gap:GATE
gap_broken_import = mlgate_group_gap.broken:GATE
gap_not_a_gate = mlgate_group_gap:not_a_gate
gap_misnamed = mlgate_group_gap:MISNAMED
gap_liar = mlgate_group_gap:LIAR
"""
GAP_POLICY = """
[[default.gates.champion]]
type = "group_gap"
metric_a = "{a}"
metric_b = "recall_b"
max_gap = {gap}
"""


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory laid out as site-packages after `pip install mlgate-group-gap`."""
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(PLUGIN, root / PLUGIN.name)
    info = root / "mlgate_group_gap-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlgate-group-gap\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


@pytest.fixture
def installed(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plug-in on sys.path (entry points are read from it) with no gate loaded yet."""
    monkeypatch.syspath_prepend(str(plugin_dir))
    monkeypatch.setattr(registry, "_plugins", {})
    return plugin_dir


def gap_policy(tmp_path: Path, gap: object = 0.1, a: str = "recall_a") -> Path:
    return write_policy(tmp_path, GAP_POLICY.format(gap=gap, a=a))


def policy_error(tmp_path: Path, text: str) -> PolicyError:
    with pytest.raises(PolicyError) as err:
        load_policy(write_policy(tmp_path, text))
    assert "\n" not in str(err.value)
    return err.value


def test_third_party_gate_type_validates_with_its_own_schema(installed, tmp_path):
    """A policy naming the plug-in's type loads; its bad keys are one-line errors naming them."""
    (spec,) = load_policy(gap_policy(tmp_path)).for_model("m").gates_for("champion")
    assert (spec.type, spec.name, spec.get("max_gap")) == ("group_gap", "group_gap", 0.1)
    bad = [
        (GAP_POLICY.format(gap="'big'", a="recall_a"), "max_gap", "must be a number, got a string"),
        (GAP_POLICY.format(gap=-1, a="recall_a"), "max_gap", "must be zero or more, got -1"),
        (GAP_POLICY.format(gap=0.1, a="recall_b"), "metric_b", "must differ from metric_a"),
        (
            GAP_POLICY.format(gap=1, a="x").replace('metric_b = "recall_b"\n', ""),
            "metric_b",
            "is required",
        ),
        (GAP_POLICY.format(gap=0.1, a="x") + "colour = 1\n", "colour", "unknown key; allowed:"),
    ]
    for text, key, problem in bad:
        err = policy_error(tmp_path, text)
        assert err.key == f"default.gates.champion[0].{key}" and problem in err.problem
        assert str(err).startswith(f"{tmp_path / 'mlgate.toml'}: default.gates.champion[0].")
    unknown = policy_error(tmp_path, "[[default.gates.champion]]\ntype = 'group_gapp'\n")
    assert "unknown gate type 'group_gapp'" in unknown.problem and "group_gap" in unknown.problem


def test_third_party_gate_fails_closed_on_missing_or_nan_metrics(installed, tmp_path):
    """The plug-in's check sees the same evidence as mlgate's gates: absent or NaN fails."""
    specs = load_policy(gap_policy(tmp_path)).for_model("m").gates_for("champion")
    for logged in ({"recall_a": 0.9}, {"recall_a": math.nan, "recall_b": 0.9}, {}):
        ev = Evidence("m", "champion", VersionEvidence("2", logged=logged), None)
        (r,) = run_gates(specs, ev)
        assert not r.passed and r.type == "group_gap", logged
    ok = Evidence(
        "m", "champion", VersionEvidence("2", logged={"recall_a": 1, "recall_b": 1}), None
    )
    assert run_gates(specs, ok)[0].passed


def test_third_party_gate_runs_through_mlgate_check(
    installed, tracking_uri, store, model_name, make_version, tmp_path, capsys
):
    """`mlgate check` collects for, runs and reports the plug-in's gate on the real server."""
    v = make_version(metrics={"recall_a": 0.9, "recall_b": 0.75})
    base = ["check", model_name, "-v", v, "--to", "champion", "--policy"]
    capsys.readouterr()
    assert main([*base, str(gap_policy(tmp_path, 0.1))]) == EXIT_REJECTED
    out = capsys.readouterr().out
    assert "group_gap" in out and "gap between recall_a and recall_b is 0.15, over 0.1" in out
    assert main([*base, str(gap_policy(tmp_path, 0.2)), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert result["type"] == "group_gap" and result["passed"] and result["observed"] > 0.149
    decision = mlgate.check(
        model_name, v, to="champion", policy=gap_policy(tmp_path, 1, a="recall_c"), store=store
    )
    assert not decision.passed
    assert "metric 'recall_c' was not logged" in decision.results[0].reason


def test_plugin_is_found_by_a_fresh_mlgate_process(
    plugin_dir, tracking_uri, model_name, make_version, tmp_path
):
    """Installed on PYTHONPATH, the plug-in's gate runs in `python -m mlgate check` too."""
    v = make_version(metrics={"recall_a": 0.9, "recall_b": 0.75})
    paths = [str(plugin_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    args = [sys.executable, "-m", "mlgate", "check", model_name, "-v", v, "--to", "champion"]
    out = subprocess.run(
        [*args, "--policy", str(gap_policy(tmp_path, 0.1))], env=env, capture_output=True, text=True
    )
    assert out.returncode == EXIT_REJECTED, out.stderr
    assert "group_gap" in out.stdout and "over 0.1" in out.stdout
    broken = write_policy(tmp_path, "[[default.gates.champion]]\ntype = 'gap_broken_import'\n")
    out = subprocess.run([*args, "--policy", str(broken)], env=env, capture_output=True, text=True)
    assert out.returncode == EXIT_USAGE
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("mlgate: error: ") and "entry point gap_broken_import = " in line


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (
            "gap_broken_import",
            "gate type 'gap_broken_import': entry point gap_broken_import = "
            "mlgate_group_gap.broken:GATE (group mlgate.gates) failed to load: "
            "ModuleNotFoundError: No module named 'mlgate_group_gap_missing_dependency'",
        ),
        (
            "gap_not_a_gate",
            "gate type 'gap_not_a_gate': entry point gap_not_a_gate = mlgate_group_gap:not_a_gate "
            "(group mlgate.gates) is a function, not an mlgate.promotion.gates.Gate",
        ),
        (
            "gap_misnamed",
            "gate type 'gap_misnamed': entry point gap_misnamed = mlgate_group_gap:MISNAMED "
            "(group mlgate.gates) declares type 'something_else': the two must be the same",
        ),
    ],
)
def test_broken_plugin_is_one_line_naming_the_entry_point(installed, tmp_path, name, problem):
    """A plug-in that fails to import or is not a Gate of its name: a PolicyError at the type."""
    err = policy_error(tmp_path, f"[[models.m.gates.champion]]\ntype = '{name}'\n")
    assert (err.key, err.problem) == ("models.m.gates.champion[0].type", problem)
    ev = Evidence("m", "champion", VersionEvidence("2"), None)
    (r,) = run_gates([GateSpec(name, {}, "x", name)], ev)
    assert not r.passed and r.reason == problem


def test_broken_plugins_cost_nothing_to_a_policy_of_builtin_gates(installed, tmp_path):
    """Entry points are read only for a type mlgate lacks: broken plug-ins never load."""
    policy = write_policy(tmp_path, "[[default.gates.champion]]\ntype = 'signature'\n")
    assert load_policy(policy).for_model("m").gates_for("champion")[0].type == "signature"
    assert "mlgate_group_gap.broken" not in sys.modules and not registry._plugins


def test_a_check_that_does_not_return_a_verdict_fails_its_gate(installed):
    """A plug-in check returning anything but a GateResult fails closed, never passes."""
    ev = Evidence("m", "champion", VersionEvidence("2"), None)
    (r,) = run_gates([GateSpec("gap_liar", {}, "x", "gap_liar")], ev)
    assert not r.passed and "returned a str, not a GateResult" in r.reason
