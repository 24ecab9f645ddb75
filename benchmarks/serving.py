"""Serving throughput: `mlflow models serve` vs `mlgate serve` (MLflow's `/invocations` and the
Open Inference Protocol's V2 `/infer`) vs MLServer's V2, same model, same machine, same load.

Run: `python benchmarks/serving.py [--seconds 10] [--clients 1 8 32] [--model logistic|columns]
[--servers ...] [--rounds N] [--slices K]` (needs `wrk`, Debian's package of that name). Every
server runs one worker; wrk drives single-row JSON requests with 1, 8 and 32 connections. Champion
and challenger are two different fits (C=1 and C=0.1). Checks that the servers return identical
predictions, then prints requests/s, p50/p99 latency and the server's CPU time per request (user +
system, where the server is one process: mlgate and bare), the ratios, and the cost of a 50/50
champion/challenger split versus serving one version. With `--rounds N` everything is measured N
times in turn and each ratio is the median over the rounds (with its range): on a shared machine
single runs vary by tens of percent. With `--slices K` each server's `--seconds` are measured as K
slices, the servers taking turns slice by slice, so that the figures a ratio compares are never
more than a few seconds apart (the machine's speed drifts over minutes). Targets: at 32 clients
mlgate >= 5x MLflow's requests/s with p99 no worse; split < 10% cost; V2 within 10% of mlgate's
`/invocations`; V2 >= 5x MLServer's V2; mlgate >= 40% of bare.

`mlserver-v2` is MLServer with its MLflow runtime (installed from `requirements/mlserver.txt`
into a cached virtual environment of its own) on the champion's model directory, with its
adaptive batching on (up to 32 requests, 2 ms) and `parallel_workers` 0 (its worker processes
do not start with uvloop 0.23). `bare` is the limit of this machine's HTTP stack: an ASGI app
on the same uvicorn, httptools and uvloop that reads the body and returns a fixed answer; the
share of it that mlgate reaches is printed for `/invocations` and V2. `bare-v2` is the same
app fed the V2 request on the V2 path, answering a V2 response of about mlgate's size: the protocol's
own cost on this HTTP stack (V2's request and answer are several times MLflow's), against which
the V2/invocations ratio is to be read.

`--model logistic` (default) is a LogisticRegression, which mlgate scores on the schema's
ndarray; `--model columns` puts a ColumnTransformer (columns chosen by name) in front of it,
which keeps mlgate's DataFrame path: the figures for models outside the array path.

`--model trees` is a HistGradientBoostingClassifier (100 trees, 20 named float columns)
registered by plain MLflow, whose scoring uses OpenMP: its default servers are each peer as
shipped and tuned (`-omp1`: `OMP_NUM_THREADS=1`, as one tunes them), `mlgate-threads0`
(`--threads 0`: the native pools uncapped) and `mlgate-w2` (`--workers 2`). Targets at 32
clients: mlgate as shipped within 5% of `mlgate-omp1`; >= 30x `mlserver-v2-omp1`; >= 60x
`mlflow-omp1`; `mlgate-w2` >= 1.3x mlgate. The load generator runs on the same machine, so
`mlgate-w2` measures what a second process gains from the cores wrk and the rest leave idle:
the `idle %` column (the machine's CPU left idle during each run) and the CPU per request say
whether there was any to gain. Run: `python benchmarks/serving.py --model trees --clients 8 32
--seconds 6 --slices 3 --rounds 3`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import requests


def wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    from mlgate.testing import wait_http

    try:
        wait_http(f"{url}/ping", timeout=timeout, alive=lambda: proc.poll() is None)
    except RuntimeError as exc:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"{exc}; the end of {log.name}:\n{tail}") from None


class Result(NamedTuple):
    """One wrk run: requests/s, p50 and p99 latency (ms), non-2xx answers, the server's CPU
    time per request in microseconds (user + system of its processes, from /proc; NaN where not
    measured), and the share of the machine's CPU left idle meanwhile (what the server, wrk and
    everything else running did not use)."""

    rps: float
    p50: float
    p99: float
    non2xx: int
    cpu_us: float
    idle: float = float("nan")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time so far of a process and its children (Linux' /proc: a server
    that answers from child processes, `mlflow models serve` or mlgate's workers, is measured
    whole), NaN when unknown. A child that exits in between is lost, so take figures where none
    did (the benchmark's servers keep theirs)."""
    if pid is None:
        return float("nan")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK") if total else float("nan")


def idle_seconds() -> tuple[float, float]:
    """The whole machine's idle and total CPU seconds so far (/proc/stat's first line)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    return (fields[3] + fields[4]) / tick, sum(fields[:8]) / tick


def wrk(
    url: str,
    body: str,
    clients: int,
    seconds: int,
    workdir: Path,
    path: str = "/invocations",
    pid: int | None = None,
) -> Result:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body)}\n"
    )
    cpu, (idle, total) = cpu_seconds(pid), idle_seconds()
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"{url}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = cpu_seconds(pid) - cpu
    idle_after, total_after = idle_seconds()
    idle_share = (idle_after - idle) / max(total_after - total, 1e-9)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    cpu_us = 1e6 * cpu / count if count else float("nan")
    return Result(
        rps, pct("50"), pct("99"), int(non2xx.group(1)) if non2xx else 0, cpu_us, idle_share
    )


def _model(kind: str, c: float) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator = LogisticRegression(C=c, max_iter=200)
    if kind == "logistic":
        return estimator
    by_name = ColumnTransformer(
        [("scaled", StandardScaler(), ["f0", "f1", "f2"])], remainder="passthrough"
    )
    return make_pipeline(by_name, estimator)


# The fixed answers are about the size of mlgate's own: MLflow's, and on /v2/ paths a V2 response
# with one output tensor of one row. `bare-v2` is the same process fed the V2 request: the
# protocol's own cost (a bigger request and answer) at this machine's HTTP stack.
BARE_APP = """
V2 = (b'{"model_name": "bench", "model_version": "1", "id": "0123456789abcdef-1", '
      b'"parameters": {"content_type": "np"}, "outputs": [{"name": "output-1", "shape": [1, 1], '
      b'"datatype": "INT64", "parameters": {"content_type": "np"}, "data": [1]}]}')

async def app(scope, receive, send):
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    body = V2 if scope["path"].startswith("/v2/") else b'{"predictions": [1]}'
    await send({"type": "http.response.body", "body": body})
"""
SERVERS = (
    "mlflow",
    "mlflow-omp1",
    "mlgate",
    "mlgate-omp1",
    "mlgate-threads0",
    "mlgate-w2",
    "mlgate-v2",
    "mlgate-split",
    "mlserver-v2",
    "mlserver-v2-omp1",
    "bare",
    "bare-v2",
)
DEFAULT_SERVERS = (
    "mlflow",
    "mlgate",
    "mlgate-v2",
    "mlgate-split",
    "mlserver-v2",
    "bare",
    "bare-v2",
)
#: Taken out of the servers' environment: "as shipped" means as a user starts them.
MLGATE_ENV = ("MLGATE_THREADS", "MLGATE_WORKERS")


def v2_body(frame: Any) -> str:
    """A V2 request with one FP64 column per feature (MLServer's `pd` codec)."""
    inputs = [
        {"name": c, "datatype": "FP64", "shape": [len(frame)], "data": frame[c].tolist()}
        for c in frame.columns
    ]
    return json.dumps({"inputs": inputs})


def measure(
    urls: dict[str, str],
    pids: dict[str, int | None],
    order: list[str],
    args: argparse.Namespace,
    bodies: dict[str, str],
    work: Path,
) -> dict[tuple[str, int], list[Result]]:
    """Every server at every client count, ``args.rounds`` times; the servers take turns, so
    that a busy moment of a shared machine disturbs neighbouring figures alike. With
    ``args.slices`` > 1 each server's ``args.seconds`` are measured as that many slices, the
    servers taking turns slice by slice (each warmed up just before its first), so that figures
    compared with each other are never more than a few seconds apart."""
    head = f"{'round':>5} {'server':<14}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
    print(f"{head}{'non-2xx':>9}{'cpu us/req':>12}{'idle %':>8}")
    slice_seconds = args.seconds // args.slices
    results: dict[tuple[str, int], list[Result]] = {}
    for n in range(1, args.rounds + 1):
        for clients in args.clients:

            def run(name: str, seconds: int, measured: bool = True) -> Result:
                v2 = "-v2" in name
                target = "/v2/models/bench/infer" if v2 else "/invocations"
                payload = bodies["v2" if v2 else "json"]
                pid = pids.get(name) if measured else None
                return wrk(urls[name], payload, clients, seconds, work, target, pid)

            slices: dict[str, list[Result]] = {name: [] for name in order}
            for k in range(args.slices):
                for name in order:
                    if k == 0:
                        run(name, 2, measured=False)  # warm-up, just before its first slice
                    slices[name].append(run(name, slice_seconds))
            for name in order:
                r = combined(slices[name])
                results.setdefault((name, clients), []).append(r)
                print(
                    f"{n:>5} {name:<14}{clients:>8}{r.rps:>10.0f}{r.p50:>9.2f}{r.p99:>9.2f}"
                    f"{r.non2xx:>9}{r.cpu_us:>12.1f}{100 * r.idle:>8.1f}"
                )
    return results


def combined(slices: list[Result]) -> Result:
    """Slices of equal length as one result: the mean requests/s, CPU per request over all the
    requests, non-2xx summed, and the median of the slices' p50 and p99 (percentiles of
    separate runs do not add up; the median is what a typical slice saw)."""
    if len(slices) == 1:
        return slices[0]
    rps = statistics.fmean(r.rps for r in slices)
    cpu = sum(r.cpu_us * r.rps for r in slices) / sum(r.rps for r in slices)
    return Result(
        rps,
        statistics.median(r.p50 for r in slices),
        statistics.median(r.p99 for r in slices),
        sum(r.non2xx for r in slices),
        cpu,
        statistics.fmean(r.idle for r in slices),
    )


def _spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """The median, and the range when there are several values."""
    mid = fmt.format(statistics.median(values))
    if len(values) == 1:
        return mid
    return f"{mid} ({fmt.format(min(values))}-{fmt.format(max(values))})"


#: Ratios of requests/s printed when both servers ran: (numerator, denominator, label).
PAIRS = (
    ("mlgate", "mlgate-omp1", "mlgate as shipped/OMP_NUM_THREADS=1"),
    ("mlgate", "mlgate-threads0", "mlgate capped/--threads 0"),
    ("mlgate", "mlflow-omp1", "mlgate/mlflow tuned"),
    ("mlgate", "mlserver-v2", "mlgate/MLServer V2"),
    ("mlgate", "mlserver-v2-omp1", "mlgate/MLServer V2 tuned"),
    ("mlgate-v2", "mlserver-v2-omp1", "mlgate V2/MLServer V2 tuned"),
    ("mlserver-v2-omp1", "mlserver-v2", "MLServer tuned/as shipped"),
    ("mlgate-w2", "mlgate", "2 workers/1"),
)


def report(
    results: dict[tuple[str, int], list[Result]], order: list[str], clients_list: list[int]
) -> None:
    """Ratios per round (the servers of one round ran minutes apart at most), as the median over
    the rounds with their range."""
    print()
    for clients in clients_list:
        got = {n: results[(n, clients)] for n in order}

        def ratio(a: str, b: str, pick: Callable[[Result], float] = lambda r: r.rps) -> list[float]:
            return [pick(x) / pick(y) for x, y in zip(got[a], got[b], strict=True)]

        parts = [f"{clients:>3} clients:"]
        if "mlflow" in got and "mlgate" in got:
            ml, mg = got["mlflow"][-1], got["mlgate"][-1]
            parts.append(
                f"mlgate/mlflow req/s {_spread(ratio('mlgate', 'mlflow'))}x, p99 {mg.p99:.2f} "
                f"vs {ml.p99:.2f} ms;"
            )
        if "mlgate-split" in got and "mlgate" in got:
            cost = [100 * (1 - x) for x in ratio("mlgate-split", "mlgate")]
            parts.append(f"split costs {_spread(cost, '{:.1f}')}% req/s;")
        if "mlgate-v2" in got and "mlgate" in got:
            parts.append(f"V2/invocations {_spread(ratio('mlgate-v2', 'mlgate'))};")
        if "mlgate-v2" in got and "mlserver-v2" in got:
            parts.append(f"mlgate V2/MLServer V2 {_spread(ratio('mlgate-v2', 'mlserver-v2'))}x;")
        for a, b, what in PAIRS:
            if a in got and b in got:
                parts.append(f"{what} {_spread(ratio(a, b))}x;")
        if "bare" in got:
            for n in ("mlgate", "mlgate-v2"):
                if n in got:
                    share = [100 * x for x in ratio(n, "bare")]
                    cpu = [100 * x for x in ratio("bare", n, lambda r: r.cpu_us)]
                    parts.append(
                        f"{n} {_spread(share, '{:.1f}')}% of bare (by CPU per request "
                        f"{_spread(cpu, '{:.1f}')}%);"
                    )
        if "bare-v2" in got and "bare" in got:
            parts.append(f"bare V2/bare invocations {_spread(ratio('bare-v2', 'bare'))};")
            if "mlgate-v2" in got:
                share = [100 * x for x in ratio("mlgate-v2", "bare-v2")]
                parts.append(f"mlgate-v2 {_spread(share, '{:.1f}')}% of bare-v2;")
        print(" ".join(parts))


TREE_SERVERS = (
    "mlflow",
    "mlflow-omp1",
    "mlgate",
    "mlgate-omp1",
    "mlgate-threads0",
    "mlgate-w2",
    "mlserver-v2",
    "mlserver-v2-omp1",
)
TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
#: The peers "tuned": one OpenMP thread, as the issue's measurements did.
OMP1 = {"OMP_NUM_THREADS": "1"}


def _trees(seed: int) -> tuple[Any, Any, Any]:
    """A HistGradientBoostingClassifier (100 trees) on 20 named float columns, and its data."""
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    x, y = make_classification(n_samples=3000, n_features=20, n_informative=12, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(20)])
    frame["label"] = y
    train, test = (t.reset_index(drop=True) for t in train_test_split(frame, random_state=0))
    model = HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=seed)
    model.fit(train.drop(columns="label"), train["label"])
    assert model.n_iter_ == 100
    return model, train, test


def register_models(
    args: argparse.Namespace, store: Any, uri: str, work: Path
) -> tuple[Any, str, str]:
    """Champion and challenger registered (mlgate's way; plain MLflow's for the trees): the
    features, and the two version numbers."""
    import mlgate
    from mlgate.testing import tiny_classifier

    if args.model == "trees":
        import mlflow
        from mlflow import MlflowClient

        (champion, train, test), (challenger, _, _) = _trees(0), _trees(1)
        features = test.drop(columns="label")
        mlflow.set_tracking_uri(uri)
        numbers = []
        for m in (champion, challenger):
            with mlflow.start_run():
                info = mlflow.sklearn.log_model(
                    m,
                    name="model",
                    input_example=features.head(2),
                    registered_model_name="bench",
                    skops_trusted_types=[TREE_PREDICTOR],  # (MLflow's default format is skops)
                )
            numbers.append(str(info.registered_model_version))
        client = MlflowClient(uri)
        client.set_registered_model_alias("bench", "champion", numbers[0])
        client.set_registered_model_alias("bench", "challenger", numbers[1])
        return features, numbers[0], numbers[1]
    _, train, test = tiny_classifier()
    features = test.drop(columns="label")
    champion, challenger = (
        _model(args.model, c).fit(train[features.columns], train["label"]) for c in (1.0, 0.1)
    )
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
    return features, v1, v2


def server_commands(v1: str, ports: dict[str, int]) -> dict[str, tuple[list[str], dict[str, str]]]:
    """``python -m`` arguments and added environment of each server this process starts."""
    out: dict[str, tuple[list[str], dict[str, str]]] = {}
    for name, port in ports.items():
        extra = OMP1 if name.endswith("-omp1") else {}
        if name.startswith("mlflow"):
            args = ["mlflow", "models", "serve", "-m", f"models:/bench/{v1}"]
            args += ["--env-manager", "local", "-p", str(port), "-h", "127.0.0.1", "--workers", "1"]
        elif name == "mlgate-split":
            args = ["mlgate", "serve", "bench", "--port", str(port)]
        elif name.startswith("mlgate"):
            args = ["mlgate", "serve", "bench", "--port", str(port), "--weight", "0"]
            if name == "mlgate-threads0":
                args += ["--threads", "0"]
            if name == "mlgate-w2":
                args += ["--workers", "2"]
        else:  # bare
            args = ["uvicorn", "bare:app", "--port", str(port), "--loop", "uvloop"]
            args += ["--http", "httptools", "--lifespan", "off", "--no-access-log"]
            args += ["--log-level", "warning"]
        out[name] = (args, extra)
    return out


def check_answers(urls: dict[str, str], features: Any) -> None:
    """Every server (but the split) returns the same predictions on 50 rows."""
    check_rows = features.head(50)
    check = json.dumps(
        {"dataframe_split": json.loads(check_rows.to_json(orient="split", index=False))}
    )
    answers = {}
    for k, u in urls.items():
        if k.startswith("bare"):
            continue
        if "-v2" in k:
            r = requests.post(
                f"{u}/v2/models/bench/infer",
                data=v2_body(check_rows),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            answers[k] = r.json()["outputs"][0]["data"]
        else:
            r = requests.post(
                f"{u}/invocations",
                data=check,
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            answers[k] = r.json()["predictions"]
    first = next(iter(answers.values()))
    same = all(a == first for k, a in answers.items() if k != "mlgate-split")
    assert same, f"the servers disagree: {answers}"
    print(f"identical predictions on 50 rows from {', '.join(answers)}: {same}")
    if "mlgate-split" in urls:
        serving = requests.get(f"{urls['mlgate-split']}/version", timeout=10).json()
        print(
            "mlgate scoring path: "
            + ", ".join(
                f"{s['role']} v{s['version']} {s['scoring']} ({s['weight']:g}%)"
                for s in serving["serving"]
            )
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--model", choices=["logistic", "columns", "trees"], default="logistic")
    ap.add_argument(
        "--servers",
        nargs="+",
        choices=SERVERS,
        help=f"default: {' '.join(DEFAULT_SERVERS)}; with --model trees: {' '.join(TREE_SERVERS)}",
    )
    ap.add_argument("--rounds", type=int, default=1, help="measure everything this many times")
    ap.add_argument(
        "--slices",
        type=int,
        default=1,
        help="measure each server's --seconds as this many slices, the servers taking turns "
        "slice by slice (--seconds must be a multiple)",
    )
    args = ap.parse_args()
    if args.slices < 1 or args.seconds % args.slices:
        ap.error(f"--seconds {args.seconds} is not a multiple of --slices {args.slices}")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    args.servers = args.servers or list(TREE_SERVERS if args.model == "trees" else DEFAULT_SERVERS)
    run_benchmark(args)


def run_benchmark(args: argparse.Namespace) -> None:
    import mlgate
    from mlgate.promotion.traffic import set_traffic
    from mlgate.testing import TrackingServer, free_port

    wanted = set(args.servers)
    procs: list[subprocess.Popen[bytes]] = []
    mlservers: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, TrackingServer.temporary() as server:
        work = Path(tmp)
        store = mlgate.Store(server.uri)
        features, v1, _ = register_models(args, store, server.uri, work)
        body = json.dumps(
            {"dataframe_split": json.loads(features.head(1).to_json(orient="split", index=False))}
        )
        v2 = v2_body(features.head(1))
        # `mlflow models serve` runs `uvicorn` by name: put this interpreter's scripts first.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        shipped = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", *MLGATE_ENV)}
        env = {**shipped, "MLFLOW_TRACKING_URI": server.uri, "PATH": path}
        names = [
            n
            for n in SERVERS
            if not n.startswith("mlserver")
            and n not in ("mlgate-v2", "bare-v2")
            and (
                n in wanted
                or (n == "mlgate" and "mlgate-v2" in wanted)
                or (n == "bare" and "bare-v2" in wanted)
            )
        ]
        ports = {k: free_port() for k in names}
        logs = {k: work / f"{k}.log" for k in ports}
        if "bare" in ports:
            (work / "bare.py").write_text(BARE_APP)
        for name, (command, extra) in server_commands(v1, ports).items():
            if name == "mlgate-split":
                set_traffic(store, "bench", weight=50, reason="benchmark")
            with logs[name].open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", *command],
                        env={**env, **extra},
                        cwd=work,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        try:
            urls = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
            for (name, url), proc in zip(urls.items(), procs, strict=True):
                wait(url, proc, logs[name])
            mlserver_names = [n for n in ("mlserver-v2", "mlserver-v2-omp1") if n in wanted]
            if mlserver_names:
                sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
                from test_mlserver_compat import MLServer, mlserver_venv

                venv = mlserver_venv(Path(tempfile.gettempdir()) / "mlgate-bench")
                model_dir = store.download(f"models:/bench/{v1}", dst=str(work / "artifacts"))
                for name in mlserver_names:
                    mlservers[name] = MLServer(
                        venv,
                        work / name,
                        model_dir,
                        name="bench",
                        version=v1,
                        max_batch_size=32,
                        max_batch_time=0.002,
                        env={**shipped, **(OMP1 if name.endswith("-omp1") else {})},
                    ).start()
                    urls[name] = mlservers[name].url
            if "mlgate-v2" in wanted:
                urls["mlgate-v2"] = urls["mlgate"]
            if "bare-v2" in wanted:
                urls["bare-v2"] = urls["bare"]
            check_answers(urls, features)
            pids: dict[str, int | None] = {n: p.pid for n, p in zip(ports, procs, strict=True)}
            for name, m in mlservers.items():
                pids[name] = m.proc.pid
            pids["mlgate-v2"] = pids.get("mlgate")
            pids["bare-v2"] = pids.get("bare")
            order = [n for n in SERVERS if n in urls and n in wanted]
            results = measure(urls, pids, order, args, {"json": body, "v2": v2}, work)
            report(results, order, args.clients)
        finally:
            for m in mlservers.values():
                m.stop()
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
