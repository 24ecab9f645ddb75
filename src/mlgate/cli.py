"""The ``mlgate`` command: parse, call one library function, render, choose the exit code.

Nothing here decides anything; the library does. Exit codes come from the error classes in
:mod:`mlgate.errors` (see ``mlgate --help``). Heavy imports (MLflow, pandas) happen inside the
commands so that ``mlgate --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from mlgate._version import __version__
from mlgate.errors import EXIT_CODES, EXIT_ERROR, EXIT_USAGE, MlgateError

EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


def _echo_json(data: Any) -> None:
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


@contextlib.contextmanager
def _progress_on_stderr(name: str, *, quiet: bool) -> Iterator[None]:
    """Print what logger ``name`` logs at INFO (a command's progress) on stderr, bare."""
    import logging

    class Stderr(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            click.echo(record.getMessage(), err=True)

    logger, handler = logging.getLogger(name), Stderr(logging.WARNING if quiet else logging.INFO)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _store(ctx: click.Context) -> Any:
    from mlgate.registry.store import Store

    return Store(ctx.obj.get("tracking_uri") if ctx.obj else None)


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
def _policy_option(f: Any) -> Any:
    return click.option(
        "--policy",
        type=click.Path(dir_okay=False),
        help="Policy file (mlgate.toml or pyproject.toml) [default: search upward from here].",
    )(f)


@cli.command()
@click.option("--name", "-n", required=True, help="Registered model name.")
@click.option("--run", "run_id", help="Run that logged the model (uses runs:/RUN/ARTIFACT_PATH).")
@click.option(
    "--artifact-path",
    default="model",
    show_default=True,
    help="Name the run logged the model under (log_model(name=...)).",
)
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
    in full and recorded with the git state, environment and artifact digest. The git state is
    the training run's (its mlflow.source.git.* tags); only when the run has none is the current
    checkout recorded, labelled "checkout at registration time".
    """
    from mlgate.versioning.registration import register as do_register

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
@click.argument("ref", metavar="MODEL/VERSION|MODEL@ALIAS")
@click.option("--train", "train_path", type=click.Path(), help="Training data file or directory.")
@click.option("--eval", "eval_path", type=click.Path(), help="Evaluation data file or directory.")
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite a different recorded artifact digest or data fingerprint (ledgered).",
)
@click.option("--reason", "-m", default="", help="Why; recorded in the ledger.")
@_policy_option
@click.option("--json", "as_json", is_flag=True, help="Print the lineage and what changed as JSON.")
@click.pass_context
def attach(
    ctx: click.Context,
    ref: str,
    train_path: str | None,
    eval_path: str | None,
    force: bool,
    reason: str,
    policy: str | None,
    as_json: bool,
) -> None:
    """Add mlgate's lineage to a version registered with plain MLflow (no new version).

    Records the artifact digest (from the version's artifacts), data fingerprints, the
    environment the model declares and the git state from its run's tags. Running it again
    changes nothing; a different recorded digest is refused (exit 2) unless --force.
    """
    from mlgate.report import render_lineage
    from mlgate.versioning.registration import attach as do_attach

    done = do_attach(
        ref,
        train_data=train_path,
        eval_data=eval_path,
        force=force,
        reason=reason,
        policy=policy,
        store=_store(ctx),
    )
    if as_json:
        payload = {"changed": sorted(done.written), "replaced": done.replaced}
        _echo_json({**payload, "lineage": done.lineage.to_dict()})
        return
    v = done.version
    if done.changed:
        click.echo(f"attached lineage to {v.name} version {v.version} ({len(done.written)} tags)")
        for key, (old, new) in done.replaced.items():
            click.echo(f"  forced: {key} {old} -> {new}")
    else:
        click.echo(f"{v.name} version {v.version} already has this lineage: nothing changed")
    click.echo(render_lineage(done.lineage))


@cli.command()
@click.argument("ref", metavar="MODEL[@ALIAS|/VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show the lineage recorded for a model version (newest when no version is given)."""
    from mlgate.report import render_lineage
    from mlgate.versioning.registration import show as do_show

    info = do_show(ref, store=_store(ctx))
    if as_json:
        _echo_json(info.to_dict())
    else:
        click.echo(render_lineage(info))


# --------------------------------------------------------------------------- gates and moves
def _format_options(f: Any) -> Any:
    f = click.option("--markdown", is_flag=True, help="Print a Markdown report.")(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(f)
    return f


def _one_format(as_json: bool, markdown: bool, quiet: bool = False) -> None:
    """Refuse output flags that contradict each other (before anything is contacted)."""
    flags = {"--json": as_json, "--markdown": markdown, "--quiet": quiet}
    chosen = [flag for flag, on in flags.items() if on]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} cannot be combined: choose one")


def _target_option(f: Any) -> Any:
    return click.option(
        "--target",
        help="Target column of the evaluation data [default: the policy's evaluation.target].",
    )(f)


def _github_record(kind: str, values: Any) -> None:
    """Note what this command already wrote for GitHub Actions, so that ``main`` only adds what
    is missing when the command ends (``ctx.obj`` is the dict ``main`` passed in)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.obj, dict):
        ctx.obj.setdefault(kind, set()).update(values)


def _github_outputs(values: dict[str, str]) -> None:
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


def _step_summary(markdown: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        _github_record("github_summary", ["written"])
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")


def _emit_decision(
    decision: Any, event: Any, as_json: bool, markdown: bool, *, quiet: bool = False
) -> None:
    from mlgate.report import markdown_decision, render_decision, render_event

    md = markdown_decision(decision, event)
    _step_summary(md)
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
    _github_outputs(outputs)
    if as_json:
        data = decision.to_dict()
        if event is not None:
            data["event"] = event.to_dict()
        _echo_json(data)
    elif markdown:
        click.echo(md)
    elif not quiet:  # the error line says which gates failed
        click.echo(render_decision(decision))
        if event is not None:
            click.echo(render_event(event))


def _expected(value: str | None) -> Any:
    from mlgate.promotion.workflow import CURRENT

    if value is None:
        return CURRENT
    if value.lower() in ("none", "unset"):
        return None
    if not value.isdigit():
        raise click.BadParameter(f"{value!r}: a version number, or 'none'", param_hint="--expected")
    return value


@cli.command()
@click.argument("model", metavar="MODEL[/VERSION|@ALIAS]")
@click.option("--version", "-v", "version", help="Candidate version number or alias.")
@click.option("--to", "to", required=True, help="Target alias, e.g. champion or challenger.")
@click.option(
    "--eval-data",
    type=click.Path(dir_okay=False),
    help="Score candidate and champion on this file.",
)
@_target_option
@_policy_option
@_format_options
@click.pass_context
def check(
    ctx: click.Context,
    model: str,
    version: str | None,
    to: str,
    eval_data: str | None,
    target: str | None,
    policy: str | None,
    as_json: bool,
    markdown: bool,
) -> None:
    """Run the promotion gates for a version and report. Never changes anything.

    Exit 0 when every gate passes, 3 when one rejects.
    """
    from mlgate.errors import GateRejected
    from mlgate.promotion.workflow import check as do_check

    _one_format(as_json, markdown)
    decision = do_check(
        model,
        version,
        to=to,
        policy=policy,
        eval_data=eval_data,
        target=target,
        store=_store(ctx),
    )
    _emit_decision(decision, None, as_json, markdown)
    if not decision.passed:
        raise GateRejected(decision.summary(), decision=decision)


@cli.command()
@click.argument("model", metavar="MODEL[/VERSION|@ALIAS]")
@click.option("--version", "-v", "version", help="Candidate version number or alias.")
@click.option("--to", "to", required=True, help="Target alias, e.g. champion or challenger.")
@click.option(
    "--expected",
    help="Move only if the alias points at this version ('none': unset) "
    "[default: where it pointed when the check started].",
)
@click.option("--reason", "-m", default="", help="Why; recorded in the ledger.")
@click.option(
    "--eval-data",
    type=click.Path(dir_okay=False),
    help="Score candidate and champion on this file.",
)
@_target_option
@click.option("--lease-ttl", type=float, help="Seconds the promotion lease may be held.")
@click.option(
    "--dry-run", is_flag=True, help="Run the gates and show what would happen; change nothing."
)
@click.option(
    "--quiet", "-q", is_flag=True, help="Print one summary line instead of the gate table."
)
@_policy_option
@_format_options
@click.pass_context
def promote(
    ctx: click.Context,
    model: str,
    version: str | None,
    to: str,
    expected: str | None,
    reason: str,
    eval_data: str | None,
    target: str | None,
    lease_ttl: float | None,
    dry_run: bool,
    quiet: bool,
    policy: str | None,
    as_json: bool,
    markdown: bool,
) -> None:
    """Check the gates, then move the alias to the version, guarded and recorded.

    The alias moves only if it still points where it did when the check started (or at
    --expected). Prints the gate table and the move (one line with --quiet). Exit 3 when a gate
    rejects, 4 on a conflict.
    """
    from mlgate.errors import GateRejected
    from mlgate.promotion.workflow import promote as do_promote

    _one_format(as_json, markdown, quiet)
    try:
        event = do_promote(
            model,
            version,
            to=to,
            expected=_expected(expected),
            reason=reason,
            policy=policy,
            eval_data=eval_data,
            target=target,
            dry_run=dry_run,
            lease_ttl=lease_ttl,
            store=_store(ctx),
        )
    except GateRejected as exc:
        if exc.decision is not None:
            _emit_decision(exc.decision, exc.event, as_json, markdown, quiet=quiet)
        raise
    _emit_event(event, as_json, markdown, gates=not quiet)


def _emit_event(event: Any, as_json: bool, markdown: bool, *, gates: bool = False) -> None:
    from mlgate.report import markdown_events, render_event, render_promotion

    md = markdown_events([event])
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
    _github_outputs(outputs)
    _step_summary(md)
    if as_json:
        _echo_json(event.to_dict())
    elif markdown:
        click.echo(markdown_events([event]))
    elif gates:
        click.echo(render_promotion(event))
    else:
        click.echo(render_event(event))


@cli.command()
@click.argument("model")
@click.option("--alias", help="Alias to roll back [default: the policy's champion alias].")
@click.option(
    "--version",
    "-v",
    "to_version",
    help="Version number to return to [default: the one before, per the ledger].",
)
@click.option(
    "--to",
    "old_to",
    hidden=True,
    help="Old spelling of --version (elsewhere --to names an alias).",
)
@click.option("--reason", "-m", default="", help="Why; recorded in the ledger.")
@click.option("--lease-ttl", type=float, help="Seconds the promotion lease may be held.")
@click.option(
    "--force",
    is_flag=True,
    help="Allow --version to name a version that never held the alias (no gates run).",
)
@click.option("--dry-run", is_flag=True, help="Show what would happen; change nothing.")
@_policy_option
@_format_options
@click.pass_context
def rollback(
    ctx: click.Context,
    model: str,
    alias: str | None,
    to_version: str | None,
    old_to: str | None,
    reason: str,
    lease_ttl: float | None,
    force: bool,
    dry_run: bool,
    policy: str | None,
    as_json: bool,
    markdown: bool,
) -> None:
    """Move the champion back to the version it held before (guarded, recorded).

    --version returns to a version the ledger shows holding the alias before; any other
    version needs `mlgate promote` (gates run), or --force.
    """
    from mlgate.promotion.workflow import rollback as do_rollback

    _one_format(as_json, markdown)
    if old_to is not None:
        if to_version is not None and to_version != old_to:
            raise click.UsageError("--to is the old spelling of --version: give one of them")
        to_version = old_to
    event = do_rollback(
        model,
        alias=alias,
        to_version=to_version,
        reason=reason,
        policy=policy,
        dry_run=dry_run,
        lease_ttl=lease_ttl,
        force=force,
        store=_store(ctx),
    )
    _emit_event(event, as_json, markdown)


@cli.command()
@click.argument("model")
@click.option("--alias", help="Only events of this alias.")
@click.option("--limit", "-n", type=click.IntRange(min=1), help="At most this many events.")
@_policy_option
@_format_options
@click.pass_context
def history(
    ctx: click.Context,
    model: str,
    alias: str | None,
    limit: int | None,
    policy: str | None,
    as_json: bool,
    markdown: bool,
) -> None:
    """List the ledger's events for a model, newest first."""
    from mlgate.promotion.workflow import history as do_history
    from mlgate.report import markdown_events, render_events

    _one_format(as_json, markdown)
    events = do_history(model, alias=alias, limit=limit, policy=policy, store=_store(ctx))
    if as_json:
        _echo_json([e.to_dict() for e in events])
    elif markdown:
        click.echo(markdown_events(events))
    else:
        click.echo(render_events(events))


@cli.command()
@click.argument("model")
@_policy_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.pass_context
def status(ctx: click.Context, model: str, policy: str | None, as_json: bool) -> None:
    """Show a model's aliases, their versions, and when and why each last moved."""
    from mlgate.promotion.workflow import status as do_status
    from mlgate.report import render_status

    st = do_status(model, policy=policy, store=_store(ctx))
    if as_json:
        _echo_json(st.to_dict())
    else:
        click.echo(render_status(st))


# --------------------------------------------------------------------------- serving
@cli.command()
@click.argument("model", required=False)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="MLGATE_HOST",
    help="Address to listen on [env: MLGATE_HOST].",
)
@click.option(
    "--port",
    "-p",
    default=8080,
    show_default=True,
    type=click.IntRange(1, 65535),
    envvar="MLGATE_PORT",
    help="Port [env: MLGATE_PORT].",
)
@click.option(
    "--poll",
    "poll_interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between registry polls.",
)
@click.option(
    "--weight", type=click.FloatRange(0, 100), help="Override the registry: challenger percent."
)
@click.option(
    "--mode", type=click.Choice(["split", "shadow"]), help="Override the registry: traffic mode."
)
@click.option("--pin", help="Serve only this version; do not follow the aliases.")
@click.option(
    "--champion-alias", default="champion", show_default=True, help="Alias of the champion."
)
@click.option(
    "--challenger-alias", default="challenger", show_default=True, help="Alias of the challenger."
)
@click.option(
    "--max-body-mb",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Largest accepted request body.",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds a request may take to score.",
)
@click.option("--no-verify", is_flag=True, help="Do not check artifact digests before serving.")
@click.option(
    "--model-dir",
    type=click.Path(exists=True, file_okay=False),
    help="Serve this local MLflow model directory (what `mlgate build` puts in an "
    "image) instead of following the registry.",
)
@click.option("--model-version", help="With --model-dir: the version it is (shown in /version).")
@click.option(
    "--expect-digest",
    help="With --model-dir: refuse to serve unless the directory's artifact digest is this.",
)
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False),
    help="Serve what an image manifest names (model, version, directory, digest); "
    "the default command of an `mlgate build` image.",
)
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Load (and verify) the model, print what would serve, and exit.",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Keep polling while the model, --pin version or champion alias does not exist yet.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    model: str,
    host: str,
    port: int,
    poll_interval: float,
    weight: float | None,
    mode: str | None,
    pin: str | None,
    champion_alias: str,
    challenger_alias: str,
    max_body_mb: float,
    timeout: float,
    no_verify: bool,
    model_dir: str | None,
    model_version: str | None,
    expect_digest: str | None,
    manifest: str | None,
    check_only: bool,
    wait: bool,
) -> None:
    """Serve the champion and challenger of MODEL, following the registry.

    Speaks MLflow's scoring protocol on /invocations and the Open Inference Protocol (V2, as
    KServe and MLServer) under /v2; /ping, /health, /version, /metrics.
    With --model-dir, serves one local model directory with no registry (the image entrypoint).

    The port is bound first: one already in use exits 2 before anything loads. A model, --pin
    version or champion alias that does not exist exits 2 at the first poll (unless --wait);
    an unreachable tracking server is waited for.
    """
    from mlgate.serving.routing import Traffic
    from mlgate.serving.server import ServeConfig, listen
    from mlgate.serving.server import check as check_config
    from mlgate.serving.server import serve as run

    if manifest is not None:
        from mlgate.deploy.recipe import read_manifest

        if model_dir or model_version or expect_digest:
            raise click.UsageError("--manifest already names the directory, version and digest")
        found = read_manifest(manifest)
        model = model or found["model"]
        model_dir, model_version = found["model_dir"], found["version"]
        expect_digest = found["artifact_digest"]
        if model_dir and not Path(model_dir).is_dir():
            raise click.UsageError(
                f"--manifest {manifest}: model_dir {model_dir}: no such directory"
            )
    if not model:
        raise click.UsageError("missing argument MODEL (or give --manifest)")
    if model_dir is None and (model_version or expect_digest):
        raise click.UsageError("--model-version and --expect-digest need --model-dir")
    if model_dir is not None and (pin or weight is not None or mode):
        raise click.UsageError(
            "--model-dir serves one directory: --pin, --weight, --mode do not apply"
        )
    traffic = None
    if weight is not None or mode is not None:
        traffic = Traffic(mode=mode or "split", challenger_weight=weight or 0.0)
    config = ServeConfig(
        model=model,
        tracking_uri=ctx.obj.get("tracking_uri"),
        champion_alias=champion_alias,
        challenger_alias=challenger_alias,
        poll_interval=poll_interval,
        traffic=traffic,
        pin=model_version if model_dir else pin,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        timeout=timeout,
        verify_digest=not no_verify,
        model_dir=model_dir,
        expect_digest=expect_digest,
        wait=wait,
    )
    if check_only:
        runtime = check_config(config)
        _echo_json(
            {"model": model, "version": runtime.version, "verified": runtime.verified, "ok": True}
        )
        return
    sock = listen(host, port)
    click.echo(f"mlgate serving {model} on http://{host}:{port} (Ctrl-C to stop)", err=True)
    run(config, sock=sock)


# --------------------------------------------------------------------------- build
@cli.command()
@click.argument("ref", metavar="MODEL@ALIAS|MODEL/VERSION")
@click.option(
    "--repo",
    "repository",
    default="mlgate",
    show_default=True,
    help="Image repository, e.g. registry.example.com:5000/team/models.",
)
@click.option(
    "--tag",
    "tag",
    default="{model}-v{version}",
    show_default=True,
    help="Image tag template ({model}, {version}).",
)
@click.option(
    "--base-image",
    envvar="MLGATE_BASE_IMAGE",
    help="Base image with python3 and venv [env: MLGATE_BASE_IMAGE; default: "
    "python:X.Y-slim for the model's Python].",
)
@click.option(
    "--python-version", "python", help="The image's Python (MAJOR.MINOR) [default: the model's]."
)
@click.option(
    "--offline",
    is_flag=True,
    help="Download every wheel on the host first; the build runs with no network.",
)
@click.option(
    "--wheelhouse",
    type=click.Path(file_okay=False),
    help="Use (and fill) this directory of wheels; implies --offline.",
)
@click.option(
    "--no-download",
    is_flag=True,
    help="With --wheelhouse: never download; fail if a wheel is missing (air-gapped).",
)
@click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False),
    help="Extra CA bundle pip trusts during an online build (TLS interception). "
    "Not left in the image.",
)
@click.option("--platform", help="Target platform, e.g. linux/amd64 or linux/arm64.")
@click.option(
    "--network",
    "network_mode",
    envvar="MLGATE_DOCKER_NETWORK",
    help="Network for online builds, e.g. host [env: MLGATE_DOCKER_NETWORK].",
)
@click.option(
    "--full-mlflow", is_flag=True, help="Install the full mlflow package, not mlflow-skinny."
)
@click.option(
    "--push", is_flag=True, help="Push the image after building (the repo names the registry)."
)
@click.option("--no-cache", "nocache", is_flag=True, help="Build every layer anew.")
@click.option("--no-verify", is_flag=True, help="Build even without a recorded artifact digest.")
@click.option("--no-check", is_flag=True, help="Skip running the image once before tagging it.")
@click.option("--quiet", "-q", is_flag=True, help="No build progress on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def build(
    ctx: click.Context,
    ref: str,
    repository: str,
    tag: str,
    base_image: str | None,
    python: str | None,
    offline: bool,
    wheelhouse: str | None,
    no_download: bool,
    ca_bundle: str | None,
    platform: str | None,
    network_mode: str | None,
    full_mlflow: bool,
    push: bool,
    nocache: bool,
    no_verify: bool,
    no_check: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Build a Docker image that serves one model version.

    Resolves an alias once, verifies the artifacts against the digest recorded at registration
    (exit 3 if they changed), builds with layers ordered base, Python environment,
    requirements, model (a new model version with the same requirements rebuilds only the
    model layer), checks the model loads inside the image, then tags REPO:TAG and records the
    image on the model version (tag mlgate.image). The image runs as a non-root user, has a
    HEALTHCHECK, listens on 8080 ($MLGATE_PORT) and carries OCI labels with the lineage.

    \b
    Run it:   docker run -p 8080:8080 mlgate:MODEL-vN
    Follow the registry instead of the baked-in version:
              docker run -e MLFLOW_TRACKING_URI=... mlgate:MODEL-vN serve MODEL --host 0.0.0.0
    """
    from mlgate.deploy.build import build as run_build

    if no_download and wheelhouse is None:
        raise click.UsageError("--no-download needs --wheelhouse")
    with _progress_on_stderr("mlgate.build", quiet=quiet):
        result = run_build(
            ref,
            store=_store(ctx),
            repository=repository,
            tag=tag,
            base_image=base_image,
            python=python,
            offline=offline,
            wheelhouse=wheelhouse,
            allow_download=not no_download,
            ca_bundle=ca_bundle,
            platform=platform,
            network_mode=network_mode,
            full_mlflow=full_mlflow,
            verify=not no_verify,
            check=not no_check,
            nocache=nocache,
            push=push,
        )
    if as_json:
        _echo_json(result.to_dict())
        return
    size = result.size_bytes / 1e6
    reuse = (
        "runtime reused"
        if result.runtime_reused
        else f"runtime built, {result.cached_steps}/{result.steps} steps from cache"
    )
    pushed = f", pushed {result.pushed_digest}" if result.pushed_digest else ""
    click.echo(
        f"built {result.image} ({result.image_id[:19]}, {size:.0f} MB, {reuse}, "
        f"{result.seconds:.1f} s{pushed})"
    )


@cli.command()
@click.argument("model")
@click.option(
    "--weight",
    "-w",
    required=True,
    type=click.FloatRange(0, 100),
    help="Percent of requests the challenger answers.",
)
@click.option(
    "--mode",
    default="split",
    show_default=True,
    type=click.Choice(["split", "shadow"]),
    help="split: challenger answers its share; shadow: it only scores copies.",
)
@click.option("--reason", "-m", default="", help="Why; recorded in the ledger.")
@click.option(
    "--force", is_flag=True, help="Set a weight above 0 even though no challenger is set."
)
@_policy_option
@click.option("--json", "as_json", is_flag=True, help="Print the ledger event as JSON.")
@click.pass_context
def traffic(
    ctx: click.Context,
    model: str,
    weight: float,
    mode: str,
    reason: str,
    force: bool,
    policy: str | None,
    as_json: bool,
) -> None:
    """Set how much traffic the challenger gets; every `mlgate serve` follows within a poll.

    A weight above 0 with no challenger set is refused (exit 2) unless --force.
    """
    from mlgate.promotion.traffic import set_traffic
    from mlgate.promotion.workflow import resolve_policy

    pol = resolve_policy(policy, required=False)
    mp = pol.for_model(model)
    event = set_traffic(
        _store(ctx),
        model,
        weight=weight,
        mode=mode,
        reason=reason,
        ledger_experiment=pol.ledger_experiment,
        alias=mp.challenger_alias,
        force=force,
    )
    if as_json:
        _echo_json(event.to_dict())
    else:
        click.echo(f"{model}: {event.message}")


@cli.command()
@click.argument("model")
@click.option(
    "--endpoint",
    "-e",
    "endpoints",
    multiple=True,
    metavar="URL",
    help="A serving endpoint whose /metrics to read (repeat for replicas).",
)
@click.option(
    "--steps",
    default="5,25,50,100",
    show_default=True,
    help="Challenger percentages, ending at 100.",
)
@click.option(
    "--min-requests",
    default=200,
    show_default=True,
    type=click.IntRange(min=1),
    help="Challenger requests each step needs before it is judged.",
)
@click.option(
    "--min-seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Shortest time a step is held.",
)
@click.option(
    "--max-seconds",
    default=900.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="A step without enough traffic by then rolls back.",
)
@click.option(
    "--max-error-delta",
    default=0.01,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Largest allowed excess of the challenger's error rate over the champion's.",
)
@click.option(
    "--max-latency-ratio",
    default=1.5,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Largest allowed challenger/champion mean-latency ratio.",
)
@click.option(
    "--poll",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between metric reads.",
)
@click.option("--status", "show_status", is_flag=True, help="Show the rollout state and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --status: print the state as JSON.")
@click.option(
    "--abort", "do_abort", is_flag=True, help="Stop the running rollout: challenger to 0%."
)
@click.option("--reason", "-m", default="", help="Why (for --abort); recorded in the ledger.")
@_policy_option
@click.pass_context
def rollout(
    ctx: click.Context,
    model: str,
    endpoints: tuple[str, ...],
    steps: str,
    min_requests: int,
    min_seconds: float,
    max_seconds: float,
    max_error_delta: float,
    max_latency_ratio: float,
    poll: float,
    show_status: bool,
    as_json: bool,
    do_abort: bool,
    reason: str,
    policy: str | None,
) -> None:
    """Shift traffic to the challenger step by step on live metrics; promote or roll back.

    Resumes a rollout interrupted half-way (its state is in the registry). Exit 3 when a step
    breaches its bounds and the rollout rolls back.
    """
    from mlgate.promotion import rollout as ro

    if as_json and not show_status:
        raise click.UsageError("--json applies to --status only")
    store = _store(ctx)
    if show_status:
        from mlgate.report import render_rollout

        state = ro.read_state(store, model)
        if as_json:
            _echo_json(None if state is None else json.loads(state.to_json()))
        else:
            click.echo(render_rollout(model, state))
        return
    if do_abort:
        state = ro.abort(model, reason=reason, policy=policy, store=store)
        click.echo(f"rollout of {model} version {state.challenger} aborted; challenger traffic 0%")
        return
    try:
        plan = [float(x) for x in steps.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(
            f"{steps!r}: comma-separated numbers", param_hint="--steps"
        ) from None
    bounds = ro.Bounds(
        min_requests=min_requests,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        max_error_rate_delta=max_error_delta,
        max_latency_ratio=max_latency_ratio,
    )
    result = ro.rollout(
        model,
        list(endpoints),
        steps=plan,
        bounds=bounds,
        policy=policy,
        store=store,
        poll=poll,
        progress=lambda m: click.echo(m, err=True),
    )
    click.echo(result.message)


# --------------------------------------------------------------------------- export
EXPORT_TARGETS = ("k8s", "kserve", "seldon")  # mlgate.deploy.export.TARGETS (tested equal)


def _storage_map(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for item in values:
        prefix, sep, uri = item.partition("=")
        if not sep or not prefix or not uri:
            raise click.BadParameter(f"{item!r}: expected PREFIX=URI", param_hint="--storage-map")
        out.append((prefix, uri))
    return tuple(out)


@cli.command("export")
@click.argument("target", type=click.Choice(EXPORT_TARGETS))
@click.argument("model")
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(file_okay=False),
    help="Write one YAML file per resource into this directory, removing files of earlier "
    "exports of MODEL that the registry no longer needs [default: stdout].",
)
@click.option("--namespace", "-n", default="default", show_default=True, help="Namespace.")
@click.option("--name", help="Resource name [default: the model name, made DNS-safe].")
@click.option(
    "--replicas",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Replicas (the autoscaler's minimum).",
)
@click.option(
    "--max-replicas",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="The autoscaler's maximum.",
)
@click.option("--cpu", default="250m", show_default=True, help="CPU request.")
@click.option("--memory", default="512Mi", show_default=True, help="Memory request.")
@click.option("--cpu-limit", default="1", show_default=True, help="CPU limit ('' for none).")
@click.option("--memory-limit", default="1Gi", show_default=True, help="Memory limit.")
@click.option(
    "--image",
    help="k8s: the image that runs `mlgate serve` [default: the "
    "champion's image recorded by `mlgate build`].",
)
@click.option(
    "--image-repository",
    help="Replace the repository of recorded image references, "
    "e.g. registry.example.com/team/models.",
)
@click.option("--service-account", help="Service account of the pods.")
@click.option(
    "--tracking-secret",
    default="mlflow-tracking",
    show_default=True,
    help="Secret whose keys (MLFLOW_TRACKING_URI, ..._USERNAME, ..._PASSWORD) become "
    "the server's environment.",
)
@click.option(
    "--pinned",
    is_flag=True,
    help="k8s: one Deployment per served version (its baked-in "
    "model) instead of replicas that follow the registry.",
)
@click.option(
    "--mode",
    "kserve_mode",
    default="image",
    show_default=True,
    type=click.Choice(["image", "native"]),
    help="kserve: run the mlgate image, or KServe's MLflow runtime on the artifacts.",
)
@click.option(
    "--storage-map",
    "storage_map",
    multiple=True,
    metavar="PREFIX=URI",
    help="Rewrite artifact locations for the cluster, e.g. "
    "mlflow-artifacts:/=s3://bucket/mlartifacts/ (repeatable; first match wins).",
)
@_policy_option
@click.pass_context
def export(
    ctx: click.Context,
    target: str,
    model: str,
    output: str | None,
    namespace: str,
    name: str | None,
    replicas: int,
    max_replicas: int,
    cpu: str,
    memory: str,
    cpu_limit: str,
    memory_limit: str,
    image: str | None,
    image_repository: str | None,
    service_account: str | None,
    tracking_secret: str,
    pinned: bool,
    kserve_mode: str,
    storage_map: tuple[str, ...],
    policy: str | None,
) -> None:
    """Print Kubernetes, KServe or Seldon manifests for MODEL from the registry's state.

    Reads the registry once (champion, challenger, traffic weight and mode, the images `mlgate
    build` recorded, artifact locations). The same state always gives the same YAML, so the
    output can be committed to a GitOps repository.

    \b
    k8s      Deployment (replicas follow the registry), Service, HPA, PodDisruptionBudget
    kserve   InferenceService; the challenger is the canary at its weight
    seldon   a Model per served version and an Experiment with their weights
    """
    from mlgate.deploy.export import ExportOptions
    from mlgate.deploy.export import export as do_export
    from mlgate.promotion.workflow import resolve_policy

    mp = resolve_policy(policy, required=False).for_model(model)
    options = ExportOptions(
        namespace=namespace,
        name=name,
        replicas=replicas,
        max_replicas=max_replicas,
        cpu=cpu,
        memory=memory,
        cpu_limit=cpu_limit or None,
        memory_limit=memory_limit,
        image=image,
        image_repository=image_repository,
        service_account=service_account,
        tracking_secret=tracking_secret,
        pinned=pinned,
        kserve_mode=kserve_mode,
        storage_map=_storage_map(storage_map),
        champion_alias=mp.champion_alias,
        challenger_alias=mp.challenger_alias,
    )
    result = do_export(target, model, options=options, store=_store(ctx))
    for note in result.notes:
        click.echo(f"mlgate: {note}", err=True)
    if output is None:
        click.echo(result.yaml(), nl=False)
        return
    written, removed = result.write(output)
    for path in written:
        click.echo(str(path))
    for path in removed:
        click.echo(f"removed {path} (no longer in the registry's state)")


# --------------------------------------------------------------------------- entry point
def _quiet_mlflow() -> None:
    """Keep stdout for mlgate's own output (JSON must parse): MLflow prints run URLs there and
    logs INFO lines for every registration. MLGATE_DEBUG=1 keeps MLflow's chatter."""
    if os.environ.get("MLGATE_DEBUG"):
        return
    import logging

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.getLogger("mlflow").setLevel(logging.WARNING)


#: Commands that set their GitHub step outputs on every exit, failures included.
GITHUB_COMMANDS = ("check", "promote", "rollback")


def _finish_github_step(
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
            _step_summary(report)
    version = (event.to_version if event is not None else None) or (
        decision.version if decision is not None else ""
    )
    values = {"decision": "none", "outcome": outcome, "version": version or "", "report": report}
    values = {k: v for k, v in values.items() if k not in written}
    _github_outputs({**values, "exit-code": str(code)})


def _run(args: list[str], state: dict[str, Any]) -> tuple[int, str, BaseException | None]:
    """Run the CLI; return the exit code, the one-line error shown (if any) and the error."""
    try:
        cli.main(args=args, prog_name="mlgate", standalone_mode=False, obj=state)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code), "", None
    except click.exceptions.Abort as exc:
        click.echo("mlgate: aborted", err=True)
        return EXIT_ERROR, "aborted", exc
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE, exc.format_message(), exc
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
    code, message, exc = _run(args, state)
    command = next((a for a in args if a in cli.commands), None)
    _finish_github_step(command, state, code, message, exc)
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
