"""Serving throughput: `mlflow models serve` vs `mlgate serve`, same model, same machine, same load.

Run: `python benchmarks/serving.py [--seconds 10] [--clients 1 8 32] [--model logistic|columns]`
(needs `wrk`, Debian's package of that name). Both servers run one worker; wrk drives
single-row JSON requests with 1, 8 and 32 connections. Champion and challenger are two
different fits (C=1 and C=0.1). Checks that both servers return identical predictions, then
prints requests/s and p50/p99 latency, the ratios, and the cost of a 50/50 champion/challenger
split versus serving one version. Targets: at 32 clients mlgate >= 5x MLflow's requests/s with
p99 no worse; split < 10% cost.

`--model logistic` (default) is a LogisticRegression, which mlgate scores on the schema's
ndarray; `--model columns` puts a ColumnTransformer (columns chosen by name) in front of it,
which keeps mlgate's DataFrame path: the figures for models outside the array path.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests


def wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    from mlgate.testing import wait_http

    try:
        wait_http(f"{url}/ping", timeout=timeout, alive=lambda: proc.poll() is None)
    except RuntimeError as exc:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"{exc}; the end of {log.name}:\n{tail}") from None


def wrk(
    url: str, body: str, clients: int, seconds: int, workdir: Path
) -> tuple[float, float, float, int]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body)}\n"
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", str(script), f"{url}/invocations"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, pct("50"), pct("99"), int(non2xx.group(1)) if non2xx else 0


def _model(kind: str, c: float) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator = LogisticRegression(C=c, max_iter=200)
    if kind == "logistic":
        return estimator
    by_name = ColumnTransformer([("scaled", StandardScaler(), ["f0", "f1", "f2"])],
                                remainder="passthrough")  # fmt: skip
    return make_pipeline(by_name, estimator)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--model", choices=["logistic", "columns"], default="logistic")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    import mlgate
    from mlgate.serving.control import set_traffic
    from mlgate.testing import TrackingServer, free_port, tiny_classifier

    _, train, test = tiny_classifier()
    features = test.drop(columns="label")
    champion, challenger = (_model(args.model, c).fit(train[features.columns], train["label"])
                            for c in (1.0, 0.1))  # fmt: skip
    body = json.dumps(
        {"dataframe_split": json.loads(features.head(1).to_json(orient="split", index=False))}
    )
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp, TrackingServer.temporary() as server:
        work = Path(tmp)
        store = mlgate.Store(server.uri)
        policy = work / "mlgate.toml"
        policy.write_text("[default.gates]\nchampion = []\nchallenger = []\n")
        v1, v2 = (
            mlgate.register(
                m, name="bench", train_data=train, input_example=features.head(2), store=store
            ).number
            for m in (champion, challenger)
        )
        mlgate.promote("bench", v1, to="champion", policy=policy, store=store)
        mlgate.promote("bench", v2, to="challenger", policy=policy, store=store)
        # `mlflow models serve` runs `uvicorn` by name: put this interpreter's scripts first.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        env = {**os.environ, "MLFLOW_TRACKING_URI": server.uri, "PATH": path}
        ports = {"mlflow": free_port(), "mlgate": free_port(), "mlgate-split": free_port()}
        logs = {k: work / f"{k}.log" for k in ports}

        def start(name: str, *args: str) -> None:
            with logs[name].open("wb") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", *args], env=env,
                                              stdout=log, stderr=subprocess.STDOUT))  # fmt: skip

        start("mlflow", "mlflow", "models", "serve", "-m", f"models:/bench/{v1}", "--env-manager",
              "local", "-p", str(ports["mlflow"]), "-h", "127.0.0.1", "--workers", "1")  # fmt: skip
        start("mlgate", "mlgate", "serve", "bench", "--port", str(ports["mlgate"]), "--weight", "0")
        set_traffic(store, "bench", weight=50, reason="benchmark")
        start("mlgate-split", "mlgate", "serve", "bench", "--port", str(ports["mlgate-split"]))
        try:
            urls = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
            for (name, url), proc in zip(urls.items(), procs, strict=True):
                wait(url, proc, logs[name])
            check = json.dumps(
                {
                    "dataframe_split": json.loads(
                        features.head(50).to_json(orient="split", index=False)
                    )
                }
            )
            answers = {k: requests.post(f"{u}/invocations", data=check, headers={"Content-Type": "application/json"},
                                        timeout=30).json()["predictions"] for k, u in urls.items()}  # fmt: skip
            assert answers["mlflow"] == answers["mlgate"], "mlflow and mlgate disagree"
            print(f"identical predictions on 50 rows: {answers['mlflow'] == answers['mlgate']}")
            serving = requests.get(f"{urls['mlgate-split']}/version", timeout=10).json()["serving"]
            print("mlgate scoring path: " + ", ".join(
                f"{s['role']} v{s['version']} {s['scoring']} ({s['weight']:g}%)" for s in serving))  # fmt: skip
            print(
                f"{'server':<14}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
            )
            rows: dict[tuple[str, int], tuple[float, float, float, int]] = {}
            for clients in args.clients:
                for name, url in urls.items():
                    wrk(url, body, clients, 2, work)  # warm-up
                    rows[(name, clients)] = r = wrk(url, body, clients, args.seconds, work)
                    print(f"{name:<14}{clients:>8}{r[0]:>10.0f}{r[1]:>9.2f}{r[2]:>9.2f}{r[3]:>9}")
            print()
            for clients in args.clients:
                ml, mg, sp = (
                    rows[("mlflow", clients)],
                    rows[("mlgate", clients)],
                    rows[("mlgate-split", clients)],
                )
                print(f"{clients:>3} clients: mlgate/mlflow req/s {mg[0] / ml[0]:5.2f}x, p99 {mg[2]:.2f} vs "
                      f"{ml[2]:.2f} ms; split costs {100 * (1 - sp[0] / mg[0]):5.1f}% req/s")  # fmt: skip
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
