"""V2 compatibility with the reference implementation: MLServer and its MLflow runtime.

MLServer runs in a virtual environment of its own (``requirements/mlserver.txt``, created once and
cached; installing it took 88 s here) on the same model directory as ``mlgate serve``. Each
request below goes to both; valid ones must give the same predictions, invalid ones the same
status class — except where MLServer answers a client's mistake with a 500 (its MLflow runtime
lets MLflow's schema errors and NumPy's reshape errors through), which mlgate answers with a
4xx, and where mlgate is stricter about datatypes. Those cases are listed, so that a change on
either side is seen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from mlgate.testing import free_port, side_venv, wait_http

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements" / "mlserver.txt"
FEATURES = [f"f{i}" for i in range(6)]


def mlserver_venv(cache: Path) -> Path:
    """A virtual environment with MLServer installed (created once per requirements file)."""
    return side_venv(REQUIREMENTS, cache, "mlserver")


class MLServer:
    """``mlserver start`` on one MLflow model directory, loopback only, with its MLflow runtime.

    ``parallel_workers`` is 0: MLServer 1.7.1's worker processes die at start with uvloop 0.23
    ("There is no current event loop"), so inference runs in the server process.
    ``max_batch_size`` > 1 turns on its adaptive batching.
    """

    def __init__(
        self,
        venv: Path,
        workdir: Path,
        model_dir: str,
        *,
        name: str,
        version: str,
        max_batch_size: int = 0,
        max_batch_time: float = 0.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.venv, self.dir, self.port = venv, workdir, free_port()
        self.extra_env = env or {}
        workdir.mkdir(parents=True, exist_ok=True)
        settings = {
            "host": "127.0.0.1",
            "http_port": self.port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "parallel_workers": 0,
        }
        model: dict[str, object] = {
            "name": name,
            "implementation": "mlserver_mlflow.MLflowRuntime",
            "parameters": {"uri": model_dir, "version": version},
        }
        if max_batch_size > 1:
            model |= {"max_batch_size": max_batch_size, "max_batch_time": max_batch_time}
        (workdir / "settings.json").write_text(json.dumps(settings))
        (workdir / "model-settings.json").write_text(json.dumps(model))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "mlserver.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MLServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env |= self.extra_env
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(self.venv / "bin" / "mlserver"), "start", str(self.dir)],
                cwd=self.dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proc = self.proc
        try:
            wait_http(f"{self.url}/v2/health/ready", timeout=120, alive=lambda: proc.poll() is None)
        except RuntimeError as exc:
            self.stop()
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"{exc}\n{tail}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)


@pytest.fixture(scope="session")
def mlserver_env(request: pytest.FixtureRequest) -> Path:
    """MLServer's virtual environment, in the pytest cache when there is one (else a temp dir)."""
    cache = getattr(request.config, "cache", None)
    root = (
        cache.mkdir("mlserver")
        if cache is not None
        else Path(tempfile.gettempdir()) / "mlgate-test-venvs"  # shared by xdist workers
    )
    return mlserver_venv(Path(root))


ROWS = [[0.1, -1.2, 0.3, 2.0, -0.5, 1.1], [1.0, 0.0, -0.3, 0.2, 0.5, -1.1], [-2, 1, 0, 3, 1, -1]]


def _cols(rows=ROWS, datatype="FP64", shape=None, **extra) -> list[dict]:
    return [
        {
            "name": f,
            "datatype": datatype,
            "shape": shape or [len(rows)],
            "data": [r[i] for r in rows],
            **extra,
        }
        for i, f in enumerate(FEATURES)
    ]


def _np(shape, data, datatype="FP64") -> dict:
    return {
        "parameters": {"content_type": "np"},
        "inputs": [{"name": "x", "datatype": datatype, "shape": shape, "data": data}],
    }


FLAT = [v for r in ROWS for v in r]
#: name -> (request body, how the two servers are expected to differ: None for not at all,
#: "mlserver-500" where MLServer answers a client mistake with a 500, "stricter" where mlgate
#: refuses what MLServer accepts).
CASES: dict[str, tuple[object, str | None]] = {
    "pd by signature": ({"id": "one", "inputs": _cols()}, None),
    "pd explicit": ({"parameters": {"content_type": "pd"}, "inputs": _cols()}, None),
    "pd [N, 1]": ({"inputs": _cols(shape=[3, 1])}, None),
    "pd columns out of order": ({"inputs": _cols()[::-1]}, None),
    "pd integers as FP64": ({"inputs": _cols(rows=[[1, 2, 3, 4, 5, 6]])}, None),
    "pd FP32": ({"inputs": _cols(datatype="FP32")}, None),
    "pd extra column": (
        {
            "inputs": [
                *_cols(),
                {"name": "z", "datatype": "FP64", "shape": [3], "data": [1.0, 2.0, 3.0]},
            ]
        },
        None,
    ),
    "outputs requested": ({"inputs": _cols(), "outputs": [{"name": "output-1"}]}, None),
    "extra parameters": ({"parameters": {"anything": 1}, "inputs": _cols()}, None),
    "unknown datatype": ({"inputs": _cols(datatype="FLOAT")}, None),
    "missing shape": (
        {"inputs": [{k: v for k, v in c.items() if k != "shape"} for c in _cols()]},
        None,
    ),
    "inputs missing": ({"id": "x"}, None),
    "inputs not a list": ({"inputs": {"f0": 1}}, None),
    "id not a string": ({"id": 5, "inputs": _cols()}, None),
    "not JSON": (b"{nope", None),
    "np with six tensors": ({"parameters": {"content_type": "np"}, "inputs": _cols()}, None),
    "shape larger than data": ({"inputs": _cols(shape=[4])}, "mlserver-500"),
    "shape [N, 2]": ({"inputs": _cols(shape=[3, 2])}, "mlserver-500"),
    "strings as FP64": ({"inputs": _cols(rows=[["a"] * 6] * 3)}, "mlserver-500"),
    "a missing column": ({"inputs": _cols()[:5]}, "mlserver-500"),
    "empty inputs": ({"inputs": []}, "mlserver-500"),
    "unknown content type": (
        {"parameters": {"content_type": "zzz"}, "inputs": _cols()},
        "mlserver-500",
    ),
    "np tensor for named columns": (_np([3, 6], FLAT), "mlserver-500"),
    "np tensor, nested data": (_np([3, 6], ROWS), "mlserver-500"),
    "booleans as FP64": ({"inputs": _cols(rows=[[True] * 6] * 3)}, "stricter"),
}


def _post(url: str, model: str, body: object) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        f"{url}/v2/models/{model}/infer",
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


@pytest.fixture
def both(mlserver_env, store, model_name, make_version, tmp_path) -> Iterator[tuple[str, str]]:
    """MLServer and `mlgate serve` on the same downloaded model directory of a real version."""
    version = make_version()
    model_dir = store.download(f"models:/{model_name}/{version}", dst=str(tmp_path / "artifacts"))
    ref = MLServer(
        mlserver_env, tmp_path / "mlserver", model_dir, name=model_name, version=version
    ).start()
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlgate",
            "serve",
            model_name,
            "--port",
            str(port),
            "--model-dir",
            model_dir,
            "--model-version",
            version,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/v2/health/ready", timeout=90, alive=lambda: proc.poll() is None)
        yield ref.url, url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        ref.stop()


@pytest.mark.slow
def test_same_answers_as_mlserver(both, model_name):
    """Valid V2 requests: MLServer's predictions, output names, datatypes and shapes; invalid
    ones: the same status class, but 4xx where MLServer answers a client mistake with a 500."""
    ref, ours = both
    seen = {}
    for case, (body, difference) in CASES.items():
        a, b = _post(ref, model_name, body), _post(ours, model_name, body)
        seen[case] = (a.status_code, b.status_code)
        assert b.status_code < 500 and (b.status_code < 300 or set(b.json()) == {"error"}), case
        if difference == "mlserver-500":
            assert a.status_code == 500 and 400 <= b.status_code < 500, (case, seen[case])
        elif difference == "stricter":
            assert a.status_code == 200 and 400 <= b.status_code < 500, (case, seen[case])
        else:
            assert a.status_code // 100 == b.status_code // 100, (case, seen[case], b.text)
        if a.status_code == b.status_code == 200:
            ra, rb = a.json(), b.json()
            assert rb["model_version"] == ra["model_version"] and rb["id"] == (
                body["id"] if isinstance(body, dict) and "id" in body else rb["id"]
            )
            assert len(ra["outputs"]) == len(rb["outputs"]), case
            for oa, ob in zip(ra["outputs"], rb["outputs"], strict=True):
                assert (ob["name"], ob["datatype"], ob["shape"]) == (
                    oa["name"],
                    oa["datatype"],
                    oa["shape"],
                ), case
                assert np.array_equal(oa["data"], ob["data"]), case
    assert sum(1 for a, _ in seen.values() if a == 200) >= 8


@pytest.mark.slow
def test_same_metadata_and_health_as_mlserver(both, model_name):
    """Model metadata inputs and the request content type match MLServer's; both are live,
    ready, and 404 an unknown model with {"error": ...}."""
    ref, ours = both
    ma = requests.get(f"{ref}/v2/models/{model_name}", timeout=10).json()
    mb = requests.get(f"{ours}/v2/models/{model_name}", timeout=10).json()
    assert mb["inputs"] == ma["inputs"] and mb["parameters"] == ma["parameters"]
    assert [(o["datatype"], o["shape"]) for o in mb["outputs"]] == [
        (o["datatype"], o["shape"]) for o in ma["outputs"]
    ]
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{model_name}/ready"):
        assert requests.get(f"{ref}{path}", timeout=10).status_code == 200
        assert requests.get(f"{ours}{path}", timeout=10).status_code == 200, path
    for url in (ref, ours):
        r = requests.get(f"{url}/v2/models/nope", timeout=10)
        assert r.status_code == 404 and set(r.json()) == {"error"}
