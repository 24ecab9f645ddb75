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
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgate._version import __version__
from mlgate.deploy import recipe
from mlgate.errors import UsageError
from mlgate.fingerprint import MLFLOW_DOWNLOAD_FILES, verify_model_artifacts
from mlgate.lineage import Tags, compact_json
from mlgate.registry.refs import parse_ref, resolve
from mlgate.registry.store import Store, VersionRecord

if TYPE_CHECKING:
    from mlgate.deploy.engine import Engine
    from mlgate.promotion.ledger import BuildEvent

Progress = Callable[[str], None]

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


def _note(on_progress: Progress | None, message: str) -> None:
    if on_progress:
        on_progress(message)


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
        self._tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closed by close()

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

    import mlgate

    src = Path(mlgate.__file__).parent
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
    store: Store, version: VersionRecord, dst: Path, verify: bool, on_progress: Progress | None
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
    _note(on_progress, f"artifacts verified: {found}")
    return model_dir, found


def _pyfunc_flavor(model_dir: Path, ref: str) -> dict[str, Any]:
    flavors = _flavors(model_dir)
    pyfunc = flavors.get("python_function")
    if not pyfunc:
        raise UsageError(
            f"{ref} has no python_function (pyfunc) flavor "
            f"(flavors: {', '.join(sorted(flavors)) or 'none'}); an mlgate image serves pyfunc models"
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
    on_progress: Progress | None,
) -> tuple[str, bool, int, int]:
    """The runtime image for ``context``: reused when its key exists, else built and tagged.

    A runtime depends on nothing but its build context, the base image and the platform, so the
    same key means the same runtime. Returns (reference, reused, steps, cached steps).
    """
    base_id = engine.ensure_image(runtime.base_image, platform=platform, on_progress=on_progress)
    key = _runtime_key(context, base_id, platform)
    ref = f"{RUNTIME_REPOSITORY}:{key}"
    if not nocache and engine.exists(ref):
        _note(on_progress, f"runtime {ref} is up to date (base, environment, requirements, mlgate)")
        return ref, True, 0, 0
    mode = "offline" if runtime.offline else "online"
    _note(on_progress, f"building the runtime from {runtime.base_image} ({mode})")
    built = engine.build(
        str(context),
        network_mode=network_mode,
        platform=platform,
        nocache=nocache,
        on_progress=on_progress,
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
    docker_host: str | None = None,
    on_progress: Progress | None = None,
) -> BuildResult:
    """Build (and optionally push) the serving image of one model version.

    Args:
        ref: ``MODEL@ALIAS`` or ``MODEL/VERSION``. An alias is resolved once.
        repository, tag: the image is tagged ``repository:tag``; ``tag`` is a template with
            ``{model}`` and ``{version}``.
        base_image: default ``python:MAJOR.MINOR-slim`` for the model's Python.
        offline, wheelhouse, allow_download: download every wheel on the host first (into the
            cache, or into ``wheelhouse``) and build with no network.
        ca_bundle: a CA bundle pip inside the build trusts (online builds behind TLS
            interception). It is used in the build stage only, never left in the image.
        network_mode: the build's network (``host`` where the engine has no bridge); offline
            builds always run with none.
        full_mlflow: install the full ``mlflow`` package rather than ``mlflow-skinny``.
        verify: refuse artifacts that differ from the recorded digest (and versions with none).
        check: before the model layer is committed, run ``serve --check`` in its container with
            no network: the model must load and its digest verify inside the image.
        record: write the image to the version's ``mlgate.image`` tag.

    Raises:
        NotFoundError: no such model, version or alias. UsageError: bad options, no pyfunc
        flavor. IntegrityError: artifacts changed since registration. DockerError: engine
        unreachable, build, check or push failed.
    """
    from mlgate.deploy import wheelhouse as wheels
    from mlgate.deploy.engine import Engine

    started = time.monotonic()
    store = store or Store()
    repository = recipe.check_repository(repository)
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise UsageError(f"--ca-bundle {ca_bundle}: no such file")
    offline = offline or wheelhouse is not None
    record_v = _resolve(store, ref)
    from mlgate.promotion.workflow import ledger_for

    ledger = ledger_for(store)  # the build's event goes there (a bad policy fails before work)
    name, version = record_v.name, record_v.version
    image_tag = recipe.image_tag(tag, name, version)
    _note(on_progress, f"building {name} version {version} as {repository}:{image_tag}")

    engine = Engine(docker_host)
    work = Path(tempfile.mkdtemp(prefix="mlgate-build-"))
    try:
        model_dir, digest = _fetch_verified(
            store, record_v, work / "artifacts", verify, on_progress
        )
        verified = digest is not None
        pyfunc = _pyfunc_flavor(model_dir, record_v.ref)
        py = python or recipe.python_minor(
            _read(model_dir / "python_env.yaml"), pyfunc.get("python_version")
        )
        base = base_image or recipe.default_base_image(py)
        model_reqs = _read(model_dir / "requirements.txt") or ""
        requirements = recipe.merge_requirements(
            model_reqs, _serve_pins(model_reqs), full_mlflow=full_mlflow
        )
        labels = recipe.labels(
            model=name,
            version=version,
            run_id=record_v.run_id,
            tags=record_v.tags,
            mlgate_version=__version__,
            base_image=base,
            created=record_v.tags.get(Tags.REGISTERED_AT),
        )
        runtime = recipe.Runtime(
            base_image=base,
            python=py,
            offline=offline,
            ca_bundle=ca_bundle is not None and not offline,
        )
        layer = recipe.ModelLayer(model=name, version=version, digest=digest, labels=labels)

        wheel_dir = None
        if offline:
            _note(on_progress, f"resolving wheels on the host for Python {py}")
            wheel_dir = wheels.resolve(
                requirements,
                python=py,
                platform=platform,
                wheelhouse=wheelhouse,
                allow_download=allow_download,
                on_progress=on_progress,
            )

        context = _runtime_context(
            work / "runtime.tar", runtime, requirements, wheel_dir, ca_bundle
        )
        net = (
            "none" if offline else (network_mode or os.environ.get("MLGATE_DOCKER_NETWORK") or None)
        )
        runtime_ref, reused, steps, cached = _ensure_runtime(
            engine,
            context,
            runtime,
            platform=platform,
            network_mode=net,
            nocache=nocache,
            on_progress=on_progress,
        )

        bundle = _bundle(work / "bundle.tar", model_dir, layer, record_v.run_id)
        _note(
            on_progress,
            "adding the model layer"
            + (
                "; checking that the model loads and verifies inside the image (no network)"
                if check
                else ""
            ),
        )
        image_id = engine.add_layer(
            runtime_ref,
            bundle.read_bytes(),
            recipe.PREFIX,
            changes=layer.changes(),
            check=layer.check_cmd() if check else None,
            message=f"mlgate: {name} version {version} ({digest or 'unverified'})",
        )
        engine.tag(image_id, repository, image_tag)
        image = f"{repository}:{image_tag}"
        pushed = None
        if push:
            _note(on_progress, f"pushing {image}")
            pushed = engine.push(repository, image_tag, on_progress=on_progress)
        info = engine.inspect(image_id)
        result = BuildResult(
            model=name,
            version=version,
            image=image,
            image_id=image_id,
            base_image=base,
            python=py,
            offline=offline,
            verified=verified,
            checked=check,
            runtime_image=runtime_ref,
            runtime_reused=reused,
            steps=steps,
            cached_steps=cached,
            size_bytes=info.size,
            seconds=round(time.monotonic() - started, 2),
            pushed_digest=pushed,
            labels=labels,
        )
        if record:
            store.set_version_tags(name, version, {Tags.IMAGE: compact_json(result.record())})
            from dataclasses import replace

            from mlgate.promotion.ledger import build_event

            event = build_event(name, version, image=image, image_id=image_id, digest=pushed)
            result = replace(result, event=ledger.append_if_permitted(event))
        return result
    finally:
        engine.close()
        shutil.rmtree(work, ignore_errors=True)
