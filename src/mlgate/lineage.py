"""Where a model came from: git state, environment, who ran it, and from which CI run.

Everything here reads the local machine only (git, the environment, ``os``); nothing talks to
MLflow. The tag names mlgate writes on a model version are defined here as well, so that writing
(``registration``) and reading (``show``, gates) agree.
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import json
import os
import platform
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgate import config
from mlgate.keys import TAG_PREFIX, Tags

NO_GIT = "none"


#: Where a version's git state was read (``mlgate.git.source``).
GIT_FROM_CHECKOUT = "checkout"  # the checkout that logged the model, in the same call
GIT_FROM_RUN = "run"  # the training run's own mlflow.source.git.* tags
GIT_FROM_REGISTRATION = "checkout-at-registration"  # fallback: not necessarily the training code
GIT_SOURCE_TEXT = {
    GIT_FROM_CHECKOUT: "the checkout that logged the model",
    GIT_FROM_RUN: "the training run's MLflow git tags",
    GIT_FROM_REGISTRATION: "checkout at registration time, not the training run",
}

#: The tags MLflow writes on a run started from a file in a git repository.
RUN_GIT_COMMIT = "mlflow.source.git.commit"
RUN_GIT_BRANCH = "mlflow.source.git.branch"
RUN_GIT_REPO = "mlflow.source.git.repoURL"


@dataclass(frozen=True)
class GitState:
    """The git state of the code that trained a model."""

    commit: str
    branch: str | None = None
    dirty: bool | None = None
    remote: str | None = None

    @property
    def present(self) -> bool:
        return self.commit != NO_GIT


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip()


def git_state(path: str | os.PathLike[str] | None = None) -> GitState:
    """Commit, branch, dirty flag and remote of the repository containing ``path`` (default cwd).

    Outside a repository (or without git installed) the commit is ``"none"``. Untracked files that
    git does not ignore make the tree dirty: they can change what training did.
    """
    cwd = Path(path) if path else Path.cwd()
    if cwd.is_file():
        cwd = cwd.parent
    commit = _git(["rev-parse", "--verify", "HEAD"], cwd)
    if not commit:
        return GitState(commit=NO_GIT)
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    status = _git(["status", "--porcelain"], cwd)
    remote = _git(["config", "--get", "remote.origin.url"], cwd)
    return GitState(
        commit=commit,
        branch=None if branch in (None, "HEAD") else branch,
        dirty=None if status is None else bool(status),
        remote=config.redact(remote) if remote else None,
    )


def git_from_run(tags: dict[str, str]) -> GitState | None:
    """The git state MLflow recorded on a run (``mlflow.source.git.*``), None when it has none.

    MLflow does not record whether the tree was dirty, so ``dirty`` is unknown (None).
    """
    commit = (tags.get(RUN_GIT_COMMIT) or "").strip()
    if not commit:
        return None
    remote = tags.get(RUN_GIT_REPO) or None
    return GitState(
        commit=commit,
        branch=tags.get(RUN_GIT_BRANCH) or None,
        dirty=None,
        remote=config.redact(remote) if remote else None,
    )


#: The variables that name who acts and the run doing it, in the order they are read. mlgate's
#: own come first (a pipeline step or a script sets them), then the CI systems'.
ACTOR_VARS = (
    "MLGATE_ACTOR",
    "GITHUB_ACTOR",
    "GITLAB_USER_LOGIN",
    "BUILDKITE_BUILD_CREATOR",
    "BUILD_USER_ID",
)
RUN_URL_VARS = ("MLGATE_RUN_URL", "CI_JOB_URL", "BUILDKITE_BUILD_URL", "BUILD_URL")

#: Who is acting when a caller said so (:func:`acting_as`); None: work it out (:func:`actor`).
_ACTING_AS: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mlgate_actor", default=None
)


@contextlib.contextmanager
def acting_as(name: str | None) -> Iterator[None]:
    """Record ``name`` as the actor of everything done inside the block (None: no change)."""
    if name is None:
        yield
        return
    token = _ACTING_AS.set(name)
    try:
        yield
    finally:
        _ACTING_AS.reset(token)


def actor() -> str:
    """Who is acting: whom :func:`acting_as` names, else the CI system's user when in CI, else
    the OS user."""
    named = _ACTING_AS.get()
    if named is not None:
        return named
    for var in ACTOR_VARS:
        value = os.environ.get(var)
        if value:
            return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def ci_run_url() -> str | None:
    """A link to the run doing this (``$MLGATE_RUN_URL``, else the CI system's), if any."""
    env = os.environ
    if env.get("MLGATE_RUN_URL"):
        return env["MLGATE_RUN_URL"]
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    for var in RUN_URL_VARS[1:]:
        if env.get(var):
            return env[var]
    return None


@dataclass(frozen=True)
class Environment:
    """The software environment a model was trained and logged in."""

    python: str
    platform: str
    packages: dict[str, str] = field(default_factory=dict)
    requirements_digest: str | None = None


def environment(model_dir: str | os.PathLike[str] | None = None) -> Environment:
    """Python version, platform, key package versions, and a hash of the model's requirements."""
    from importlib import metadata

    from mlgate.fingerprint import fingerprint_file

    packages: dict[str, str] = {}
    for dist in _KEY_PACKAGES:
        try:
            packages[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    req_digest = None
    if model_dir is not None:
        req = Path(model_dir) / "requirements.txt"
        if req.is_file():
            req_digest = fingerprint_file(req, use_cache=False).digest
    return Environment(
        python=platform.python_version(),
        platform=f"{platform.system()}-{platform.machine()}",
        packages=packages,
        requirements_digest=req_digest,
    )


_KEY_PACKAGES = ("mlflow", "scikit-learn", "pandas", "numpy", "mlgate")


def model_environment(model_dir: str | os.PathLike[str]) -> Environment:
    """The environment a logged model declares (its ``python_env.yaml`` and
    ``requirements.txt``), for a version whose training environment was not recorded."""
    import re

    from mlgate.fingerprint import fingerprint_file

    root = Path(model_dir)
    python = ""
    env_file = root / "python_env.yaml"
    if env_file.is_file():
        found = re.search(r"^python:\s*['\"]?([\d.]+)", env_file.read_text("utf-8"), re.M)
        python = found.group(1) if found else ""
    packages: dict[str, str] = {}
    req = root / "requirements.txt"
    if req.is_file():
        for line in req.read_text("utf-8").splitlines():
            name, sep, version = line.strip().partition("==")
            key = name.strip().lower().replace("_", "-")
            if sep and key in _KEY_PACKAGES:
                packages[key] = version.strip()
    return Environment(
        python=python,
        platform="",
        packages=packages,
        requirements_digest=fingerprint_file(req, use_cache=False).digest
        if req.is_file()
        else None,
    )


def compact_json(value: Any) -> str:
    """JSON with no spaces and sorted keys: how mlgate stores structured tags."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Lineage:
    """What mlgate recorded about one model version, read back from its tags."""

    name: str
    version: str
    run_id: str | None
    source: str
    aliases: tuple[str, ...]
    git: GitState
    data: dict[str, dict[str, str]]
    artifact_digest: str | None
    environment: dict[str, Any]
    metrics: dict[str, float]
    params: dict[str, str]
    registered_by: str | None
    registered_at: str | None
    ci_run_url: str | None
    other_tags: dict[str, str]
    image: dict[str, Any] | None = None  # what `mlgate build` recorded (mlgate.image)
    #: How the git state was read (one of ``GIT_SOURCE_TEXT``), None when not said.
    git_source: str | None = None
    #: Fields read from the MLflow run because mlgate recorded none ("git", "metrics",
    #: "params"); every other field is what mlgate recorded on the version.
    from_run: tuple[str, ...] = ()
    attached_by: str | None = None
    attached_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "source": self.source,
            "aliases": list(self.aliases),
            "git": {
                "commit": self.git.commit,
                "branch": self.git.branch,
                "dirty": self.git.dirty,
                "remote": self.git.remote,
                "source": self.git_source,
            },
            "from_run": list(self.from_run),
            "attached_by": self.attached_by,
            "attached_at": self.attached_at,
            "data": self.data,
            "artifact_digest": self.artifact_digest,
            "environment": self.environment,
            "metrics": self.metrics,
            "params": self.params,
            "registered_by": self.registered_by,
            "registered_at": self.registered_at,
            "ci_run_url": self.ci_run_url,
            "image": self.image,
            "tags": self.other_tags,
        }


def _loads(value: str | None) -> Any:
    if not value:
        return {}
    try:
        return json.loads(value)
    except ValueError:
        return {}


def lineage_from_tags(
    name: str,
    version: str,
    tags: dict[str, str],
    *,
    run_id: str | None = None,
    source: str = "",
    aliases: tuple[str, ...] = (),
) -> Lineage:
    """Rebuild a :class:`Lineage` from a model version's tags."""
    dirty_tag = tags.get(Tags.GIT_DIRTY)
    git = GitState(
        commit=tags.get(Tags.GIT_COMMIT, NO_GIT),
        branch=tags.get(Tags.GIT_BRANCH) or None,
        dirty=None if dirty_tag is None else dirty_tag == "true",
        remote=tags.get(Tags.GIT_REMOTE) or None,
    )
    data: dict[str, dict[str, str]] = {}
    for key, value in tags.items():
        if key.startswith("mlgate.data."):
            role, _, part = key[len("mlgate.data.") :].partition(".")
            data.setdefault(role, {})[part] = value
    env: dict[str, Any] = {
        "python": tags.get(Tags.ENV_PYTHON),
        "platform": tags.get(Tags.ENV_PLATFORM),
        "requirements": tags.get(Tags.ENV_REQUIREMENTS),
        "packages": _loads(tags.get(Tags.ENV_PACKAGES)),
    }
    metrics = {k: float(v) for k, v in _loads(tags.get(Tags.METRICS)).items()}
    params = {k: str(v) for k, v in _loads(tags.get(Tags.PARAMS)).items()}
    other = {k: v for k, v in tags.items() if not k.startswith(TAG_PREFIX)}
    image = _loads(tags.get(Tags.IMAGE)) if tags.get(Tags.IMAGE) else None
    return Lineage(
        name=name,
        version=version,
        run_id=run_id,
        source=source,
        aliases=aliases,
        git=git,
        data=data,
        artifact_digest=tags.get(Tags.ARTIFACT_DIGEST),
        environment=env,
        metrics=metrics,
        params=params,
        registered_by=tags.get(Tags.REGISTERED_BY),
        registered_at=tags.get(Tags.REGISTERED_AT),
        ci_run_url=tags.get(Tags.CI_RUN_URL),
        other_tags=other,
        image=image if isinstance(image, dict) and image else None,
        git_source=tags.get(Tags.GIT_SOURCE) or None,
        attached_by=tags.get(Tags.ATTACHED_BY),
        attached_at=tags.get(Tags.ATTACHED_AT),
    )


def with_run_facts(
    info: Lineage, run_tags: dict[str, str], metrics: dict[str, float], params: dict[str, str]
) -> Lineage:
    """``info`` completed with what MLflow recorded on the version's run, for every field mlgate
    did not record itself (a version registered with plain MLflow); ``from_run`` names them."""
    from dataclasses import replace

    filled: dict[str, Any] = {}
    if not info.git.present:
        git = git_from_run(run_tags)
        if git is not None:
            filled["git"] = git
            filled["git_source"] = GIT_FROM_RUN
    if not info.metrics and metrics:
        filled["metrics"] = dict(metrics)
    if not info.params and params:
        filled["params"] = dict(params)
    if not filled:
        return info
    names = tuple(k for k in ("git", "metrics", "params") if k in filled)
    return replace(info, from_run=names, **filled)
