"""The one module that talks to a Docker engine (through the ``docker`` SDK).

Every ``docker`` exception is translated here into :class:`~mlgate.errors.DockerError` (engine
unreachable, build or push failed) or :class:`~mlgate.errors.NotFoundError` (no such image), so
nothing above this module imports ``docker``. What the engine says while it builds, pulls and
pushes is logged at INFO on the ``mlgate.build`` logger.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgate import config
from mlgate.errors import DockerError, NotFoundError

log = logging.getLogger("mlgate.build")

#: Seconds an API call may go without an answer (a build step such as pip install can be quiet).
API_TIMEOUT = 1800


@dataclass(frozen=True)
class ImageInfo:
    id: str
    tags: tuple[str, ...]
    size: int
    labels: dict[str, str]
    user: str
    healthcheck: dict[str, Any] | None
    exposed_ports: tuple[str, ...]
    repo_digests: tuple[str, ...]
    layers: tuple[str, ...]


@dataclass(frozen=True)
class Built:
    """What a build produced: the image id and how many of its steps came from the cache."""

    image_id: str
    steps: int
    cached: int


def _where() -> str:
    return os.environ.get("DOCKER_HOST") or "the default Docker socket"


@contextlib.contextmanager
def _calling(what: str) -> Iterator[None]:
    import docker.errors
    import requests.exceptions

    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise NotFoundError(f"{what}: {_explain(exc)}") from None
    except docker.errors.BuildError as exc:
        raise DockerError(f"{what}: {config.redact(str(exc.msg))}") from None
    except docker.errors.APIError as exc:
        raise DockerError(f"{what}: {_explain(exc)}") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise DockerError(
            f"{what}: the Docker engine at {_where()} is not reachable ({_first_line(exc)})",
            hint="start Docker, or point DOCKER_HOST at a running engine",
        ) from None


def _preflight(url: str) -> None:
    """Fail fast, with one line, when a unix-socket engine is not there.

    (docker-py leaks the socket of a refused connection; this probe closes its own.)
    """
    import socket

    if not url.startswith("unix://"):
        return
    path = url[len("unix://") :]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)
    except OSError as exc:
        raise DockerError(
            f"connecting to Docker: the Docker engine at {url} is not reachable "
            f"({exc.strerror or exc})",
            hint="start Docker, or point DOCKER_HOST at a running engine",
        ) from None


def _explain(exc: Any) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return config.redact(_first_line(text))


def _first_line(exc: Any) -> str:
    text = str(exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:400]


class Engine:
    """A connection to one Docker engine (``DOCKER_HOST`` or the default socket)."""

    def __init__(self, base_url: str | None = None) -> None:
        import docker

        _preflight(base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
        with _calling("connecting to Docker"):
            if base_url:
                self.client = docker.DockerClient(base_url=base_url, timeout=API_TIMEOUT)
            else:
                self.client = docker.from_env(timeout=API_TIMEOUT)
            try:
                self.client.ping()
            except BaseException:
                self.client.close()
                raise

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ images
    def build(
        self,
        context_tar: str,
        *,
        network_mode: str | None = None,
        platform: str | None = None,
        nocache: bool = False,
    ) -> Built:
        """Build from an uncompressed tar build context. Never tags.

        The image is tagged only after it is built and checked (:meth:`tag`), so a failed build
        leaves nothing under the target tag.
        """
        image_id: str | None = None
        tail: list[str] = []
        step = ""
        steps = cached = 0
        with _calling("building the image"), Path(context_tar).open("rb") as fh:
            stream = self.client.api.build(
                fileobj=fh,
                custom_context=True,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                network_mode=network_mode,
                platform=platform,
                nocache=nocache,
            )
            for chunk in stream:
                if "error" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    said = [t.strip() for t in tail if t.strip() and not t.startswith("Step ")]
                    last = f" (last output: {said[-1][:300]})" if said else ""
                    raise DockerError(  # one line: the full log was logged
                        f"image build failed at {step or 'the first step'}: "
                        f"{config.redact(_first_line(detail))}{last}"
                    )
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("ID"):
                    image_id = aux["ID"]
                text = chunk.get("stream")
                if not text:
                    continue
                for line in text.splitlines():
                    line = config.redact(line.rstrip())
                    if not line:
                        continue
                    if line.startswith("Step "):
                        step = line.split(" : ", 1)[0].lower()
                        steps += 1
                    elif line.strip() == "---> Using cache":
                        cached += 1
                    tail = [*tail, line][-40:]
                    log.info("%s", line)
        if image_id is None:
            raise DockerError("image build ended without an image id")
        return Built(image_id=image_id, steps=steps, cached=cached)

    def inspect(self, ref: str) -> ImageInfo:
        with _calling(f"image {ref}"):
            attrs = self.client.images.get(ref).attrs
        cfg = attrs.get("Config") or {}
        return ImageInfo(
            id=attrs["Id"],
            tags=tuple(attrs.get("RepoTags") or ()),
            size=int(attrs.get("Size") or 0),
            labels=dict(cfg.get("Labels") or {}),
            user=cfg.get("User") or "",
            healthcheck=cfg.get("Healthcheck"),
            exposed_ports=tuple(sorted((cfg.get("ExposedPorts") or {}).keys())),
            repo_digests=tuple(attrs.get("RepoDigests") or ()),
            layers=tuple((attrs.get("RootFS") or {}).get("Layers") or ()),
        )

    def exists(self, ref: str) -> bool:
        try:
            self.inspect(ref)
        except NotFoundError:
            return False
        return True

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        with _calling(f"tagging {image_id[:19]} as {repository}:{tag}"):
            if not self.client.api.tag(image_id, repository, tag, force=True):
                raise DockerError(f"the engine refused to tag {image_id} as {repository}:{tag}")

    def remove(self, ref: str) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound), _calling(f"removing {ref}"):
            self.client.api.remove_image(ref, noprune=False)

    def push(self, repository: str, tag: str) -> str:
        """Push ``repository:tag``; returns the pushed manifest digest (``sha256:...``)."""
        digest: str | None = None
        with _calling(f"pushing {repository}:{tag}"):
            for chunk in self.client.api.push(repository, tag, stream=True, decode=True):
                if "error" in chunk:
                    raise DockerError(
                        f"pushing {repository}:{tag} failed: "
                        f"{config.redact(_first_line(chunk['error']))}"
                    )
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = aux["Digest"]
                status = chunk.get("status")
                if status and "id" not in chunk:
                    log.info("%s", config.redact(status))
        if digest is None:
            raise DockerError(f"pushing {repository}:{tag} ended without a digest")
        return digest

    def ensure_image(self, ref: str, *, platform: str | None = None) -> str:
        """The id of image ``ref``, pulling it first when the engine does not have it."""
        try:
            return self.inspect(ref).id
        except NotFoundError:
            pass
        log.info("pulling %s", ref)
        try:
            with _calling(f"pulling {ref}"):
                return str(self.client.images.pull(ref, platform=platform).id)
        except (DockerError, NotFoundError) as exc:
            raise DockerError(
                f"base image {ref} is not on the engine and could not be pulled ({exc.message})",
                hint="pull or import it first, or choose another --base-image",
            ) from None

    def add_layer(
        self,
        image: str,
        archive: bytes,
        dest: str,
        *,
        changes: list[str],
        check: list[str] | None = None,
        message: str = "",
        timeout: float = 600,
    ) -> str:
        """A new image: ``image`` + the tar ``archive`` unpacked at ``dest``, in one layer.

        With ``check``, that command first runs in the container holding the new files (no
        network; /tmp and $HOME on tmpfs, so nothing it writes reaches the layer) and must exit
        0. ``changes`` are Dockerfile instructions (CMD, LABEL, ...) applied by the commit.
        Returns the untagged image id.
        """
        with _calling("adding the model layer"):
            container = self.client.containers.create(
                image,
                command=check or ["true"],
                network_mode="none",
                detach=True,
                tmpfs={"/tmp": "", "/home/mlgate": ""},  # noqa: S108 - inside the container
            )
            try:
                if not container.put_archive(dest, archive):
                    raise DockerError(f"the engine refused to add files at {dest}")
                if check:
                    container.start()
                    status = int(container.wait(timeout=timeout).get("StatusCode", 1))
                    if status != 0:
                        logs = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
                        last = [line for line in logs.strip().splitlines() if line.strip()][-3:]
                        raise DockerError(
                            f"the image cannot serve its model (check exited {status}): "
                            + config.redact(" | ".join(last))
                        )
                return str(container.commit(changes=changes, message=message).id)
            finally:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
