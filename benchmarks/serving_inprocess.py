"""What one request costs inside `mlgate serve`, without sockets: the ASGI app called in-process.

Run: `python benchmarks/serving_inprocess.py [--requests 20000] [--repeat 5]`. A one-row
LogisticRegression (the model of `benchmarks/serving.py`) is saved to a model directory and
loaded the way an image serves it; the app is then called on a uvloop event loop with ASGI
messages built once, so the figures are mlgate's own work per request (parsing, routing,
batching, scoring, encoding, counters, the ASGI messages) plus the event loop's, and none of
the HTTP parser's or the kernel's. Each figure is the best of `--repeat` runs (CPU time of this
process; the cases take turns, and on a shared machine the best run is the least disturbed).

Prints microseconds per request for `/invocations` and V2 `/infer`, one at a time and 32 in
flight (batched as under load), the same for a bare ASGI app that returns a fixed answer, and
the cost of rendering `/metrics` after traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

App = Callable[[Any, Any, Any], Awaitable[None]]


def scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8080"),
            (b"user-agent", b"wrk"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }


async def call(app: App, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request through the ASGI app: (status, body)."""
    message = {"type": "http.request", "body": body, "more_body": False}
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        return message

    async def send(msg: dict[str, Any]) -> None:
        nonlocal status
        if msg["type"] == "http.response.start":
            status = msg["status"]
        else:
            chunks.append(msg.get("body", b""))

    await app(scope(method, path, body), receive, send)
    return status, b"".join(chunks)


async def bare(scope: Any, receive: Any, send: Any) -> None:
    """The bare app of benchmarks/serving.py."""
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"predictions": [1]}'})


async def per_request(app: App, path: str, body: bytes, n: int, inflight: int) -> float:
    """CPU microseconds per request over ``n`` requests, ``inflight`` at a time."""
    started = time.process_time()
    for _ in range(n // inflight):
        results = await asyncio.gather(*(call(app, "POST", path, body) for _ in range(inflight)))
        assert all(s == 200 for s, _ in results), results[0]
    return (time.process_time() - started) / (n // inflight * inflight) * 1e6


def build_app(workdir: str) -> tuple[App, Any, Any]:
    import mlflow
    from mlflow.models import infer_signature

    from mlgate.serving.server import Follower, ServeConfig, create_app
    from mlgate.testing import tiny_classifier

    model, _, test = tiny_classifier()
    features = test.drop(columns="label")
    path = f"{workdir}/model"
    mlflow.sklearn.save_model(
        model, path, signature=infer_signature(features, model.predict(features))
    )
    config = ServeConfig(model="bench", model_dir=path, pin="1", verify_digest=False)
    follower = Follower(config)
    follower.load_now()
    return create_app(config, follower), follower, features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        app, follower, features = build_app(tmp)
        row = features.head(1)
        invocations = json.dumps(
            {"dataframe_split": json.loads(row.to_json(orient="split", index=False))}
        ).encode()
        v2 = json.dumps(
            {
                "inputs": [
                    {"name": c, "datatype": "FP64", "shape": [1], "data": row[c].tolist()}
                    for c in row.columns
                ]
            }
        ).encode()

        async def run() -> None:
            cases = [
                ("/invocations", app, "/invocations", invocations),
                ("V2 infer", app, "/v2/models/bench/infer", v2),
                ("bare", bare, "/invocations", invocations),
            ]
            for _, target, path, body in cases:
                await per_request(target, path, body, 2000, 32)  # warm-up (and batch costs)
            # the cases take turns, so that a busy moment of the machine disturbs each alike
            best: dict[tuple[str, int], float] = {}
            for _ in range(args.repeat):
                for name, target, path, body in cases:
                    for inflight in (1, 32):
                        took = await per_request(target, path, body, args.requests, inflight)
                        best[name, inflight] = min(best.get((name, inflight), took), took)
            print(f"{'case':<14}{'1 in flight':>14}{'32 in flight':>14}   (CPU us/request)")
            for name, *_ in cases:
                print(f"{name:<14}{best[name, 1]:>14.1f}{best[name, 32]:>14.1f}")
            renders = []
            for _ in range(args.repeat):
                started = time.process_time()
                for _ in range(200):
                    status, text = await call(app, "GET", "/metrics")
                    assert status == 200
                renders.append((time.process_time() - started) / 200 * 1e6)
            lines = text.decode().count("\n")
            print(f"GET /metrics: {min(renders):.1f} us ({lines} lines)")

        try:
            uvloop.run(run())
        finally:
            follower.stop()


if __name__ == "__main__":
    main()
