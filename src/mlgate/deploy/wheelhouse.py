"""Every wheel an image needs, downloaded on the host before the build.

The host has what the network demands — pip's configuration, an index mirror, credentials, a
CA bundle for a TLS-intercepting proxy — so mlgate resolves and downloads there, with the host's
own pip, for the image's Python version and platform. The build then installs from these files
with ``--no-index`` and runs with no network at all.

Each distinct requirement set gets its own directory (keyed by a hash of the requirements, the
Python version and the platform), holding exactly the wheels that set resolved to. So the build
context, and the Docker layer that copies it, are byte-identical for two model versions with the
same requirements, and the second build reuses the layer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from mlgate import config
from mlgate.deploy.recipe import wheel_platforms
from mlgate.errors import DockerError, UsageError

COMPLETE = ".mlgate-complete"

log = logging.getLogger("mlgate.build")

#: Runs one command (``python -m pip download ...``) and returns its exit status and what it
#: printed (the last lines are enough: errors are read from them). Like ``pypa/build``'s runner,
#: it is where a caller decides how pip runs; the default is :func:`pip_runner`.
Runner = Callable[[Sequence[str]], tuple[int, str]]

#: pip's lines worth showing while it works (the rest are kept for the error message only).
_PROGRESS = ("Collecting", "Saved", "Successfully", "ERROR")


def _key(requirements: str, python: str, platform: str | None) -> str:
    h = hashlib.sha256()
    for part in (requirements, python, platform or "linux/amd64"):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def pip_runner(cmd: Sequence[str]) -> tuple[int, str]:
    """Run ``cmd`` as a subprocess; log pip's progress lines at INFO on ``mlgate.build``."""
    tail: list[str] = []
    with subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if not line:
                continue
            tail = [*tail, line][-15:]
            if line.startswith(_PROGRESS):
                log.info("%s", config.redact(line))
    return proc.wait(), "\n".join(tail)


def _pip_download(args: list[str], runner: Runner) -> tuple[int, str]:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-input",
        *args,
    ]
    status, said = runner(cmd)
    return status, "\n".join(config.redact(line) for line in said.splitlines())


def resolve(
    requirements: str,
    *,
    python: str,
    platform: str | None = None,
    wheelhouse: str | os.PathLike[str] | None = None,
    allow_download: bool = True,
    runner: Runner | None = None,
) -> Path:
    """A directory holding exactly the wheels ``requirements`` resolve to for the image.

    Args:
        requirements: the image's requirements (``merge_requirements``).
        python: the image's ``MAJOR.MINOR``.
        platform: the Docker platform (default ``linux/amd64``).
        wheelhouse: a directory of wheels the user keeps (air-gapped builds). Resolved from it
            alone first; whatever is missing is downloaded into it, unless ``allow_download`` is
            false.
        allow_download: false to never touch the network (fail if a wheel is missing).
        runner: runs pip (default :func:`pip_runner`, a subprocess that logs pip's progress).

    Raises:
        DockerError: pip could not resolve or download a wheel (names what pip said).
    """
    run = runner or pip_runner
    root = config.cache_dir() / "wheelhouse"
    target = root / _key(requirements, python, platform)
    if (target / COMPLETE).exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    user = Path(wheelhouse).expanduser().resolve() if wheelhouse else None
    if user is not None and not user.is_dir():
        if not allow_download:
            raise UsageError(f"--wheelhouse {user}: no such directory")
        user.mkdir(parents=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        req = work / "requirements.txt"
        req.write_text(requirements)
        dest = work / "wheels"
        common = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
        for tag in wheel_platforms(platform):
            common += ["--platform", tag]
        common += ["-r", str(req), "-d", str(dest)]
        status, said = 1, ""
        if user is not None:
            status, said = _pip_download(["--no-index", "--find-links", str(user), *common], run)
        if status != 0:
            if not allow_download:
                raise DockerError(
                    "the wheelhouse lacks wheels the image needs and downloading is off: "
                    + _last_error(said)
                )
            extra = ["--find-links", str(user)] if user is not None else []
            status, said = _pip_download([*extra, *common], run)
            if status != 0:
                raise DockerError(
                    f"could not download the wheels for Python {python} "
                    f"({platform or 'linux/amd64'}): {_last_error(said)}",
                    hint="every requirement needs a binary wheel for offline builds",
                )
            if user is not None:
                for wheel in dest.iterdir():
                    if not (user / wheel.name).exists():
                        shutil.copy2(wheel, user / wheel.name)
        (dest / COMPLETE).write_text(requirements)
        try:
            dest.rename(target)
        except OSError:
            if not (target / COMPLETE).exists():  # someone else finished first: theirs is fine
                raise
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _last_error(text: str) -> str:
    errors = [line for line in text.splitlines() if line.startswith("ERROR")]
    return (errors[-1] if errors else (text.splitlines() or ["pip failed"])[-1]).removeprefix(
        "ERROR: "
    )
