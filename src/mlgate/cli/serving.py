"""``mlgate serve``: the champion/challenger server, or one local model directory."""

from __future__ import annotations

import click

from mlgate import api
from mlgate.cli import _options as opt
from mlgate.cli._output import echo_json


def _refuse_contradictions(
    model: str | None,
    manifest: str | None,
    model_dir: str | None,
    model_version: str | None,
    expect_digest: str | None,
    pin: str | None,
    weight: float | None,
    mode: str | None,
) -> None:
    """Options that cannot go together (``mlgate.api.serve`` checks them too, for Python)."""
    if manifest is not None and (model_dir or model_version or expect_digest):
        raise click.UsageError("--manifest already names the directory, version and digest")
    if manifest is None and not model:
        raise click.UsageError("missing argument MODEL (or give --manifest)")
    if manifest is None and model_dir is None and (model_version or expect_digest):
        raise click.UsageError("--model-version and --expect-digest need --model-dir")
    if (model_dir is not None or manifest is not None) and (pin or weight is not None or mode):
        raise click.UsageError(
            "--model-dir serves one directory: --pin, --weight, --mode do not apply"
        )


@click.command()
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
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=click.IntRange(min=0),
    envvar="MLGATE_THREADS",
    help="Native threads (OpenMP, BLAS) per pool in each scoring thread; 0 leaves the "
    "libraries' defaults (usually one per core) [env: MLGATE_THREADS].",
)
@click.option(
    "--workers",
    "-w",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    envvar="MLGATE_WORKERS",
    help="Server processes sharing the port; /metrics sums them all [env: MLGATE_WORKERS].",
)
@click.pass_context
def serve(
    ctx: click.Context,
    model: str | None,
    host: str,
    port: int,
    poll_interval: float,
    weight: float | None,
    mode: api.TrafficMode | None,
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
    threads: int,
    workers: int,
) -> None:
    """Serve the champion and challenger of MODEL, following the registry.

    Speaks MLflow's scoring protocol on /invocations and the Open Inference Protocol (V2, as
    KServe and MLServer) under /v2; /ping, /health, /version, /metrics.
    With --model-dir, serves one local model directory with no registry (the image entrypoint).

    The port is bound first: one already in use exits 2 before anything loads. A model, --pin
    version or champion alias that does not exist exits 2 at the first poll (unless --wait);
    an unreachable tracking server is waited for.
    """
    _refuse_contradictions(
        model, manifest, model_dir, model_version, expect_digest, pin, weight, mode
    )
    loaded = api.serve(
        model,
        host=host,
        port=port,
        poll=poll_interval,
        weight=weight,
        mode=mode,
        pin=pin,
        champion_alias=champion_alias,
        challenger_alias=challenger_alias,
        max_body_mb=max_body_mb,
        timeout=timeout,
        no_verify=no_verify,
        model_dir=model_dir,
        model_version=model_version,
        expect_digest=expect_digest,
        manifest=manifest,
        wait=wait,
        check=check_only,
        threads=threads,
        workers=workers,
        store=opt.tracking_uri(ctx),
    )
    if loaded is not None:  # --check
        echo_json(loaded.to_dict())


COMMANDS = (serve,)
