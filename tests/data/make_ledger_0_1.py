"""Write ``ledger-0.1.json``: the ledger runs that mlgate 0.1 (commit 3f42145) records.

Run it with mlgate 0.1 importable, not this checkout's code: export that commit's tree
(``git archive 3f42145 src``) into a directory OLD, then ``PYTHONPATH=OLD/src python
tests/data/make_ledger_0_1.py tests/data/ledger-0.1.json``. It starts its own ``mlflow server``,
registers three versions of ``ledger01`` and drives what 0.1 writes to the ledger: promotions, a
no-op, a gate refusal, a conflict, a rollback, traffic changes (split and shadow), a forced attach, and
rollouts that are rolled back, aborted and completed (the replicas' ``/metrics`` text is built
here, through ``rollout(fetch=...)``). Then it dumps the ledger experiment's runs: run name,
start time and tags (the ``mlgate.event.*`` tags and the run name; nothing of this machine),
and what 0.1's ``mlgate history`` (text, Markdown, JSON without run ids) and ``status`` print.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import mlgate
from mlgate.errors import ConflictError, GateRejected
from mlgate.promotion import rollout as ro
from mlgate.promotion.traffic import set_traffic
from mlgate.testing import TrackingServer, tiny_classifier

MODEL = "ledger01"
POLICY = """
[models.ledger01.gates]
challenger = []
champion = [{ type = "metric", metric = "accuracy", min = 0.5 }]
"""


def metrics_text(counts: dict[str, tuple[int, int]]) -> str:
    """A replica's /metrics: requests and errors per version, 2 ms mean latency."""
    lines = []
    for version, (requests, errors) in counts.items():
        lines += [
            f'mlgate_requests_total{{version="{version}",role="champion"}} {requests}',
            f'mlgate_errors_total{{version="{version}",code="500"}} {errors}',
            f'mlgate_request_seconds_sum{{version="{version}"}} {requests * 0.002}',
            f'mlgate_request_seconds_count{{version="{version}"}} {requests}',
        ]
    return "\n".join(lines) + "\n"


class Replica:
    """Counters that grow by ``step`` requests per read; the challenger errs at ``bad`` rate."""

    def __init__(self, champion: str, challenger: str, bad: float) -> None:
        self.champion, self.challenger, self.bad = champion, challenger, bad
        self.reads = 0

    def __call__(self, url: str) -> str:
        self.reads += 1
        n = 100 * self.reads
        return metrics_text(
            {self.champion: (n, 0), self.challenger: (n, int(n * self.bad))},
        )


def drive(store: mlgate.Store, policy: Path) -> None:
    model, train, test = tiny_classifier()
    versions = [
        mlgate.register(
            model, name=MODEL, train_data=train, eval_data=test, metrics={"accuracy": acc}
        ).number
        for acc in (0.9, 0.95, 0.2)
    ]
    v1, v2, v3 = versions
    mlgate.promote(MODEL, v1, to="champion", reason="first champion", policy=policy)
    mlgate.promote(MODEL, v1, to="champion", reason="again", policy=policy)  # unchanged
    mlgate.promote(MODEL, v2, to="champion", reason="retrained", policy=policy)
    with contextlib.suppress(GateRejected):
        mlgate.promote(MODEL, v3, to="champion", reason="worse", policy=policy)
    with contextlib.suppress(ConflictError):
        mlgate.promote(MODEL, v3, to="champion", expected="1", policy=policy)
    mlgate.rollback(MODEL, reason="latency spike", policy=policy)
    # A forced attach: version 1's recorded training fingerprint is replaced.
    mlgate.attach(f"{MODEL}/{v1}", train_data=test, force=True, reason="adopt", policy=policy)
    mlgate.promote(MODEL, v2, to="challenger", reason="try it", policy=policy)
    set_traffic(store, MODEL, weight=5, reason="canary")
    set_traffic(store, MODEL, weight=10, mode="shadow", reason="shadow it")
    set_traffic(store, MODEL, weight=0, reason="off")
    bounds = ro.Bounds(min_requests=1, min_seconds=0, max_seconds=60, max_error_rate_delta=0.05)
    fast = {"poll": 0, "sleep": lambda _s: None, "policy": policy, "bounds": bounds}
    with contextlib.suppress(GateRejected):  # rolled back: the challenger errs on 1 in 5
        ro.rollout(MODEL, ["http://replica-a"], steps=(25, 100), fetch=Replica(v1, v2, 0.2), **fast)
    seeded = ro.RolloutState(champion=v1, challenger=v2, steps=[5, 100], started_at="x")
    store.set_model_tag(MODEL, ro.ROLLOUT_TAG, seeded.to_json())
    ro.abort(MODEL, reason="pager", policy=policy)
    ro.rollout(MODEL, ["http://replica-a"], steps=(50, 100), fetch=Replica(v1, v2, 0.0), **fast)


def dump(store: mlgate.Store) -> list[dict[str, object]]:
    exp = store.experiment_id("mlgate-ledger", create=False)
    assert exp is not None
    runs = store.search_runs(exp, "", order_by=["attributes.start_time ASC"])
    out = []
    for run in runs:
        tags = {k: v for k, v in sorted(run.tags.items()) if k.startswith("mlgate.event.")}
        out.append({"run_name": run.tags["mlflow.runName"], "start_ms": run.start_ms, "tags": tags})
    return out


def cli_output(*args: str) -> str:
    """What ``mlgate ARGS`` prints on stdout (0.1's rendering of these events)."""
    from mlgate.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(args)) == 0
    return out.getvalue()


def main(target: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, TrackingServer(Path(tmp) / "server") as server:
        policy = Path(tmp) / "mlgate.toml"
        policy.write_text(POLICY)
        store = mlgate.Store(server.uri)
        # A CI run's actor and link, so the events carry them (and no name of this machine).
        os.environ.update(
            MLFLOW_TRACKING_URI=server.uri,
            GITHUB_ACTOR="alice",
            GITHUB_REPOSITORY="acme/churn",
            GITHUB_RUN_ID="42",
            GITHUB_SERVER_URL="https://github.com",
        )
        drive(store, policy)
        runs = dump(store)
        printed = {
            "history": cli_output("history", MODEL),
            "history --markdown": cli_output("history", MODEL, "--markdown"),
            "history --json": json.loads(cli_output("history", MODEL, "--json")),
            "status": cli_output("status", MODEL, "--policy", str(policy)),
        }
    for event in printed["history --json"]:
        event.pop("record_id")  # the run ids of this server
    doc = {
        "written_by": f"mlgate {mlgate.__version__} (commit 3f42145)",
        "model": MODEL,
        "runs": runs,
        "printed": printed,
    }
    Path(target).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"{len(runs)} ledger runs -> {target}")


if __name__ == "__main__":
    main(sys.argv[1])
