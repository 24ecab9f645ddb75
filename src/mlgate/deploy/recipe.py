"""What goes into an image, decided without Docker or MLflow (pure, unit-tested).

An image is a *runtime* plus one *model layer*.

The runtime is built from a Dockerfile with two stages, so that downloaded wheels never reach it::

    FROM <base> AS env          the Python environment: a venv, then the pinned requirements
                                (from a wheelhouse in the build context when building offline)
    FROM <base>                 a non-root user, ENV/HEALTHCHECK/ENTRYPOINT/CMD, then COPY the
                                venv and mlgate

It depends only on the base image, the Python version, the requirements and mlgate, so every
version of a model with the same requirements shares it. The model layer — the model directory
and its manifest — is then added in one commit, with the version's labels (see ``ModelLayer``):
layers go base, Python environment, requirements, mlgate, model, and a new model version adds
exactly one layer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgate.errors import UsageError

#: Where things live inside the image.
PREFIX = "/opt/mlgate"
VENV = f"{PREFIX}/venv"
LIB = f"{PREFIX}/lib"
MODEL_DIR = f"{PREFIX}/model"
MANIFEST = f"{PREFIX}/image.json"
#: Build-stage only (never in the final image): wheels and the CA bundle.
STAGING = "/opt/mlgate-build"
UID = 10001
PORT = 8080

#: What mlgate's server needs beyond the model's own requirements (pinned to the host's versions).
SERVE_REQUIREMENTS = (
    "blake3",
    "click",
    "httptools",
    "msgspec",
    "numpy",
    "pandas",
    "requests",
    "starlette",
    "threadpoolctl",
    "uvicorn",
    "uvloop",
)

_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_TAG_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_REPO_RE = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


def normalize_name(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def python_minor(python_env_yaml: str | None, mlmodel_python: str | None = None) -> str:
    """``3.11`` from the model's ``python_env.yaml`` (``python: 3.11.7``), else its MLmodel."""
    for text in (python_env_yaml or "", f"python: {mlmodel_python}" if mlmodel_python else ""):
        m = re.search(r"^python:\s*['\"]?(\d+)\.(\d+)", text, re.MULTILINE)
        if m:
            return f"{m.group(1)}.{m.group(2)}"
    raise UsageError(
        "the model does not say which Python it was saved with (no python_env.yaml)",
        hint="pass --python-version",
    )


def default_base_image(python: str) -> str:
    """The public image MLflow itself would use for this Python: ``python:3.11-slim``."""
    return f"python:{python}-slim"


def merge_requirements(
    model_requirements: str,
    serve_pins: Mapping[str, str],
    *,
    full_mlflow: bool = False,
) -> str:
    """The image's requirements: the model's, plus what mlgate's server needs, one per line.

    The model's own lines win where both name a package. ``mlflow==X`` becomes
    ``mlflow-skinny==X`` (the same client and pyfunc loader without the tracking server, UI and
    their dependencies) unless ``full_mlflow``. Options (``-r``, ``--index-url``) are dropped:
    the build installs from one place, chosen by mlgate.
    """
    lines: dict[str, str] = {}
    for raw in model_requirements.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#") or line.startswith("-"):
            continue
        m = _NAME_RE.match(line)
        if not m:
            continue
        name = normalize_name(m.group(1).split("[", 1)[0])
        if name == "mlflow" and not full_mlflow:
            line = "mlflow-skinny" + line[len(m.group(1)) :]
            name = "mlflow-skinny"
        lines[name] = line
    for dist, version in serve_pins.items():
        lines.setdefault(normalize_name(dist), f"{dist}=={version}")
    return "".join(f"{lines[k]}\n" for k in sorted(lines))


def image_tag(template: str, model: str, version: str) -> str:
    """The tag part of ``repo:tag`` from a template such as ``{model}-v{version}``."""
    try:
        raw = template.format(model=model, version=version)
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(
            f"bad --tag template {template!r}: {exc}",
            hint="use {model} and {version}, e.g. '{model}-v{version}'",
        ) from None
    tag = _TAG_BAD.sub("-", raw).lstrip(".-")[:128]
    if not tag:
        raise UsageError(f"--tag template {template!r} gives an empty tag for {model}/{version}")
    return tag


def check_repository(repo: str) -> str:
    """A Docker repository name (``name``, ``registry:5000/team/name``); lower case."""
    if not _REPO_RE.match(repo):
        raise UsageError(
            f"bad image repository {repo!r}",
            hint="lower-case letters, digits and . _ - separators, "
            "optionally REGISTRY[:PORT]/ first",
        )
    return repo


def wheel_platforms(platform: str | None) -> list[str]:
    """pip ``--platform`` tags for a Docker platform (``linux/amd64``, ``linux/arm64``).

    manylinux wheels up to glibc 2.36 (Debian bookworm, the base of ``python:*-slim``).
    """
    arch = {
        None: "x86_64",
        "linux/amd64": "x86_64",
        "linux/x86_64": "x86_64",
        "linux/arm64": "aarch64",
        "linux/arm64/v8": "aarch64",
        "linux/aarch64": "aarch64",
    }.get(platform)
    if arch is None:
        raise UsageError(
            f"--platform {platform!r} is not supported for offline builds",
            hint="use linux/amd64 or linux/arm64",
        )
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(36, 16, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch == "x86_64":
        tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    return tags


@dataclass(frozen=True)
class Runtime:
    """The image without the model: base, Python environment, requirements, mlgate.

    Built with a Dockerfile (two stages, so downloaded wheels never reach the image) and reused
    by every model version with the same requirements.
    """

    base_image: str
    python: str
    offline: bool = False
    ca_bundle: bool = False
    port: int = PORT

    def dockerfile(self) -> str:
        want = tuple(int(p) for p in self.python.split("."))
        check = (
            f"import sys; want = {want}; have = sys.version_info[:2]; "
            "sys.exit(0 if have == want else "
            "'mlgate build: the base image has Python %d.%d but the model was saved with %d.%d; "
            "choose a matching --base-image' % (have + want))"
        )
        pip = [
            f"{VENV}/bin/pip",
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
        ]
        if self.offline:
            pip += ["--no-index", "--find-links", f"{STAGING}/wheels", "--only-binary=:all:"]
        if self.ca_bundle:
            pip += ["--cert", f"{STAGING}/ca-bundle.crt"]
        pip += ["-r", f"{PREFIX}/requirements.txt"]
        lines = [
            "# Generated by mlgate: the serving runtime (the model is added as the last layer).",
            "# Layers: base, Python environment, requirements, mlgate (most stable first).",
            f"FROM {self.base_image} AS env",
            f"RUN python3 -c {_sh(check)} \\",
            f"    && python3 -m venv {VENV}",
            f"COPY requirements.txt {PREFIX}/requirements.txt",
        ]
        if self.offline:
            lines.append(f"COPY wheels/ {STAGING}/wheels/")
        if self.ca_bundle:
            lines.append(f"COPY ca-bundle.crt {STAGING}/ca-bundle.crt")
        lines += [
            f"RUN {' '.join(pip)} \\",
            f"    && {VENV}/bin/pip freeze --all > {PREFIX}/requirements.lock",
            "",
            f"FROM {self.base_image}",
            f"RUN groupadd --system --gid {UID} mlgate \\",
            f"    && useradd --system --uid {UID} --gid {UID} --home-dir /home/mlgate "
            "--create-home --shell /usr/sbin/nologin mlgate",
            f"ENV PATH={VENV}/bin:/usr/local/bin:/usr/bin:/bin PYTHONPATH={LIB} "
            "PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/home/mlgate "
            f"MLGATE_HOST=0.0.0.0 MLGATE_PORT={self.port}",
            f"EXPOSE {self.port}",
            "HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 "
            f'CMD ["{VENV}/bin/python", "-m", "mlgate.serving.probe"]',
            f'ENTRYPOINT ["{VENV}/bin/python", "-m", "mlgate"]',
            f"USER {UID}:{UID}",
            f"COPY --from=env {PREFIX} {PREFIX}",
            f"COPY mlgate {LIB}/mlgate",
            f"CMD {json.dumps(SERVE_CMD)}",
        ]
        return "\n".join(lines) + "\n"


#: The image's default command: serve the baked-in model its manifest describes.
SERVE_CMD = ["serve", "--manifest", MANIFEST]


@dataclass(frozen=True)
class ModelLayer:
    """What one version adds on top of the runtime: the model, its manifest, CMD and labels."""

    model: str
    version: str
    digest: str | None
    labels: dict[str, str] = field(default_factory=dict)

    def manifest(self, run_id: str | None = None) -> dict[str, str | None]:
        """``/opt/mlgate/image.json``: what the image serves (read by ``serve --manifest``)."""
        return {
            "model": self.model,
            "version": self.version,
            "model_dir": MODEL_DIR,
            "artifact_digest": self.digest,
            "run_id": run_id,
        }

    def check_cmd(self) -> list[str]:
        """Run in the new layer's container before it is committed: load, verify, exit."""
        return [*SERVE_CMD, "--check"]

    def changes(self) -> list[str]:
        """Dockerfile instructions applied when the layer is committed (one commit, one layer)."""
        out = [f"CMD {json.dumps(SERVE_CMD)}"]
        if self.labels:
            out.append(
                "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(self.labels.items()))
            )
        return out


def read_manifest(path: str) -> dict[str, Any]:
    """Read an image manifest written by :meth:`Recipe.manifest`; names what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--manifest {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"--manifest {path}: not a JSON manifest ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--manifest {path}: expected a JSON object")
    for key in ("model", "version", "model_dir"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise UsageError(f"--manifest {path}: {key}: missing or not a string")
    digest = data.get("artifact_digest")
    if digest is not None and not isinstance(digest, str):
        raise UsageError(f"--manifest {path}: artifact_digest: not a string")
    return {k: data.get(k) for k in ("model", "version", "model_dir", "artifact_digest", "run_id")}


def _sh(text: str) -> str:
    """Quote for /bin/sh."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def labels(
    *,
    model: str,
    version: str,
    run_id: str | None,
    tags: Mapping[str, str],
    mlgate_version: str,
    base_image: str,
    created: str | None,
) -> dict[str, str]:
    """OCI labels plus ``io.mlgate.*`` labels from the version's lineage tags.

    Only what was recorded is labelled; nothing secret is (the git remote is stored redacted
    by registration).
    """
    from mlgate.keys import Labels, Tags

    out = {
        "org.opencontainers.image.title": model,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.base.name": base_image,
        "org.opencontainers.image.vendor": "mlgate",
        Labels.MODEL_NAME: model,
        Labels.MODEL_VERSION: version,
        Labels.MLGATE_VERSION: mlgate_version,
    }
    if created:
        out["org.opencontainers.image.created"] = created
    if run_id:
        out[Labels.RUN_ID] = run_id
    mapping = {
        Tags.GIT_COMMIT: (Labels.GIT_COMMIT, "org.opencontainers.image.revision"),
        Tags.GIT_DIRTY: (Labels.GIT_DIRTY,),
        Tags.GIT_REMOTE: ("org.opencontainers.image.source",),
        Tags.ARTIFACT_DIGEST: (Labels.ARTIFACT_DIGEST,),
        Tags.ENV_PYTHON: (Labels.ENV_PYTHON,),
    }
    for tag, names in mapping.items():
        value = tags.get(tag)
        if value:
            for name in names:
                out[name] = value
    for key, value in tags.items():
        data = Tags.parse_data(key)
        if data and data[1] in _LABELLED_DATA and value:
            out[Labels.data(*data)] = value
    return out


#: The parts of a data role's record that are labelled (not its schema or kind).
_LABELLED_DATA = ("fingerprint", "rows", "source")


# --------------------------------------------------------------------------- the tools image
#: What ``mlgate build --tools-image`` installs next to ``mlflow-skinny``: mlgate's own runtime
#: dependencies for the commands a pipeline step runs (register, check, promote, rollback,
#: export), including what evaluating a scikit-learn model needs. No server, no Docker SDK.
TOOLS_REQUIREMENTS = (
    "blake3",
    "click",
    "numpy",
    "pandas",
    "pyarrow",
    "pyyaml",
    "requests",
    "scikit-learn",
    "scipy",
    "skops",
    "tomli",
)
#: The tools image's default command (it has no entrypoint: a pipeline step names its own).
TOOLS_CMD = ["python", "-m", "mlgate", "--help"]
#: Checked while the tools image builds (no network): what the pipeline steps import.
TOOLS_CHECK = "import mlflow.pyfunc, sklearn, pandas, mlgate.cli, mlgate.kfp_step"


@dataclass(frozen=True)
class ToolsRuntime(Runtime):
    """The tools image: a :class:`Runtime` (the same stages and layers) made a command-line image.

    The final stage has no entrypoint (``kfp.local``'s Docker runner passes a step's command as
    arguments, so an entrypoint would swallow it), no serving port or health check, and checks at
    build time, with no network, that mlgate and what its commands import load. One Dockerfile:
    on a copying storage driver (vfs) every extra step would copy the whole image again.
    """

    labels: dict[str, str] = field(default_factory=dict)

    def dockerfile(self) -> str:
        serving = ("EXPOSE ", "HEALTHCHECK ", "ENTRYPOINT ", "CMD ")
        lines = [
            line
            for line in Runtime.dockerfile(self).splitlines()
            if not line.startswith(serving) and not line.startswith("# Generated by mlgate")
        ]
        lines[0] = "# Generated by mlgate: the tools image (mlgate and mlflow-skinny, no model)."
        lines += [
            f"RUN {VENV}/bin/python -c {_sh(TOOLS_CHECK)} && {VENV}/bin/python -m mlgate --version",
            f"CMD {json.dumps(TOOLS_CMD)}",
        ]
        if self.labels:
            lines.append(
                "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(self.labels.items()))
            )
        return "\n".join(lines) + "\n"
