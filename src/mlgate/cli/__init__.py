"""The ``mlgate`` command: parse, call one :mod:`mlgate.api` function, render, choose the exit code.

Nothing here decides anything; the library does. Every command parses its options, makes one
call of :mod:`mlgate.api` and renders what it returns (with :mod:`mlgate.report`); :func:`main`
is the one place that turns an error into its exit code (from the classes in
:mod:`mlgate.errors`, see ``mlgate --help``). Heavy imports (MLflow, pandas) happen inside the
api calls, so that ``mlgate --help`` stays fast.

* :mod:`mlgate.cli.lineage` — ``fingerprint``, ``register``, ``attach``, ``show``.
* :mod:`mlgate.cli.promotion` — ``check``, ``promote``, ``rollback``, ``history``, ``status``,
  ``traffic``, ``rollout``.
* :mod:`mlgate.cli.serving` — ``serve``.
* :mod:`mlgate.cli.deploy` — ``build``, ``export``.
* :mod:`mlgate.cli._options` — shared options and the parsing of option values.
* :mod:`mlgate.cli._output` — JSON, reports, GitHub Actions outputs, progress on stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from mlgate._version import __version__
from mlgate.cli import _output, deploy, lineage, promotion, serving
from mlgate.cli.deploy import EXPORT_TARGETS
from mlgate.errors import EXIT_CODES, EXIT_ERROR, EXIT_USAGE, MlgateError

__all__ = ["EXPORT_TARGETS", "cli", "main"]

EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlgate")
@click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    help="MLflow tracking server URI [env: MLFLOW_TRACKING_URI; default: mlflow.db in "
    "$MLGATE_HOME, else beside the nearest policy file, else here; refused in CI unless "
    "MLGATE_ALLOW_EMBEDDED=1].",
)
@click.pass_context
def cli(ctx: click.Context, tracking_uri: str | None) -> None:
    """Lineage, promotion gates and guarded alias moves for MLflow models."""
    ctx.ensure_object(dict)
    if tracking_uri is not None and not tracking_uri.strip():
        if ctx.get_parameter_source("tracking_uri") == click.core.ParameterSource.ENVIRONMENT:
            from mlgate.config import explicit_tracking_uri

            explicit_tracking_uri()  # raises: the variable is set but empty
        raise click.BadParameter("is empty: give a tracking URI", param_hint="--tracking-uri")
    ctx.obj["tracking_uri"] = tracking_uri.strip() if tracking_uri else None


for _area in (lineage, promotion, serving, deploy):
    for _command in _area.COMMANDS:
        cli.add_command(_command)


def _quiet_mlflow() -> None:
    """Keep stdout for mlgate's own output (JSON must parse): MLflow prints run URLs there and
    logs INFO lines for every registration. MLGATE_DEBUG=1 keeps MLflow's chatter."""
    if os.environ.get("MLGATE_DEBUG"):
        return
    import logging

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def usage_line(exc: click.ClickException) -> str:
    """A usage error in one line (bad input is one line and exit 2, whatever the command):
    click's message, then where the command's usage is, e.g. ``(see 'mlgate export --help')``."""
    from mlgate.config import redact

    message = redact(" ".join(exc.format_message().split()))  # a value may hold credentials
    if isinstance(exc, click.UsageError):
        path = exc.ctx.command_path if exc.ctx is not None else "mlgate"
        message += f" (see '{path} --help')"
    return message


def _run(args: list[str], state: dict[str, Any]) -> tuple[int, str, BaseException | None]:
    """Run the CLI; return the exit code, the one-line error shown (if any) and the error."""
    try:
        cli.main(args=args, prog_name="mlgate", standalone_mode=False, obj=state)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code), "", None
    except click.exceptions.Abort as exc:
        click.echo("mlgate: aborted", err=True)
        return EXIT_ERROR, "aborted", exc
    except click.exceptions.NoArgsIsHelpError as exc:  # `mlgate` alone: the help
        exc.show()
        return EXIT_USAGE, "", exc
    except click.ClickException as exc:
        message = usage_line(exc)
        click.echo(f"mlgate: error: {message}", err=True)
        return EXIT_USAGE, message, exc
    except MlgateError as exc:
        from mlgate.config import redact

        message = redact(str(exc))
        click.echo(f"mlgate: error: {message}", err=True)
        return exc.exit_code, message, exc
    except KeyboardInterrupt as exc:
        click.echo("mlgate: interrupted", err=True)
        return 130, "interrupted", exc
    except Exception as exc:
        if os.environ.get("MLGATE_DEBUG"):
            raise
        from mlgate.config import redact

        message = f"unexpected error: {type(exc).__name__}: {redact(str(exc))}"
        click.echo(f"mlgate: {message} (set MLGATE_DEBUG=1 for a traceback)", err=True)
        return EXIT_ERROR, message, exc
    return 0, "", None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (tests call this directly)."""
    args = list(sys.argv[1:] if argv is None else argv)
    _quiet_mlflow()
    state: dict[str, Any] = {}
    with _output.progress_on_stderr(state):
        code, message, exc = _run(args, state)
    command = next((a for a in args if a in cli.commands), None)
    _output.finish_github_step(command, state, code, message, exc)
    return code
