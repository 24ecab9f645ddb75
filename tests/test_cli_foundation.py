"""The CLI: fast help, every option documented, one-line errors with documented exit codes."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from mlgate.cli import cli, main
from mlgate.errors import EXIT_CODES, EXIT_ERROR, EXIT_USAGE


def test_import_and_help_do_not_import_mlflow():
    """`import mlgate` and `mlgate --help` never import MLflow or pandas."""
    code = (
        "import sys, mlgate, mlgate.cli;"
        "from mlgate.cli import main;"
        "rc = main(['--help']);"
        "print(rc, 'mlflow' in sys.modules, 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 False False"


def _all_commands(group: click.Group, prefix: str = ""):
    for name, cmd in group.commands.items():
        yield f"{prefix}{name}", cmd
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, f"{prefix}{name} ")


def test_every_command_and_option_has_help():
    """Every command has a docstring and every option a help text."""
    commands = list(_all_commands(cli))
    assert commands
    for name, cmd in commands:
        assert cmd.help, f"{name} has no help"
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts} has no help"


def test_help_lists_exit_codes(capsys):
    """`mlgate --help` documents every exit code."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for code in EXIT_CODES:
        assert f"  {code}  " in out


def test_readme_documents_exit_codes():
    """The README's exit-code table matches errors.EXIT_CODES."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in readme


def test_fingerprint_command(tmp_path, capsys):
    """`mlgate fingerprint` prints one line per path, or JSON."""
    f = tmp_path / "a.csv"
    f.write_text("x,y\n1,2\n")
    d = tmp_path / "dir"
    d.mkdir()
    (d / "b.txt").write_text("b")
    assert main(["fingerprint", str(f), str(d)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("blake3:") for line in lines)
    assert main(["fingerprint", "--json", str(f)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["kind"] == "file" and data[0]["size_bytes"] == 8


def test_missing_path_is_one_line_exit_2(tmp_path, capsys):
    """A path that does not exist: exit 2, one line on stderr, no traceback."""
    assert main(["fingerprint", str(tmp_path / "missing.csv")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.csv" in err and "Traceback" not in err


def test_usage_errors_exit_2(capsys, tmp_path):
    """Unknown options and conflicting arguments exit 2."""
    assert main(["fingerprint"]) == EXIT_USAGE
    assert main(["register", "--name", "x"]) == EXIT_USAGE
    assert main(["show", "bad/ref/x"]) == EXIT_USAGE
    assert (
        main(["check", "m/3", "--version", "4", "--to", "champion", "--policy", "x.toml"])
        == EXIT_USAGE
    )
    assert "Traceback" not in capsys.readouterr().err


def test_unreachable_server_is_one_line_error(tmp_path):
    """A tracking server that does not answer gives exit 1 and a one-line message."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    out = subprocess.run(
        [sys.executable, "-m", "mlgate", "show", "anything"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == EXIT_ERROR
    lines = [line for line in out.stderr.splitlines() if line.startswith("mlgate:")]
    assert len(lines) == 1 and "Traceback" not in out.stderr


def test_register_and_show_via_cli(tracking_uri, model_name, classifier, tmp_path, capsys):
    """`mlgate register --run` then `mlgate show NAME/1 --json` round-trips the lineage."""
    import mlflow
    import mlflow.sklearn

    model, train, _ = classifier
    data = tmp_path / "train.parquet"
    train.to_parquet(data)
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model")
    rc = main(
        [
            "register",
            "--name",
            model_name,
            "--run",
            run.info.run_id,
            "--train",
            str(data),
            "--metric",
            "accuracy=0.9",
            "--param",
            "C=1",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert f"registered {model_name} version 1" in capsys.readouterr().out
    assert main(["show", f"{model_name}/1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["metrics"] == {"accuracy": 0.9}
    assert shown["data"]["train"]["source"] == str(data.resolve())
    assert main(["show", f"{model_name}@champion"]) == EXIT_USAGE
    assert "not set" in capsys.readouterr().err
    assert main(["show", "no-such-model-xyz"]) == EXIT_USAGE


@pytest.mark.parametrize("bad", ["--metric", "--param"])
def test_bad_pairs(bad, capsys):
    """KEY=VALUE options reject malformed values with exit 2."""
    assert main(["register", "--name", "x", "--run", "r", bad, "novalue"]) == EXIT_USAGE


@pytest.mark.parametrize(
    "command",
    [
        ["check", "m/1", "--to", "champion"],
        ["promote", "m/1", "--to", "champion"],
        ["rollback", "m"],
        ["history", "m"],
    ],
)
def test_json_with_markdown_is_a_usage_error(command, workdir, monkeypatch, capsys):
    """--json with --markdown: exit 2 naming both flags, before any store is contacted."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert main([*command, "--json", "--markdown"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--json" in err and "--markdown" in err and "Traceback" not in err


def test_rollback_names_its_version_option_version(capsys):
    """`rollback --help` offers --version (a version number); the old --to is hidden."""
    assert main(["rollback", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--version" in out and "--to" not in out


def test_check_and_promote_take_target(capsys):
    """`check` and `promote` have the --target option that evaluation errors suggest."""
    for command in ("check", "promote"):
        assert main([command, "--help"]) == 0
        assert "--target" in capsys.readouterr().out


CLI_DIR = Path(__file__).parents[1] / "src" / "mlgate" / "cli"
#: What the commands may import from mlgate: the use cases, their rendering, the error classes
#: (exit codes), configuration helpers and the version, besides the CLI's own modules.
CLI_MAY_IMPORT = {"mlgate", "mlgate.api", "mlgate.report", "mlgate.errors", "mlgate.config"}
CLI_MAY_IMPORT |= {"mlgate._version", "mlgate.cli"}


def _api_calls(node: ast.AST) -> int:
    """How many ``api.NAME(...)`` calls ``node`` contains."""
    return sum(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "api"
        for n in ast.walk(node)
    )


def _api_calls_per_way(body: list[ast.stmt]) -> list[int]:
    """The api calls on each way through a command's body: a top-level ``if`` whose block ends
    in ``return``/``raise`` is a way out of its own; the rest runs to the end."""
    ways, before = [], 0
    for stmt in body:
        if isinstance(stmt, ast.If) and isinstance(stmt.body[-1], ast.Return | ast.Raise):
            ways.append(before + _api_calls(stmt.test) + sum(map(_api_calls, stmt.body)))
            before += _api_calls(stmt.test) + sum(map(_api_calls, stmt.orelse))
        else:
            before += _api_calls(stmt)
    return [*ways, before]


def _commands(tree: ast.Module) -> list[ast.FunctionDef]:
    return [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(
            isinstance(d, ast.Call)
            and isinstance(d.func, ast.Attribute)
            and d.func.attr == "command"
            for d in node.decorator_list
        )
    ]


def test_every_command_makes_one_api_call():
    """Each command parses, makes one mlgate.api call on its way to the end (at most one on any
    way out) and renders, in less than a screen of code below its signature and help; the CLI
    imports nothing of mlgate's but the api, rendering, errors and configuration."""
    seen = set()
    for path in sorted(CLI_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlgate"):
                assert node.module in CLI_MAY_IMPORT or node.module.startswith("mlgate.cli."), (
                    f"{path.name} imports {node.module}"
                )
        for command in _commands(tree):
            ways = _api_calls_per_way(command.body)
            assert ways[-1] == 1 and max(ways) == 1, (path.name, command.name, ways)
            code = command.body[1:] if ast.get_docstring(command) else command.body
            assert command.end_lineno - code[0].lineno < 40, (command.name, "over a screen")
            seen.add(command.name)
    assert seen == {c.callback.__name__ for c in cli.commands.values()}


def test_cli_and_api_functions_fit_in_100_lines():
    """No function of the CLI package, mlgate.api or mlgate.deploy is over 100 lines (from its
    ``def``: a command's options are declared in the decorators above it)."""
    src = CLI_DIR.parent
    for path in [*CLI_DIR.glob("*.py"), src / "api.py", *(src / "deploy").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno < 100, (path.name, node.name)
