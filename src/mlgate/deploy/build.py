"""``mlgate build``: one registered model version -> one checked, labelled pyfunc image.

1. Resolve ``MODEL@ALIAS`` to a version once; everything after uses that version only.
2. Download its artifacts and verify them against the digest recorded at registration
   (``IntegrityError``, exit 3, names both digests).
3. The runtime (base, Python environment, requirements, mlgate): a Dockerfile build from a
   normalised context (owner, mode, mtime), tagged ``mlgate-runtime:<key of its inputs>``. A
   runtime with the same key is reused as it is: a new version of a model with the same
   requirements builds nothing but its own layer.
4. The model layer: the model and its manifest are added to a container of the runtime, which
   runs ``mlgate serve --manifest ... --check`` with no network (the model must load and its
   digest verify *inside* the image), then committed with the version's labels. Only then is the
   image tagged ``REPO:TAG``: a failed build or check leaves nothing under the tag.
5. Optionally push; record the image on the model version (``mlgate.image`` tag).

Progress is logged at INFO on the ``mlgate.build`` logger (the CLI prints it on stderr). The
Docker engine and the runner of pip (offline builds) can be passed in.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgate._version import __version__
from mlgate.deploy import recipe
from mlgate.errors import UsageError
from mlgate.fingerprint import MLFLOW_DOWNLOAD_FILES, verify_model_artifacts
from mlgate.keys import Tags
from mlgate.lineage import compact_json
from mlgate.registry.refs import parse_ref, resolve
from mlgate.registry.store import Store, VersionRecord

if TYPE_CHECKING:
    from mlgate.deploy.engine import Engine
    from mlgate.deploy.wheelhouse import Runner
    from mlgate.promotion.ledger import BuildEvent

log = logging.getLogger("mlgate.build")

DEFAULT_REPOSITORY = "mlgate"
#: Runtimes (an image without a model) are tagged here by the key of what went into them.
RUNTIME_REPOSITORY = "mlgate-runtime"
DEFAULT_TAG = "{model}-v{version}"


@dataclass(frozen=True)
class BuildResult:
    """What ``mlgate build`` made. ``image`` is ``REPOSITORY:TAG``."""

    model: str
    version: str
    image: str
    image_id: str
    base_image: str
    python: str
    offline: bool
    verified: bool
    checked: bool
    runtime_image: str
    runtime_reused: bool
    steps: int  # of the runtime's Dockerfile (0 when the runtime was reused)
    cached_steps: int
    size_bytes: int
    seconds: float
    pushed_digest: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    #: The ledger event of the build (None when ``record=False``); not part of ``to_dict``.
    event: BuildEvent | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("event")
        return data

    def record(self) -> dict[str, Any]:
        """What is written to the version's ``mlgate.image`` tag."""
        out: dict[str, Any] = {
            "image": self.image,
            "id": self.image_id,
            "base": self.base_image,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "mlgate": __version__,
        }
        if self.pushed_digest:
            out["digest"] = self.pushed_digest
        return out


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def _flavors(model_dir: Path) -> dict[str, Any]:
    import yaml  # type: ignore[import-untyped]

    text = _read(model_dir / "MLmodel")
    if text is None:
        raise UsageError(
            f"the artifacts have no MLmodel file; is {model_dir.name} an MLflow model?"
        )
    data = yaml.safe_load(text) or {}
    return dict(data.get("flavors") or {})


def _serve_pins(model_requirements: str) -> dict[str, str]:
    """Host versions of what mlgate's server needs, plus MLflow when the model names none."""
    from importlib.metadata import PackageNotFoundError, version

    pins: dict[str, str] = {}
    for dist in recipe.SERVE_REQUIREMENTS:
        try:
            pins[dist] = version(dist)
        except PackageNotFoundError:
            continue
    names = {
        recipe.normalize_name(line.split("=", 1)[0].split("<", 1)[0].split(">", 1)[0].strip())
        for line in model_requirements.splitlines()
    }
    if not names & {"mlflow", "mlflow-skinny"}:
        pins["mlflow-skinny"] = version("mlflow")
    return pins


class _Context:
    """A build context written as an uncompressed tar with normalised file metadata."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # SIM115: the archive stays open across calls and is closed by close()
        self._tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    @staticmethod
    def _clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
        return info

    def add_bytes(self, name: str, data: bytes) -> None:
        info = self._clean(tarfile.TarInfo(name))
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))

    def add_tree(self, name: str, src: Path, *, skip: frozenset[str] = frozenset()) -> None:
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src)
            if rel.parts[0] in skip or "__pycache__" in rel.parts or path.is_symlink():
                continue
            arc = f"{name}/{rel.as_posix()}"
            if path.is_dir():
                self._tar.addfile(self._clean(self._tar.gettarinfo(str(path), arc)))
            elif path.is_file():
                with path.open("rb") as fh:
                    self._tar.addfile(self._clean(self._tar.gettarinfo(str(path), arc)), fh)

    def close(self) -> None:
        self._tar.close()


def _add_mlgate(ctx: _Context, python: str) -> None:
    """mlgate's own package, with bytecode when the host's Python matches the image's."""
    import importlib.util
    import py_compile

    src = Path(__file__).resolve().parent.parent  # the mlgate package (not imported: layers)
    ctx.add_tree("mlgate", src)
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != python:
        return
    with tempfile.TemporaryDirectory() as tmp:
        for py in sorted(src.rglob("*.py")):
            if "__pycache__" in py.parts:
                continue
            rel = py.relative_to(src)
            cached = Path(importlib.util.cache_from_source(str(rel)))
            out = Path(tmp) / cached
            out.parent.mkdir(parents=True, exist_ok=True)
            py_compile.compile(
                str(py),
                cfile=str(out),
                dfile=f"{recipe.LIB}/mlgate/{rel}",
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
            ctx.add_bytes(f"mlgate/{cached.as_posix()}", out.read_bytes())


def _runtime_key(context_tar: Path, base_id: str, platform: str | None) -> str:
    """A name for everything a runtime is made of (its build context is normalised)."""
    import blake3

    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    h.update_mmap(str(context_tar))
    h.update(f"\0{base_id}\0{platform or ''}\0{__version__}".encode())
    return h.hexdigest()[:32]


def _resolve(store: Store, ref: str) -> VersionRecord:
    parsed = parse_ref(ref)
    if parsed.version is None and parsed.alias is None:
        raise UsageError(
            f"{ref}: say which version to build", hint="use MODEL@ALIAS or MODEL/VERSION"
        )
    return resolve(store, parsed)


def _fetch_verified(
    store: Store, version: VersionRecord, dst: Path, verify: bool
) -> tuple[Path, str | None]:
    """Download the version's artifacts; with ``verify``, prove they are the registered ones.

    Returns the directory and the verified digest (None when not verified).
    """
    model_dir = Path(store.download(f"models:/{version.name}/{version.version}", dst=str(dst)))
    if not verify:
        return model_dir, None
    want = version.tags.get(Tags.ARTIFACT_DIGEST)
    if not want:
        raise UsageError(
            f"{version.ref} has no recorded artifact digest (it was not registered with mlgate), "
            "so its artifacts cannot be verified",
            hint="register it with mlgate, or pass --no-verify to build it unverified",
        )
    found = verify_model_artifacts(model_dir, want, what=version.ref, refusing="to build")
    log.info("artifacts verified: %s", found)
    return model_dir, found


def _pyfunc_flavor(model_dir: Path, ref: str) -> dict[str, Any]:
    flavors = _flavors(model_dir)
    pyfunc = flavors.get("python_function")
    if not pyfunc:
        raise UsageError(
            f"{ref} has no python_function (pyfunc) flavor "
            f"(flavors: {', '.join(sorted(flavors)) or 'none'}); "
            "an mlgate image serves pyfunc models"
        )
    return dict(pyfunc)


def _runtime_context(
    path: Path,
    runtime: recipe.Runtime,
    requirements: str,
    wheel_dir: Path | None,
    ca_bundle: str | os.PathLike[str] | None,
) -> Path:
    """The runtime's build context: Dockerfile, requirements, wheels, CA bundle, mlgate."""
    from mlgate.deploy.wheelhouse import COMPLETE

    ctx = _Context(path)
    try:
        ctx.add_bytes("Dockerfile", runtime.dockerfile().encode())
        ctx.add_bytes("requirements.txt", requirements.encode())
        if wheel_dir is not None:
            ctx.add_tree("wheels", wheel_dir, skip=frozenset({COMPLETE}))
        if runtime.ca_bundle and ca_bundle is not None:
            ctx.add_bytes("ca-bundle.crt", Path(ca_bundle).read_bytes())
        _add_mlgate(ctx, runtime.python)
    finally:
        ctx.close()
    return path


def _ensure_runtime(
    engine: Engine,
    context: Path,
    runtime: recipe.Runtime,
    *,
    platform: str | None,
    network_mode: str | None,
    nocache: bool,
) -> tuple[str, bool, int, int]:
    """The runtime image for ``context``: reused when its key exists, else built and tagged.

    A runtime depends on nothing but its build context, the base image and the platform, so the
    same key means the same runtime. Returns (reference, reused, steps, cached steps).
    """
    base_id = engine.ensure_image(runtime.base_image, platform=platform)
    key = _runtime_key(context, base_id, platform)
    ref = f"{RUNTIME_REPOSITORY}:{key}"
    if not nocache and engine.exists(ref):
        log.info("runtime %s is up to date (base, environment, requirements, mlgate)", ref)
        return ref, True, 0, 0
    mode = "offline" if runtime.offline else "online"
    log.info("building the runtime from %s (%s)", runtime.base_image, mode)
    built = engine.build(
        str(context), network_mode=network_mode, platform=platform, nocache=nocache
    )
    engine.tag(built.image_id, RUNTIME_REPOSITORY, key)
    return ref, False, built.steps, built.cached


def _bundle(path: Path, model_dir: Path, layer: recipe.ModelLayer, run_id: str | None) -> Path:
    """The model layer's files: ``model/`` and ``image.json``, for /opt/mlgate."""
    bundle = _Context(path)
    try:
        bundle.add_tree("model", model_dir, skip=MLFLOW_DOWNLOAD_FILES)
        manifest = json.dumps(layer.manifest(run_id), indent=2, sort_keys=True)
        bundle.add_bytes("image.json", manifest.encode())
    finally:
        bundle.close()
    return path


@dataclass(frozen=True)
class _Plan:
    """What one build makes, decided from the version and its (verified) artifacts."""

    version: VersionRecord
    model_dir: Path
    digest: str | None  # the verified artifact digest; None when not verified
    requirements: str
    labels: dict[str, str]
    runtime: recipe.Runtime
    layer: recipe.ModelLayer


def _check_options(
    repository: str,
    ca_bundle: str | os.PathLike[str] | None,
    wheelhouse: str | os.PathLike[str] | None,
    allow_download: bool,
    engine: Engine | None,
    docker_host: str | None,
) -> str:
    """Refuse bad options before anything is contacted; returns the checked repository."""
    repository = recipe.check_repository(repository)
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise UsageError(f"--ca-bundle {ca_bundle}: no such file")
    if not allow_download and wheelhouse is None:
        raise UsageError("--no-download needs --wheelhouse")
    if engine is not None and docker_host is not None:
        raise UsageError("give an engine or a Docker host to connect to, not both")
    return repository


def _plan(
    store: Store,
    version: VersionRecord,
    work: Path,
    *,
    verify: bool,
    python: str | None,
    base_image: str | None,
    full_mlflow: bool,
    offline: bool,
    ca_bundle: str | os.PathLike[str] | None,
) -> _Plan:
    """Download (and verify) the artifacts; work out the runtime and the model layer."""
    model_dir, digest = _fetch_verified(store, version, work / "artifacts", verify)
    pyfunc = _pyfunc_flavor(model_dir, version.ref)
    py = python or recipe.python_minor(
        _read(model_dir / "python_env.yaml"), pyfunc.get("python_version")
    )
    base = base_image or recipe.default_base_image(py)
    model_reqs = _read(model_dir / "requirements.txt") or ""
    requirements = recipe.merge_requirements(
        model_reqs, _serve_pins(model_reqs), full_mlflow=full_mlflow
    )
    labels = recipe.labels(
        model=version.name,
        version=version.version,
        run_id=version.run_id,
        tags=version.tags,
        mlgate_version=__version__,
        base_image=base,
        created=version.tags.get(Tags.REGISTERED_AT),
    )
    runtime = recipe.Runtime(
        base_image=base, python=py, offline=offline, ca_bundle=ca_bundle is not None and not offline
    )
    layer = recipe.ModelLayer(
        model=version.name, version=version.version, digest=digest, labels=labels
    )
    return _Plan(version, model_dir, digest, requirements, labels, runtime, layer)


def _runtime_image(
    engine: Engine,
    plan: _Plan,
    work: Path,
    *,
    wheelhouse: str | os.PathLike[str] | None,
    allow_download: bool,
    ca_bundle: str | os.PathLike[str] | None,
    platform: str | None,
    network_mode: str | None,
    nocache: bool,
    pip_runner: Runner | None,
) -> tuple[str, bool, int, int]:
    """The runtime image (wheels resolved on the host first when offline); see _ensure_runtime."""
    from mlgate.deploy import wheelhouse as wheels

    runtime = plan.runtime
    wheel_dir = None
    if runtime.offline:
        log.info("resolving wheels on the host for Python %s", runtime.python)
        wheel_dir = wheels.resolve(
            plan.requirements,
            python=runtime.python,
            platform=platform,
            wheelhouse=wheelhouse,
            allow_download=allow_download,
            runner=pip_runner,
        )
    context = _runtime_context(
        work / "runtime.tar", runtime, plan.requirements, wheel_dir, ca_bundle
    )
    net = (
        "none"
        if runtime.offline
        else (network_mode or os.environ.get("MLGATE_DOCKER_NETWORK") or None)
    )
    return _ensure_runtime(
        engine, context, runtime, platform=platform, network_mode=net, nocache=nocache
    )


def _model_image(engine: Engine, plan: _Plan, runtime_ref: str, work: Path, *, check: bool) -> str:
    """The runtime plus the model layer, checked inside when ``check``; returns its image id."""
    v = plan.version
    bundle = _bundle(work / "bundle.tar", plan.model_dir, plan.layer, v.run_id)
    checking = "; checking that the model loads and verifies inside the image (no network)"
    log.info("%s", "adding the model layer" + (checking if check else ""))
    return engine.add_layer(
        runtime_ref,
        bundle.read_bytes(),
        recipe.PREFIX,
        changes=plan.layer.changes(),
        check=plan.layer.check_cmd() if check else None,
        message=f"mlgate: {v.name} version {v.version} ({plan.digest or 'unverified'})",
    )


def _publish(engine: Engine, image_id: str, repository: str, tag: str, push: bool) -> str | None:
    """Tag the image ``repository:tag``; with ``push``, push it and return the pushed digest."""
    engine.tag(image_id, repository, tag)
    if not push:
        return None
    log.info("pushing %s:%s", repository, tag)
    return engine.push(repository, tag)


@contextlib.contextmanager
def _connected(engine: Engine | None, docker_host: str | None) -> Iterator[Engine]:
    """The caller's engine (left open), else a new connection closed afterwards."""
    if engine is not None:
        yield engine
        return
    from mlgate.deploy.engine import Engine

    with Engine(docker_host) as own:
        yield own


def build(
    ref: str,
    *,
    store: Store | None = None,
    repository: str = DEFAULT_REPOSITORY,
    tag: str = DEFAULT_TAG,
    base_image: str | None = None,
    python: str | None = None,
    offline: bool = False,
    wheelhouse: str | os.PathLike[str] | None = None,
    allow_download: bool = True,
    ca_bundle: str | os.PathLike[str] | None = None,
    platform: str | None = None,
    network_mode: str | None = None,
    full_mlflow: bool = False,
    verify: bool = True,
    check: bool = True,
    nocache: bool = False,
    push: bool = False,
    record: bool = True,
    engine: Engine | None = None,
    docker_host: str | None = None,
    pip_runner: Runner | None = None,
) -> BuildResult:
    """Build (and optionally push) the serving image of one model version.

    The steps are the module's: resolve, fetch and verify, the runtime, the model layer (checked
    inside), tag and push, record. :func:`mlgate.api.build` documents every argument and error.
    Progress is logged at INFO on the ``mlgate.build`` logger.
    """
    started = time.monotonic()
    store = store or Store()
    repository = _check_options(
        repository, ca_bundle, wheelhouse, allow_download, engine, docker_host
    )
    offline = offline or wheelhouse is not None
    version = _resolve(store, ref)
    from mlgate.promotion.workflow import ledger_for

    ledger = ledger_for(store)  # the build's event goes there (a bad policy fails before work)
    name, number = version.name, version.version
    image_tag = recipe.image_tag(tag, name, number)
    log.info("building %s version %s as %s:%s", name, number, repository, image_tag)
    with (
        _connected(engine, docker_host) as docker,
        tempfile.TemporaryDirectory(prefix="mlgate-build-", ignore_cleanup_errors=True) as tmp,
    ):
        work = Path(tmp)
        plan = _plan(
            store,
            version,
            work,
            verify=verify,
            python=python,
            base_image=base_image,
            full_mlflow=full_mlflow,
            offline=offline,
            ca_bundle=ca_bundle,
        )
        runtime_ref, reused, steps, cached = _runtime_image(
            docker,
            plan,
            work,
            wheelhouse=wheelhouse,
            allow_download=allow_download,
            ca_bundle=ca_bundle,
            platform=platform,
            network_mode=network_mode,
            nocache=nocache,
            pip_runner=pip_runner,
        )
        image_id = _model_image(docker, plan, runtime_ref, work, check=check)
        pushed = _publish(docker, image_id, repository, image_tag, push)
        result = BuildResult(
            model=name,
            version=number,
            image=f"{repository}:{image_tag}",
            image_id=image_id,
            base_image=plan.runtime.base_image,
            python=plan.runtime.python,
            offline=offline,
            verified=plan.digest is not None,
            checked=check,
            runtime_image=runtime_ref,
            runtime_reused=reused,
            steps=steps,
            cached_steps=cached,
            size_bytes=docker.inspect(image_id).size,
            seconds=round(time.monotonic() - started, 2),
            pushed_digest=pushed,
            labels=plan.labels,
        )
        if record:
            store.set_version_tags(name, number, {Tags.IMAGE: compact_json(result.record())})
            from mlgate.promotion.ledger import build_event

            event = build_event(name, number, image=result.image, image_id=image_id, digest=pushed)
            result = replace(result, event=ledger.append_if_permitted(event))
        return result
