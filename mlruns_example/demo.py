"""The life of a model with mlgate, end to end, on the embedded store (nothing else started).

Run `make demo` from the repository root (or `python demo.py` here). It starts from a fresh
store in this directory (mlflow.db and mlruns/, both ignored by git) and tells the story:

1. train and register v1, promote it to champion (the first promotion);
2. train v2 (better), check it, promote it to challenger, build its serving image (only when a
   Docker engine answers), serve champion and challenger, shift traffic step by step on live
   metrics, and let the rollout promote v2 to champion;
3. train v3 on silently altered data (one value in row 15,000): the gate blocks it, exit 3;
4. roll the champion back to v1 and show the history.

Every mlgate step runs the real `mlgate` command, as CI would, and prints it with its exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = "example-classifier"
# The demo is about the embedded store, so it asks for it explicitly: in CI (CI or
# GITHUB_ACTIONS set) mlgate refuses the embedded default unless told MLGATE_ALLOW_EMBEDDED=1.
ENV = {
    **os.environ,
    "MLGATE_HOME": str(HERE),
    "MLGATE_ALLOW_EMBEDDED": "1",
    "PYTHONWARNINGS": "ignore",
}
ENV.pop("MLFLOW_TRACKING_URI", None)


def banner(text: str) -> None:
    print(f"\n{'=' * 78}\n{text}\n{'=' * 78}", flush=True)


def run(*args: str, expect: int = 0) -> str:
    """Run a command here, show it and its output, check its exit code."""
    shown = " ".join(a if " " not in a else repr(a) for a in args).replace(
        f"{sys.executable} -m mlgate", "mlgate"
    )
    shown = shown.replace(sys.executable, "python")
    print(f"\n$ {shown}", flush=True)
    out = subprocess.run(list(args), cwd=HERE, env=ENV, capture_output=True, text=True)
    text = out.stdout.rstrip()
    if text:
        print(text)
    for line in out.stderr.splitlines():
        if line.startswith(
            (
                "mlgate",
                "registered",
                "train.py",
                "step",
                "rollout",
                "resuming",
                "rolled",
                "artifacts verified",
                "building",
                "checking",
            )
        ):
            print(line)
    print(f"[exit {out.returncode}]", flush=True)
    if out.returncode != expect:
        print(out.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"demo: {shown} exited {out.returncode}, expected {expect}")
    return text


def mlgate(*args: str, expect: int = 0) -> str:
    return run(sys.executable, "-m", "mlgate", *args, expect=expect)


def train(*args: str) -> str:
    return run(sys.executable, "train.py", *args).splitlines()[-1]


def free_port() -> int:
    from mlgate.testing import free_port as fp

    return fp()


def build_image(ref: str) -> None:
    """`mlgate build` the challenger's image, when a Docker engine answers (else say so)."""
    from mlgate.deploy.engine import Engine
    from mlgate.errors import MlgateError

    try:
        Engine().close()
    except MlgateError as exc:
        print(f"\n(skipping `mlgate build {ref}`: {exc.message}. `make docker-engine` starts one.)")
        return
    mlgate("build", ref, "--offline")


def serve_and_roll_out() -> None:
    import requests

    from mlgate.testing import LoadGenerator, wait_http

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    print(f"\n$ mlgate serve {MODEL} --port {port} --poll 0.5 &", flush=True)
    server = subprocess.Popen([sys.executable, "-m", "mlgate", "serve", MODEL, "--port", str(port), "--poll", "0.5"],
                              cwd=HERE, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        try:
            wait_http(f"{url}/health", timeout=120, alive=lambda: server.poll() is None)
        except RuntimeError as exc:
            raise SystemExit(f"demo: the server did not become ready: {exc}") from None
        print(
            f"$ curl {url}/version\n{json.dumps(requests.get(f'{url}/version', timeout=5).json())}"
        )
        rows = [
            [0.5, -1.2, 0.3, 2.2, -0.7, 1.1, 0.0, -0.4],
            [-1.0, 0.4, 1.5, -0.3, 0.9, -2.0, 0.6, 0.2],
        ]
        body = json.dumps(
            {"dataframe_split": {"columns": [f"x{i}" for i in range(8)], "data": rows}}
        )
        answer = requests.post(
            f"{url}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        print(f"$ curl -X POST {url}/invocations -d '{{\"dataframe_split\": ...2 rows}}'\n"
              f"{answer.text}   (answered by version {answer.headers['X-Mlgate-Version']})")  # fmt: skip

        # Live traffic for the rollout to watch. A 60-tree forest answers one small request in a
        # few times the logistic baseline's latency (5.7x was seen on a busy 2-core CI machine),
        # so the demo allows 10x: the rollout still rolls back on a real slowdown or on errors.
        with LoadGenerator(url, body, clients=3):
            mlgate("rollout", MODEL, "--endpoint", url, "--steps", "10,50,100", "--min-requests",
                   "100", "--min-seconds", "2", "--poll", "0.5", "--max-latency-ratio", "10")  # fmt: skip
        time.sleep(1.5)  # one poll: the server follows the new champion
        print(
            f"$ curl {url}/version\n{json.dumps(requests.get(f'{url}/version', timeout=5).json())}"
        )
        metrics = [line for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines()
                   if line.startswith("mlgate_requests_total")]  # fmt: skip
        print("$ curl /metrics | grep mlgate_requests_total\n" + "\n".join(metrics))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        print("(server stopped)")


def main() -> int:
    started = time.time()
    for stale in ("mlflow.db", "mlruns"):
        path = HERE / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    print(f"Fresh embedded store in {HERE} (mlflow.db + mlruns/); policy: mlgate.toml")

    banner("1. Train v1 (a linear baseline), register it with lineage, make it the first champion")
    v1 = train("--model", "logreg")
    mlgate("show", f"{MODEL}/{v1}")
    mlgate("promote", f"{MODEL}/{v1}", "--to", "champion", "-m", "first model")

    banner("2. Train v2 (a random forest), check it, make it challenger, serve both, roll it out")
    v2 = train("--model", "forest")
    mlgate("check", f"{MODEL}/{v2}", "--to", "challenger")
    mlgate(
        "promote", f"{MODEL}/{v2}", "--to", "challenger", "-m", "forest beats the baseline offline"
    )
    build_image(f"{MODEL}@challenger")
    serve_and_roll_out()
    mlgate("status", MODEL)

    banner("3. Train v3 on silently altered data (row 15,000 changed): the gate says no")
    v3 = train("--model", "forest", "--altered-data")
    mlgate("promote", f"{MODEL}/{v3}", "--to", "challenger", expect=3)

    banner("4. Roll the champion back to v1 and read the history")
    mlgate("rollback", MODEL, "-m", "demo: back to the baseline")
    mlgate("history", MODEL)
    mlgate("status", MODEL)

    print(f"\nDone in {time.time() - started:.0f} s. See it in the MLflow UI:\n"
          f"  cd {HERE.name} && mlflow ui --backend-store-uri sqlite:///mlflow.db")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
