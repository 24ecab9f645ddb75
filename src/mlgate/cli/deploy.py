"""Commands that take a version to where it runs: ``build`` (a Docker image) and ``export``
(Kubernetes, KServe and Seldon manifests)."""

from __future__ import annotations

from typing import Any

import click

from mlgate import api
from mlgate.cli import _options as opt
from mlgate.cli._output import echo_json, quiet_progress

EXPORT_TARGETS = ("k8s", "kserve", "seldon")  # mlgate.deploy.export.TARGETS (tested equal)


def _built(result: Any) -> str:
    """One line: the image, its size, what was reused, how long it took (and the push)."""
    size = result.size_bytes / 1e6
    reuse = (
        "runtime reused"
        if result.runtime_reused
        else f"runtime built, {result.cached_steps}/{result.steps} steps from cache"
    )
    pushed = f", pushed {result.pushed_digest}" if result.pushed_digest else ""
    return (
        f"built {result.image} ({result.image_id[:19]}, {size:.0f} MB, {reuse}, "
        f"{result.seconds:.1f} s{pushed})"
    )


def _emit_export(result: Any, output: str | None) -> None:
    """Notes on stderr; the YAML on stdout, or one file per resource in ``output``."""
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


@click.command()
@click.argument("ref", metavar="MODEL@ALIAS|MODEL/VERSION", required=False)
@click.option(
    "--tools-image",
    is_flag=True,
    help="Build the image pipeline steps run mlgate in (mlgate and mlflow-skinny, no model; "
    "default mlgate-tools:MLGATE_VERSION) instead of a model's image.",
)
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
    ref: str | None,
    tools_image: bool,
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
    if no_download and wheelhouse is None:
        raise click.UsageError("--no-download needs --wheelhouse")
    quiet_progress(quiet)
    if tools_image:
        made = api.build_tools_image(**opt.tools_image(ctx))
        if as_json:
            echo_json(made.to_dict())
        else:
            click.echo(_built(made))
        return
    if ref is None:  # the message click gives for a missing argument
        raise click.UsageError("Missing argument 'MODEL@ALIAS|MODEL/VERSION'.", ctx=ctx)
    result = api.build(
        ref,
        repo=repository,
        tag=tag,
        base_image=base_image,
        python_version=python,
        offline=offline,
        wheelhouse=wheelhouse,
        no_download=no_download,
        ca_bundle=ca_bundle,
        platform=platform,
        network=network_mode,
        full_mlflow=full_mlflow,
        no_verify=no_verify,
        no_check=no_check,
        no_cache=nocache,
        push=push,
        store=opt.tracking_uri(ctx),
    )
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(_built(result))


@click.command("export")
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
    "--deployment-mode",
    default="Knative",
    show_default=True,
    type=click.Choice(["Knative", "Serverless"]),
    help="kserve: the serving.kserve.io/deploymentMode every export of the InferenceService "
    "carries (KServe refuses a change): Knative for KServe 0.16 and later, Serverless before.",
)
@click.option(
    "--stage",
    type=click.Choice(["champion", "canary"]),
    help="kserve: only the champion (roll it out first), or the canary at its weight "
    "(then) [default: what the registry says].",
)
@click.option(
    "--storage-map",
    "storage_map",
    multiple=True,
    metavar="PREFIX=URI",
    help="Rewrite artifact locations for the cluster, e.g. "
    "mlflow-artifacts:/=s3://bucket/mlartifacts/ (repeatable; first match wins).",
)
@opt.policy_option
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
    deployment_mode: str,
    stage: str | None,
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
             (--stage champion first on a new cluster: KServe needs it rolled out)
    seldon   Models named by role (clients call MODEL's name across promotions)
             and, with challenger traffic, an Experiment with the weights
    """
    result = api.export(
        target,
        model,
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
        mode=kserve_mode,
        deployment_mode=deployment_mode,
        stage=stage,
        storage_map=opt.storage_map(storage_map),
        policy=policy,
        store=opt.tracking_uri(ctx),
    )
    _emit_export(result, output)


COMMANDS = (build, export)
