"""Promotion, history and status cost against a real local tracking server, from 10 to 1,000.

Run: `python benchmarks/promotion.py [--sizes 10 100 1000]`.

For each size N a model gets N versions and N ledger events; then it times, as a user would see
them (a fresh `mlgate` process each, Python start-up included), `mlgate promote` (metric,
no-regression and signature gates), `mlgate history` and `mlgate status`, plus the same calls
in-process. Targets: promote under 3 s; history and status under 2 s at 1,000.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLICY = """
[[default.gates.champion]]
type = "metric"
metric = "accuracy"
min = 0.5
[[default.gates.champion]]
type = "no_regression"
metric = "accuracy"
tolerance = 0.01
[[default.gates.champion]]
type = "signature"
"""


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def cli(args: list[str], env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mlgate", *args], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"mlgate {' '.join(args)} failed ({out.returncode}): {out.stderr}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    args = ap.parse_args()

    import mlflow
    import mlflow.sklearn
    from mlflow.tracking import MlflowClient

    import mlgate
    from mlgate.ledger import Ledger, new_event
    from mlgate.testing import TrackingServer, tiny_classifier

    model, train, test = tiny_classifier()
    with tempfile.TemporaryDirectory() as tmp, TrackingServer.temporary() as server:
        policy = Path(tmp) / "mlgate.toml"
        policy.write_text(POLICY)
        env = {**os.environ, "MLFLOW_TRACKING_URI": server.uri}
        store = mlgate.Store(server.uri)
        client = MlflowClient(server.uri)
        mlflow.set_tracking_uri(server.uri)
        print(f"tracking server {server.uri} (SQLite, 1 worker)")
        print(f"{'N':>6} {'promote cli':>12} {'promote lib':>12} {'history cli':>12} {'history lib':>12}"
              f" {'status cli':>11} {'status lib':>11}")  # fmt: skip
        for n in args.sizes:
            name = f"bench-{n}"
            # Two real registrations (champion and candidate carry lineage and metrics) ...
            champ = mlgate.register(model, name=name, train_data=train, eval_data=test,
                                    metrics={"accuracy": 0.80}, input_example=test.drop(columns="label").head(2),
                                    store=store).number  # fmt: skip
            mlgate.promote(name, champ, to="champion", policy=policy, store=store)
            source = store.get_version(name, champ)
            # ... and N - 2 more versions of the same artifacts, registered directly.
            for _ in range(n - 2):
                client.create_model_version(name, source.source, run_id=source.run_id,
                                            tags=source.tags, model_id=source.model_id)  # fmt: skip
            ledger = Ledger(store)
            for i in range(max(0, n - 1)):
                ledger.append(new_event("promote", "rejected" if i % 3 else "conflict", name, "champion",
                                        from_version=champ, to_version=str(i + 3), reason="bench"))  # fmt: skip
            candidates = [v.version for v in store.search_versions(name) if v.version != champ]
            it = iter(candidates)
            t_cli = timed(lambda: cli(["promote", name, "-v", next(it), "--to", "champion",
                                       "--policy", str(policy)], env))  # fmt: skip
            t_lib = timed(
                lambda: mlgate.promote(name, next(it), to="champion", policy=policy, store=store)
            )
            h_cli = timed(lambda: cli(["history", name, "--policy", str(policy)], env))
            h_lib = timed(lambda: mlgate.history(name, policy=policy, store=store))
            s_cli = timed(lambda: cli(["status", name, "--policy", str(policy)], env))
            s_lib = timed(lambda: mlgate.status(name, policy=policy, store=store))
            events = len(mlgate.history(name, policy=policy, store=store))
            versions = len(store.search_versions(name))
            print(f"{n:>6} {t_cli:>11.2f}s {t_lib:>11.2f}s {h_cli:>11.2f}s {h_lib:>11.2f}s"
                  f" {s_cli:>10.2f}s {s_lib:>10.2f}s   ({versions} versions, {events} events)")  # fmt: skip
        print("targets: promote < 3 s; history and status < 2 s at 1,000 (cli = fresh process)")


if __name__ == "__main__":
    main()
