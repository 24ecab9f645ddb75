"""One Kubeflow Pipelines step: run one mlgate command and write its outputs where KFP reads them.

This is what the containers of ``mlgate.kfp``'s components run (``python -m mlgate.kfp_step``);
it needs mlgate, never ``kfp``. The component passes the command's options as pairs, empty
values meaning "not given", and where to write each output::

    python -m mlgate.kfp_step --fail-on-reject true --decision /out/decision ... \\
        -- check churn --version 7 --to challenger --target "" --eval-data /in/eval.csv

It runs mlgate's own CLI in-process (same exit codes, same one-line errors) with
``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY`` pointed at files of its own: ``check``, ``promote``
and ``rollback`` write their decision, version, outcome and Markdown report there on every exit,
failures included. ``register`` and ``export`` are read from their ``--json`` / YAML output.

Rules it enforces for a pipeline:

* The tracking server comes from the environment (``MLFLOW_TRACKING_URI``, from a Kubernetes
  secret or the task's environment), never from a component parameter, which KFP records:
  ``--tracking-uri`` is refused, and without the variable the step fails (exit 2) rather than
  use a throwaway embedded store inside the container (``CI`` is set for mlgate).
* A rejected gate (exit 3) fails the step unless ``--fail-on-reject false``; then the step
  succeeds with ``decision=rejected`` so that the pipeline can branch on it.
* The pipeline run is who acted: unless the task's environment names someone, the ledger's actor
  is ``kfp:<pipeline run name>`` and its run link ``kfp:run/<run id>/<task>`` (the variables
  :func:`mlgate.lineage.actor` and :func:`mlgate.lineage.ci_run_url` read).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlgate.errors import EXIT_REJECTED, EXIT_USAGE
from mlgate.lineage import ACTOR_VARS, RUN_URL_VARS

#: Options of mlgate's commands that take no value (given as ``--flag true|false``).
FLAGS = frozenset({"--dry-run", "--force", "--pinned", "--quiet"})
#: Options given as one JSON object, expanded to ``--option KEY=VALUE`` per entry.
MAPPINGS = frozenset({"--metric", "--param", "--tag"})
#: Commands whose step outputs mlgate writes itself (``GITHUB_OUTPUT``) on every exit.
GATED = ("check", "promote", "rollback")
#: The variables lineage reads for who acted and from which run (GitHub's run link is made of
#: GITHUB_RUN_ID).
RUN_LINK_VARS = (*RUN_URL_VARS, "GITHUB_RUN_ID")
_TRUE = ("1", "true", "yes", "on")


class StepError(Exception):
    """A step that cannot run as asked; printed as ``mlgate: error: ...`` with exit 2."""


def _bool(value: str) -> bool:
    return value.strip().lower() in _TRUE


def _parse(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """The runner's own ``--name value`` options (before ``--``), and mlgate's arguments."""
    args = list(argv)
    if "--" not in args:
        raise StepError("usage: python -m mlgate.kfp_step [--OPTION VALUE ...] -- COMMAND ...")
    cut = args.index("--")
    own, rest = args[:cut], args[cut + 1 :]
    if len(own) % 2:
        raise StepError(f"expected --OPTION VALUE pairs before '--', got {own!r}")
    opts = {}
    for key, value in zip(own[::2], own[1::2], strict=True):
        if not key.startswith("--"):
            raise StepError(f"expected an option before '--', got {key!r}")
        opts[key[2:]] = value
    if not rest:
        raise StepError("no mlgate command after '--'")
    return opts, rest


def command_line(items: Sequence[str], extra: str = "") -> list[str]:
    """mlgate's argv from the component's items: ``--option ""`` dropped, flags as booleans,
    JSON objects expanded, then the JSON list ``extra`` (the component's ``extra_args``)."""
    out: list[str] = []
    i = 0
    while i < len(items):
        item = items[i]
        if item.startswith("--") and item != "--" and i + 1 < len(items):
            value = items[i + 1]
            i += 2
            if item in FLAGS:
                out += [item] if _bool(value) else []
            elif item in MAPPINGS:
                for option, pair in _mapping(item, value):
                    out += [option, pair]
            elif value != "":
                out += [item, value]
            continue
        out.append(item)
        i += 1
    if extra.strip():
        try:
            more = json.loads(extra)
        except ValueError:
            raise StepError(f"extra_args: not a JSON list: {extra!r}") from None
        if not isinstance(more, list):
            raise StepError(f"extra_args: not a JSON list: {extra!r}")
        out += [str(x) for x in more]
    for arg in out:
        if arg == "--tracking-uri" or arg.startswith("--tracking-uri="):
            raise StepError(
                "--tracking-uri cannot be a pipeline parameter (KFP records parameters): set "
                "MLFLOW_TRACKING_URI from a Kubernetes secret or the task's environment"
            )
    return out


def _mapping(option: str, value: str) -> list[tuple[str, str]]:
    if not value.strip():
        return []
    try:
        data = json.loads(value)
    except ValueError:
        raise StepError(f"{option}: not a JSON object: {value!r}") from None
    if not isinstance(data, dict):
        raise StepError(f"{option}: not a JSON object: {value!r}")
    pairs = [(str(k), str(v)) for k, v in sorted(data.items())]
    return [(option, f"{k}={v}") for k, v in pairs]


def _identity(opts: dict[str, str]) -> None:
    """Name the pipeline run as the actor and its link, unless the environment names one."""
    job, job_id, task = opts.get("kfp-job", ""), opts.get("kfp-job-id", ""), opts.get("kfp-task")
    if job and not any(os.environ.get(v) for v in ACTOR_VARS):
        os.environ["MLGATE_ACTOR"] = f"kfp:{job}"
    if job_id and not any(os.environ.get(v) for v in RUN_LINK_VARS):
        os.environ["MLGATE_RUN_URL"] = f"kfp:run/{job_id}" + (f"/{task}" if task else "")


def _tracking() -> None:
    """Refuse to run without a tracking server from the environment (never the embedded store)."""
    os.environ.setdefault("CI", "true")  # mlgate refuses its embedded default in CI
    if "MLFLOW_TRACKING_URI" not in os.environ and not os.environ.get("MLGATE_ALLOW_EMBEDDED"):
        raise StepError(
            "no tracking server configured for this pipeline step: MLFLOW_TRACKING_URI is not "
            "set in the container (set it from a Kubernetes secret, e.g. "
            "mlgate.kfp.use_tracking_secret(task), or with task.set_env_variable)"
        )


def _write(path: str | None, value: str) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(value, encoding="utf-8")


def _read_github_outputs(path: Path) -> dict[str, str]:
    """Parse a ``GITHUB_OUTPUT`` file (``key=value`` and ``key<<DELIM`` blocks); last one wins."""
    out: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            block: list[str] = []
            while i < len(lines) and lines[i] != delim:
                block.append(lines[i])
                i += 1
            i += 1
            out[key] = "\n".join(block)
        elif "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def _run_mlgate(argv: list[str]) -> tuple[int, str]:
    """mlgate's CLI in this process; returns its exit code and what it printed on stdout
    (which is also passed through to this process's stdout, the step's log)."""
    from mlgate.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    sys.stdout.write(buffer.getvalue())
    sys.stdout.flush()
    return code, buffer.getvalue()


def _md_register(data: dict[str, Any]) -> str:
    rows = [
        ("model", f"{data.get('name')} version {data.get('version')}"),
        ("run", data.get("run_id") or "-"),
        ("artifact digest", data.get("artifact_digest") or "-"),
    ]
    for role, info in sorted((data.get("data") or {}).items()):
        rows.append((f"{role} data", f"{info.get('fingerprint', '-')} ({info.get('source', '')})"))
    rows += [
        ("registered by", data.get("registered_by") or "-"),
        ("run link", data.get("ci_run_url") or "-"),
    ]
    body = "\n".join(f"| {k} | `{v}` |" for k, v in rows)
    head = f"### mlgate register: {data.get('name')} version {data.get('version')}"
    return f"{head}\n\n| | |\n| --- | --- |\n{body}\n"


def write_executor_output(executor_input: str, path: str) -> None:
    """List the task's output artifacts in KFP's executor output file.

    The KFP backend's launcher uploads a container's output artifacts by itself; ``kfp.local``
    only knows the artifacts an executor output file names (as a Python component's executor
    writes it). Naming each output artifact at the URI KFP gave it serves both.
    """
    if not executor_input.strip() or not path.strip():
        return
    try:
        artifacts = json.loads(executor_input).get("outputs", {}).get("artifacts", {})
    except (ValueError, AttributeError):
        raise StepError("--executor-input: not KFP's executor input (JSON)") from None
    listed = {
        name: {
            "artifacts": [{**a, "metadata": a.get("metadata") or {}} for a in group["artifacts"]]
        }
        for name, group in artifacts.items()
    }
    _write(path, json.dumps({"artifacts": listed}))


#: What mlgate reads evaluation data as, by file suffix (KFP's artifact paths have none).
EVAL_SUFFIXES = (".csv", ".parquet", ".json", ".jsonl", ".feather")


def _sniff(path: Path) -> str:
    """The suffix for a data file named without one, from its first bytes."""
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PAR1"):
        return ".parquet"
    if head.startswith(b"ARROW1"):
        return ".feather"
    if head.lstrip()[:1] in (b"{", b"["):
        return ".jsonl" if head.lstrip()[:1] == b"{" else ".json"
    return ".csv"


def _named_data(argv: list[str], tmp: Path) -> list[str]:
    """``--eval-data`` at a path without a data suffix (a KFP artifact): a link that has one."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        path = Path(out[i + 1])
        if arg == "--eval-data" and path.suffix.lower() not in EVAL_SUFFIXES and path.is_file():
            link = tmp / f"eval-data{_sniff(path)}"
            link.symlink_to(path.resolve())
            out[i + 1] = str(link)
    return out


def _failure_report(command: str, code: int) -> str:
    return f"### ❌ mlgate {command}: failed (exit {code})\n\nSee the step's log for the error.\n"


def _no_relative_paths(policy: str) -> None:
    """An inline policy has no directory for a relative path to be relative to (a pipeline pod
    has no checkout): refuse one, naming the inputs that bring data to a step."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib

    try:
        data = tomllib.loads(policy)
    except tomllib.TOMLDecodeError:
        return  # mlgate's own policy parser reports it, naming the key
    tables = [("default", data.get("default"))]
    models = data.get("models")
    if isinstance(models, dict):
        tables += [(f"models.{name}", table) for name, table in models.items()]
    for key, table in tables:
        evaluation = table.get("evaluation") if isinstance(table, dict) else None
        path = evaluation.get("data") if isinstance(evaluation, dict) else None
        if isinstance(path, str) and "://" not in path and not Path(path).is_absolute():
            raise StepError(
                f"policy (inline text): {key}.evaluation.data = {path!r} is a relative path, "
                "and an inline policy has no directory to resolve it against (a pipeline pod "
                "has no checkout): give the data as the step's eval_data input (a Dataset), "
                "an absolute path in the image, or use policy_path for a policy file in the "
                "image (relative paths resolve beside it)"
            )


def run(argv: Sequence[str]) -> int:
    """Run one step; returns the process's exit code."""
    opts, items = _parse(argv)
    argv_ = command_line(items, opts.get("extra-args", ""))
    command = argv_[0]
    _tracking()
    _identity(opts)
    with tempfile.TemporaryDirectory(prefix="mlgate-kfp-") as tmp:
        argv_ = _named_data(argv_, Path(tmp))
        policy = opts.get("policy-text", "")
        if policy.strip():
            if "--eval-data" not in argv_:  # the eval_data input replaces evaluation.data
                _no_relative_paths(policy)
            path = Path(tmp) / "mlgate.toml"
            path.write_text(policy, encoding="utf-8")
            argv_ += ["--policy", str(path)]
        outputs: dict[str, str] = {}
        report = ""
        if command in GATED:
            github_output = Path(tmp) / "github-output"
            summary = Path(tmp) / "summary.md"
            os.environ["GITHUB_OUTPUT"] = str(github_output)
            os.environ["GITHUB_STEP_SUMMARY"] = str(summary)
            code, _ = _run_mlgate(argv_)
            outputs = _read_github_outputs(github_output)
            report = summary.read_text(encoding="utf-8") if summary.exists() else ""
        elif command == "register":
            code, printed = _run_mlgate([*argv_, "--json"])
            if code == 0:
                data = json.loads(printed)
                outputs = {"version": str(data.get("version", "")), "outcome": "registered"}
                report = _md_register(data)
        elif command == "export":
            code, printed = _run_mlgate(argv_)
            if code == 0:
                _write(opts.get("manifests"), printed)
                outputs = {"outcome": "exported"}
                report = f"### mlgate export\n\n```yaml\n{printed}```\n"
        else:
            raise StepError(
                f"{command!r} is not a pipeline step (register, {', '.join(GATED)}, export)"
            )
    rejected = code == EXIT_REJECTED and command in ("check", "promote")
    allowed = rejected and not _bool(opts.get("fail-on-reject", "true"))
    decision = outputs.get("decision") or ("rejected" if rejected else "none")
    _write(opts.get("decision"), decision)
    _write(opts.get("version"), outputs.get("version", ""))
    _write(opts.get("outcome"), outputs.get("outcome") or ("rejected" if rejected else "error"))
    _write(opts.get("exit-code"), str(code))
    _write(opts.get("report"), report or _failure_report(command, code))
    write_executor_output(opts.get("executor-input", ""), opts.get("executor-output", ""))
    if allowed:
        print(
            f"mlgate-kfp: the gate rejected {command} (exit 3); fail_on_reject is false, so the "
            "step succeeds with decision=rejected",
            file=sys.stderr,
        )
        return 0
    return code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(list(sys.argv[1:] if argv is None else argv))
    except StepError as exc:
        print(f"mlgate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
