"""Image builds: `mlgate build` against MLflow's `generate-dockerfile` + `docker build`.

Run: `eval "$(scripts/docker-engine.sh start)" && python benchmarks/build.py`.

One model (scikit-learn, the same for both tools) in seven versions with the same requirements
that differ only in their fitted weights. On the same engine, in one run, it times

* cold: v1 with no layer cache (and, for mlgate, an empty wheel cache: wheels are downloaded);
* model-only rebuild: three new versions, one after the other (what CI does for every new model
  version), each tool building versions it has never built; the median of the three;

and prints both image sizes. Both builds use the same base image: MLGATE_BASE_IMAGE (default
`python:X.Y-slim`, MLflow's own choice). Where that base lacks `pip` on PATH (a debootstrap base
has only python3 + venv), a thin layer adds a venv with pip on PATH, for both tools alike.
MLflow's Dockerfile needs network during its build (apt-get nginx, pip install), so its build
runs with MLGATE_DOCKER_NETWORK (e.g. host); mlgate's runs offline with no network.

Targets: model-only rebuild at least 5x faster than MLflow's; image no larger than MLflow's
`--env-manager local` image.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REBUILDS = 3


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def tar_dir(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(path), arcname=".")
    return buf.getvalue()


def docker_build(client, context: Path, *, network: str | None, nocache: bool, tag: str) -> float:
    started = time.perf_counter()
    stream = client.api.build(fileobj=io.BytesIO(tar_dir(context)), custom_context=True, tag=tag,
                              rm=True, forcerm=True, decode=True, network_mode=network,
                              nocache=nocache, timeout=3600)  # fmt: skip
    for chunk in stream:
        if "error" in chunk:
            raise SystemExit(f"docker build of {context} failed: {chunk['error']}")
    return time.perf_counter() - started


def ensure_pip_base(client, base: str, network: str | None) -> str:
    """``base`` if it has pip on PATH (python:*-slim does), else base + a venv with pip on PATH."""
    probe = client.containers.run(base, ["sh", "-c", "command -v pip || true"], remove=True,
                                  network_mode="none")  # fmt: skip
    if probe.strip():
        return base
    tag = "mlgate-bench-pybase:latest"
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "Dockerfile").write_text(
            f"FROM {base}\nRUN python3 -m venv /opt/py\n"
            "ENV PATH=/opt/py/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        )
        docker_build(client, Path(tmp), network="none", nocache=False, tag=tag)
    log(f"{base} has no pip on PATH: both tools build on {tag} (+ a venv with pip)")
    return tag


def register_versions(store, count: int):
    """``count`` versions of one model, each with different fitted weights, same requirements."""
    import mlgate
    from mlgate.testing import tiny_classifier

    name = "bench-build"
    versions = []
    for i in range(count):
        model, train, test = tiny_classifier(rows=2000, c=1.0 / (i + 1))
        reg = mlgate.register(model, name=name, train_data=train, eval_data=test, store=store)
        versions.append(reg.number)
    return name, versions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="Keep the images afterwards.")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    import docker

    import mlgate
    from mlgate.deploy.build import build

    client = docker.from_env(timeout=3600)
    network = os.environ.get("MLGATE_DOCKER_NETWORK") or None
    work = Path(tempfile.mkdtemp(prefix="mlgate-bench-build-"))
    os.environ["MLGATE_CACHE_DIR"] = str(work / "cache")  # empty wheel cache: a true cold build
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["MLGATE_HOME"] = str(work)
    os.chdir(work)
    store = mlgate.Store()
    # v1 for the cold build; then three model-only rebuilds per tool, each of a version neither
    # tool has built before (a version built once is in Docker's layer cache for good).
    name, (v1, *fresh) = register_versions(store, 1 + 2 * REBUILDS)
    mlgate_versions, mlflow_versions = fresh[:REBUILDS], fresh[REBUILDS:]
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    base = ensure_pip_base(client, os.environ.get("MLGATE_BASE_IMAGE") or f"python:{py}-slim",
                           network)  # fmt: skip
    rows = []

    # ---- mlgate
    log("mlgate: cold build of v1 (no layer cache, empty wheel cache)")
    t = time.perf_counter()
    r1 = build(f"{name}/{v1}", store=store, repository="bench-mlgate", base_image=base,
               offline=True, nocache=True)  # fmt: skip
    mlgate_cold = time.perf_counter() - t
    times = []
    for v in mlgate_versions:
        log(f"mlgate: model-only rebuild ({v})")
        t = time.perf_counter()
        r2 = build(f"{name}/{v}", store=store, repository="bench-mlgate", base_image=base,
                   offline=True)  # fmt: skip
        times.append(time.perf_counter() - t)
    mlgate_rebuild = statistics.median(times)
    mlgate_times = times
    mlgate_size = client.images.get(r2.image).attrs["Size"]
    rows.append(("mlgate build", mlgate_cold, mlgate_rebuild, mlgate_size,
                 "runtime reused, one model layer" if r2.runtime_reused else "runtime rebuilt"))  # fmt: skip

    # ---- MLflow: generate-dockerfile + docker build, same base image, same engine
    def generate(version: str, out: Path) -> None:
        if out.exists():
            shutil.rmtree(out)
        subprocess.run([sys.executable, "-m", "mlflow", "models", "generate-dockerfile", "-m",
                        f"models:/{name}/{version}", "-d", str(out), "--env-manager", "local"],
                       check=True, capture_output=True)  # fmt: skip
        dockerfile = out / "Dockerfile"
        text = dockerfile.read_text()
        dockerfile.write_text(re.sub(r"^FROM .*$", f"FROM {base}", text, count=1, flags=re.M))

    ctx = work / "mlflow-ctx"
    generate(v1, ctx)
    log("mlflow: cold build of v1 (no layer cache; pip and apt-get download in the build)")
    mlflow_cold = docker_build(client, ctx, network=network, nocache=True,
                               tag=f"bench-mlflow:v{v1}")  # fmt: skip
    times = []
    for v in mlflow_versions:
        generate(v, ctx)
        log(f"mlflow: model-only rebuild ({v})")
        times.append(docker_build(client, ctx, network=network, nocache=False,
                                  tag=f"bench-mlflow:v{v}"))  # fmt: skip
    mlflow_rebuild = statistics.median(times)
    mlflow_times = times
    mlflow_size = client.images.get(f"bench-mlflow:v{mlflow_versions[-1]}").attrs["Size"]
    rows.append(("mlflow generate-dockerfile + docker build", mlflow_cold, mlflow_rebuild,
                 mlflow_size, "model copied before its requirements"))  # fmt: skip

    print(f"\nImage builds of one sklearn model, same engine, base {base}, Python {py}")
    print(f"{'':44} {'cold':>9} {'model-only':>11} {'size':>9}   (model-only: median of 3)")
    for label, cold, rebuild, size, note in rows:
        print(f"{label:44} {cold:8.1f}s {rebuild:10.1f}s {size / 1e6:7.0f}MB  {note}")
    print("\nmodel-only rebuilds (s, each a new version): mlgate "
          + " ".join(f"{t:.1f}" for t in mlgate_times) + "; mlflow "
          + " ".join(f"{t:.1f}" for t in mlflow_times))  # fmt: skip
    print(f"model-only rebuild (median): mlgate is {mlflow_rebuild / mlgate_rebuild:.1f}x faster "
          f"(target >= 5x)")  # fmt: skip
    print(f"cold build: mlgate is {mlflow_cold / mlgate_cold:.1f}x faster")
    print(f"image size: mlgate {mlgate_size / 1e6:.0f} MB vs MLflow {mlflow_size / 1e6:.0f} MB "
          f"({mlgate_size / mlflow_size:.2f}x; target <= 1.0)")  # fmt: skip

    if not args.keep:
        refs = [r1.image, r2.image, *(f"bench-mlflow:v{v}" for v in [v1, *mlflow_versions])]
        for ref in refs:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(ref, force=True)
    client.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
