"""Commands about what a version is made of: ``fingerprint``, ``register``, ``attach``, ``show``."""

from __future__ import annotations

import click

from mlgate import api
from mlgate.cli._options import pairs, policy_option, tracking_uri
from mlgate.cli._output import echo_json

# register and attach take the same data options (named as the API's train_data/eval_data too)
_train_data = click.option(
    "--train",
    "--train-data",
    "train_path",
    type=click.Path(),
    help="Training data file or directory.",
)
_eval_data = click.option(
    "--eval",
    "--eval-data",
    "eval_path",
    type=click.Path(),
    help="Evaluation data file or directory.",
)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of one line per path.")
@click.option("--no-cache", is_flag=True, help="Re-hash every file even if unchanged.")
def fingerprint(paths: tuple[str, ...], as_json: bool, no_cache: bool) -> None:
    """Print the full-content BLAKE3 fingerprint of files and directories.

    A file's value equals what `b3sum` prints; a directory's covers every file's relative path
    and content. Unchanged files are served from a stat cache.
    """
    results = [api.fingerprint(p, no_cache=no_cache) for p in paths]
    if as_json:
        echo_json([r.to_dict() for r in results])
        return
    for r in results:
        extra = f"  ({r.files} files)" if r.kind == "directory" else ""
        click.echo(f"{r.digest}  {r.source}{extra}")


@click.command()
@click.option("--name", "-n", required=True, help="Registered model name.")
@click.option("--run", "run_id", help="Run that logged the model (uses runs:/RUN/ARTIFACT_PATH).")
@click.option(
    "--artifact-path",
    default="model",
    show_default=True,
    help="Name the run logged the model under (log_model(name=...)).",
)
@click.option("--model-uri", help="URI of a logged model (runs:/..., models:/m-...).")
@_train_data
@_eval_data
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
    if bool(run_id) == bool(model_uri):
        raise click.UsageError("give exactly one of --run or --model-uri")
    reg = api.register(
        model_uri or f"runs:/{run_id}/{artifact_path}",
        name=name,
        run=run_id,
        train_data=train_path,
        eval_data=eval_path,
        metrics=pairs(metrics, "--metric", numeric=True),
        params=pairs(params, "--param"),
        tags=pairs(tags, "--tag"),
        store=tracking_uri(ctx),
    )
    if as_json:
        echo_json(reg.lineage.to_dict())
    else:
        click.echo(f"registered {reg.name} version {reg.number}")
        from mlgate.report import render_lineage

        click.echo(render_lineage(reg.lineage))


@click.command()
@click.argument("ref", metavar="MODEL/VERSION|MODEL@ALIAS")
@_train_data
@_eval_data
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite a different recorded artifact digest or data fingerprint (ledgered).",
)
@click.option("--reason", "-m", default="", help="Why; recorded in the ledger.")
@policy_option
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
    done = api.attach(
        ref,
        train_data=train_path,
        eval_data=eval_path,
        force=force,
        reason=reason,
        policy=policy,
        store=tracking_uri(ctx),
    )
    if as_json:
        payload = {"changed": sorted(done.written), "replaced": done.replaced}
        echo_json({**payload, "lineage": done.lineage.to_dict()})
        return
    v = done.version
    if done.changed:
        click.echo(f"attached lineage to {v.name} version {v.version} ({len(done.written)} tags)")
        for key, (old, new) in done.replaced.items():
            click.echo(f"  forced: {key} {old} -> {new}")
    else:
        click.echo(f"{v.name} version {v.version} already has this lineage: nothing changed")
    click.echo(f"(mlgate show {v.name}/{v.version} prints it)")


@click.command()
@click.argument("ref", metavar="MODEL[@ALIAS|/VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show the lineage recorded for a model version (newest when no version is given)."""
    from mlgate.report import render_lineage

    info = api.show(ref, store=tracking_uri(ctx))
    if as_json:
        echo_json(info.to_dict())
    else:
        click.echo(render_lineage(info))


COMMANDS = (fingerprint, register, attach, show)
