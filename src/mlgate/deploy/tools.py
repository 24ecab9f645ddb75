"""``mlgate build --tools-image``: mlgate and ``mlflow-skinny`` in an image, with no model.

The image pipeline steps run mlgate's commands in (``mlgate.kfp``'s Kubeflow components:
register, check, promote, rollback, export). It is a runtime like a model image's (``mlgate
build``): the same two-stage Dockerfile and layers, in the same order — base, Python
environment, the pinned requirements, mlgate — built, keyed (``mlgate-runtime:<key>``) and
reused the same way, with a final stage made for the command line
(:class:`~mlgate.deploy.recipe.ToolsRuntime`): no entrypoint, no serving port or health check,
and a build-time check that mlgate's commands import with no network.

Requirements are mlgate's own (``recipe.TOOLS_REQUIREMENTS``) pinned to this machine's versions,
and ``mlflow-skinny`` at this machine's MLflow version (``full_mlflow`` keeps ``mlflow``).
Evaluating a model of another flavor than scikit-learn needs that flavor's package in the image:
build ``FROM`` the tools image.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgate._version import __version__
from mlgate.deploy import recipe
from mlgate.errors import UsageError
from mlgate.keys import Labels

if TYPE_CHECKING:
    from mlgate.deploy.engine import Engine

log = logging.getLogger("mlgate.build")

#: ``mlgate-tools:<mlgate version>``: what the Kubeflow components run by default.
TOOLS_REPOSITORY = "mlgate-tools"
TOOLS_TAG = "{version}"
DEFAULT_IMAGE = f"{TOOLS_REPOSITORY}:{__version__}"


@dataclass(frozen=True)
class ToolsResult:
    """What ``mlgate build --tools-image`` made. ``image`` is ``REPOSITORY:TAG``."""

    image: str
    image_id: str
    base_image: str
    python: str
    offline: bool
    runtime_image: str
    runtime_reused: bool
    steps: int  # of the runtime's Dockerfile (0 when the runtime was reused)
    cached_steps: int
    size_bytes: int
    seconds: float
    requirements: str
    pushed_digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tools_requirements(*, full_mlflow: bool = False) -> str:
    """The tools image's requirements: mlgate's, pinned to the versions installed here."""
    try:
        mlflow_version = version("mlflow")
    except PackageNotFoundError:
        mlflow_version = version("mlflow-skinny")
    pins: dict[str, str] = {}
    for dist in recipe.TOOLS_REQUIREMENTS:
        try:
            pins[dist] = version(dist)
        except PackageNotFoundError:  # e.g. tomli on Python >= 3.11
            continue
    return recipe.merge_requirements(f"mlflow=={mlflow_version}\n", pins, full_mlflow=full_mlflow)


def tools_tag(template: str) -> str:
    """The tag from a template with ``{version}`` (mlgate's version) and ``{model}`` (tools)."""
    return recipe.image_tag(template, "tools", __version__)


def build_tools_image(
    *,
    repository: str = TOOLS_REPOSITORY,
    tag: str = TOOLS_TAG,
    base_image: str | None = None,
    python: str | None = None,
    offline: bool = False,
    wheelhouse: str | os.PathLike[str] | None = None,
    allow_download: bool = True,
    ca_bundle: str | os.PathLike[str] | None = None,
    platform: str | None = None,
    network_mode: str | None = None,
    full_mlflow: bool = False,
    nocache: bool = False,
    push: bool = False,
    docker_host: str | None = None,
    engine: Engine | None = None,
) -> ToolsResult:
    """Build (and optionally push) the tools image; the options mean what they mean for
    :func:`mlgate.deploy.build.build`. ``python`` defaults to this machine's Python, whose
    versions of the requirements are pinned.

    Raises:
        UsageError: bad options. DockerError: engine unreachable, build, check or push failed.
    """
    from mlgate.deploy import wheelhouse as wheels
    from mlgate.deploy.build import _ensure_runtime, _runtime_context
    from mlgate.deploy.engine import Engine as DockerEngine

    started = time.monotonic()
    repository = recipe.check_repository(repository)
    image_tag = tools_tag(tag)
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise UsageError(f"--ca-bundle {ca_bundle}: no such file")
    offline = offline or wheelhouse is not None
    py = python or f"{sys.version_info[0]}.{sys.version_info[1]}"
    base = base_image or recipe.default_base_image(py)
    requirements = tools_requirements(full_mlflow=full_mlflow)
    runtime = recipe.ToolsRuntime(
        base_image=base,
        python=py,
        offline=offline,
        ca_bundle=ca_bundle is not None and not offline,
        labels=_labels(base),
    )
    log.info("building the tools image %s:%s (mlgate %s)", repository, image_tag, __version__)
    owned = engine is None
    engine = engine or DockerEngine(docker_host)
    work = Path(tempfile.mkdtemp(prefix="mlgate-tools-"))
    try:
        wheel_dir = None
        if offline:
            log.info("resolving wheels on the host for Python %s", py)
            wheel_dir = wheels.resolve(
                requirements,
                python=py,
                platform=platform,
                wheelhouse=wheelhouse,
                allow_download=allow_download,
            )
        context = _runtime_context(
            work / "runtime.tar", runtime, requirements, wheel_dir, ca_bundle
        )
        net = "none" if offline else (network_mode or os.environ.get("MLGATE_DOCKER_NETWORK"))
        runtime_ref, reused, steps, cached = _ensure_runtime(
            engine,
            context,
            runtime,
            platform=platform,
            network_mode=net or None,
            nocache=nocache,
        )
        image_id = engine.inspect(runtime_ref).id
        engine.tag(image_id, repository, image_tag)
        image = f"{repository}:{image_tag}"
        pushed = None
        if push:
            log.info("pushing %s", image)
            pushed = engine.push(repository, image_tag)
        return ToolsResult(
            image=image,
            image_id=image_id,
            base_image=base,
            python=py,
            offline=offline,
            runtime_image=runtime_ref,
            runtime_reused=reused,
            steps=steps,
            cached_steps=cached,
            size_bytes=engine.inspect(image_id).size,
            seconds=round(time.monotonic() - started, 2),
            requirements=requirements,
            pushed_digest=pushed,
        )
    finally:
        if owned:
            engine.close()
        shutil.rmtree(work, ignore_errors=True)


def _labels(base: str) -> dict[str, str]:
    return {
        "org.opencontainers.image.title": TOOLS_REPOSITORY,
        "org.opencontainers.image.version": __version__,
        "org.opencontainers.image.base.name": base,
        "org.opencontainers.image.vendor": "mlgate",
        Labels.MLGATE_VERSION: __version__,
        Labels.IMAGE_KIND: "tools",
    }
