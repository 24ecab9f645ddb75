"""What the commands print: JSON, the decision and event reports, GitHub Actions step outputs and
summaries, and progress lines on stderr. Rendering itself is :mod:`mlgate.report`'s."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

#: Loggers whose records are a command's progress on stderr, one bare line each: an image build
#: (and the engine and pip under it), a rollout's steps, the server saying where it listens.
PROGRESS_LOGGERS = ("mlgate.build", "mlgate.rollout", "mlgate.serve.start")

#: Commands that set their GitHub step outputs on every exit, failures included.
GITHUB_COMMANDS = ("check", "promote", "rollback")


def echo_json(data: Any) -> None:
    click.echo(json.dumps(_strict(data), indent=2, sort_keys=True, default=str))


def _strict(value: Any) -> Any:
    """NaN and infinities as strings: bare ``NaN`` is not JSON, and strict parsers refuse it."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


# --------------------------------------------------------------------------- progress
class _Stderr(logging.Handler):
    """Prints each record's bare message on stderr (found when the record is emitted, so that
    whatever captures stderr at that moment gets it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # noqa: BLE001 - logging's contract: a handler never raises
            self.handleError(record)


@contextlib.contextmanager
def progress_on_stderr(state: dict[str, Any]) -> Iterator[None]:
    """While the command runs, print the progress loggers' INFO records (and anything worse) on
    stderr; afterwards leave the loggers as they were."""
    handler = _Stderr(logging.INFO)
    loggers = [logging.getLogger(name) for name in PROGRESS_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    state["progress_handler"] = handler
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def quiet_progress(quiet: bool = True) -> None:
    """``--quiet``: no progress lines (warnings still show)."""
    if not quiet:
        return
    ctx = click.get_current_context(silent=True)
    handler = ctx.obj.get("progress_handler") if ctx is not None and ctx.obj else None
    if handler is not None:
        handler.setLevel(logging.WARNING)


# --------------------------------------------------------------------------- GitHub Actions
def _github_record(kind: str, values: Any) -> None:
    """Note what this command already wrote for GitHub Actions, so that ``main`` only adds what
    is missing when the command ends (``ctx.obj`` is the dict ``main`` passed in)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.obj, dict):
        ctx.obj.setdefault(kind, set()).update(values)


def github_outputs(values: dict[str, str]) -> None:
    """Append step outputs for GitHub Actions when $GITHUB_OUTPUT is set (multi-line safe)."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    import uuid

    _github_record("github_outputs", values)
    with Path(path).open("a", encoding="utf-8") as fh:
        for key, value in values.items():
            if "\n" in value:
                delim = f"MLGATE_{uuid.uuid4().hex}"
                fh.write(f"{key}<<{delim}\n{value}\n{delim}\n")
            else:
                fh.write(f"{key}={value}\n")


def step_summary(markdown: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        _github_record("github_summary", ["written"])
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")


def finish_github_step(
    command: str | None, state: dict[str, Any], code: int, message: str, exc: BaseException | None
) -> None:
    """Fill in the step outputs (decision, outcome, version, report, exit-code) and the summary
    that ``command`` did not write, so a workflow can read them whatever the exit code."""
    if command not in GITHUB_COMMANDS or not os.environ.get("GITHUB_OUTPUT"):
        return
    written = state.get("github_outputs", set())
    event, decision = getattr(exc, "event", None), getattr(exc, "decision", None)
    by_code = {
        0: "none",
        3: "none" if command == "check" else "rejected",
        4: "conflict",
        5: "not_permitted",
    }  # ``check`` never moves anything
    outcome = event.outcome if event is not None else by_code.get(code, "error")
    report = ""
    if code:
        from mlgate.report import markdown_events

        report = f"### ❌ mlgate {command}: {outcome} (exit {code})\n\n{message}\n"
        if event is not None:
            report += "\n" + markdown_events([event])
        if not state.get("github_summary"):
            step_summary(report)
    version = (event.to_version if event is not None else None) or (
        decision.version if decision is not None else ""
    )
    values = {"decision": "none", "outcome": outcome, "version": version or "", "report": report}
    values = {k: v for k, v in values.items() if k not in written}
    github_outputs({**values, "exit-code": str(code)})


# --------------------------------------------------------------------------- decisions, events
def emit_decision(
    decision: Any, event: Any, as_json: bool, markdown: bool, *, quiet: bool = False
) -> None:
    from mlgate.report import markdown_decision, render_decision, render_event

    md = markdown_decision(decision, event)
    step_summary(md)
    outputs = {
        "decision": "passed" if decision.passed else "rejected",
        "model": decision.model,
        "version": decision.version,
        "alias": decision.alias,
        "champion": decision.champion_version or "",
        "report": md,
    }
    if event is not None:
        outputs["outcome"] = event.outcome
    github_outputs(outputs)
    if as_json:
        data = decision.to_dict()
        if event is not None:
            data["event"] = event.to_dict()
        echo_json(data)
    elif markdown:
        click.echo(md)
    elif not quiet:  # the error line says which gates failed
        click.echo(render_decision(decision))
        if event is not None:
            click.echo(render_event(event))


def emit_event(event: Any, as_json: bool, markdown: bool, *, gates: bool = False) -> None:
    from mlgate.report import markdown_promotion, render_event, render_promotion

    md = markdown_promotion(event)  # a passed promotion: its gate table, then the ledger row
    outputs = {
        "outcome": event.outcome,
        "model": event.model,
        "alias": event.alias,
        "version": event.to_version or "",
        "previous": event.from_version or "",
        "report": md,
    }
    if event.kind == "promote" and event.outcome in ("moved", "dry_run"):
        outputs["decision"] = "passed"  # the gates ran and passed ("unchanged" runs none)
    github_outputs(outputs)
    step_summary(md)
    if as_json:
        echo_json(event.to_dict())
    elif markdown:
        click.echo(md)
    elif gates:
        click.echo(render_promotion(event))
    else:
        click.echo(render_event(event))
