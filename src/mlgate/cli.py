"""The ``mlgate`` command: parse, call one library function, render, choose the exit code.

Nothing here decides anything; the library does. Exit codes come from the error classes in
:mod:`mlgate.errors` (see ``mlgate --help``). Heavy imports (MLflow, pandas) happen inside the
commands so that ``mlgate --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from mlgate import __version__
from mlgate.errors import EXIT_CODES, EXIT_ERROR, EXIT_USAGE, MlgateError

EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _pairs(values: Sequence[str], what: str, *, numeric: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=what)
        if numeric:
            try:
                out[key] = float(value)
            except ValueError:
                raise click.BadParameter(
                    f"{item!r}: {value!r} is not a number", param_hint=what
                ) from None
        else:
            out[key] = value
    return out


def _store(ctx: click.Context) -> Any:
    from mlgate._mlflow import Store

    return Store(ctx.obj.get("tracking_uri") if ctx.obj else None)


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlgate")
@click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    help="MLflow tracking server URI [env: MLFLOW_TRACKING_URI; default: SQLite in $MLGATE_HOME "
    "or the working directory].",
)
@click.pass_context
def cli(ctx: click.Context, tracking_uri: str | None) -> None:
    """Lineage, promotion gates and guarded alias moves for MLflow models."""
    ctx.ensure_object(dict)
    ctx.obj["tracking_uri"] = tracking_uri or None


# --------------------------------------------------------------------------- fingerprint
@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of one line per path.")
@click.option("--no-cache", is_flag=True, help="Re-hash every file even if unchanged.")
def fingerprint(paths: tuple[str, ...], as_json: bool, no_cache: bool) -> None:
    """Print the full-content BLAKE3 fingerprint of files and directories.

    A file's value equals what `b3sum` prints; a directory's covers every file's relative path
    and content. Unchanged files are served from a stat cache.
    """
    from mlgate.fingerprint import fingerprint_path

    results = [fingerprint_path(p, use_cache=not no_cache) for p in paths]
    if as_json:
        _echo_json([r.to_dict() for r in results])
        return
    for r in results:
        extra = f"  ({r.files} files)" if r.kind == "directory" else ""
        click.echo(f"{r.digest}  {r.source}{extra}")


# --------------------------------------------------------------------------- register / show
@cli.command()
@click.option("--name", "-n", required=True, help="Registered model name.")
@click.option("--run", "run_id", help="Run that logged the model (uses runs:/RUN/ARTIFACT_PATH).")
@click.option("--artifact-path", default="model", show_default=True, help="Model path in the run.")
@click.option("--model-uri", help="URI of a logged model (runs:/..., models:/m-...).")
@click.option("--train", "train_path", type=click.Path(), help="Training data file or directory.")
@click.option("--eval", "eval_path", type=click.Path(), help="Evaluation data file or directory.")
@click.option("--metric", "metrics", multiple=True, metavar="KEY=NUMBER", help="Metric to record.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Param to record.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Extra version tag.")
@click.option("--json", "as_json", is_flag=True, help="Print the recorded lineage as JSON.")
@click.pass_context
def register(
    ctx: click.Context,
    name: str,
    run_id: str | None,
    artifact_path: str,
    model_uri: str | None,
    train_path: str | None,
    eval_path: str | None,
    metrics: tuple[str, ...],
    params: tuple[str, ...],
    tags: tuple[str, ...],
    as_json: bool,
) -> None:
    """Register a model already logged to MLflow, recording its lineage.

    Give either --run (with --artifact-path) or --model-uri. The data paths are fingerprinted
    in full and recorded with the git state, environment and artifact digest.
    """
    from mlgate.registration import register as do_register

    if bool(run_id) == bool(model_uri):
        raise click.UsageError("give exactly one of --run or --model-uri")
    uri = model_uri or f"runs:/{run_id}/{artifact_path}"
    reg = do_register(
        uri,
        name=name,
        run_id=run_id,
        train_data=train_path,
        eval_data=eval_path,
        metrics=_pairs(metrics, "--metric", numeric=True),
        params=_pairs(params, "--param"),
        tags=_pairs(tags, "--tag"),
        store=_store(ctx),
    )
    if as_json:
        _echo_json(reg.lineage.to_dict())
    else:
        click.echo(f"registered {reg.name} version {reg.number}")
        from mlgate.report import render_lineage

        click.echo(render_lineage(reg.lineage))


@cli.command()
@click.argument("ref", metavar="MODEL[@ALIAS|/VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show the lineage recorded for a model version (newest when no version is given)."""
    from mlgate.registration import show as do_show
    from mlgate.report import render_lineage

    info = do_show(ref, store=_store(ctx))
    if as_json:
        _echo_json(info.to_dict())
    else:
        click.echo(render_lineage(info))


# --------------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (tests call this directly)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="mlgate", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("mlgate: aborted", err=True)
        return EXIT_ERROR
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except MlgateError as exc:
        from mlgate.config import redact

        click.echo(f"mlgate: error: {redact(str(exc))}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("mlgate: interrupted", err=True)
        return 130
    except Exception as exc:
        if os.environ.get("MLGATE_DEBUG"):
            raise
        from mlgate.config import redact

        click.echo(
            f"mlgate: unexpected error: {type(exc).__name__}: {redact(str(exc))} "
            "(set MLGATE_DEBUG=1 for a traceback)",
            err=True,
        )
        return EXIT_ERROR
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
