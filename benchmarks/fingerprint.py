"""Fingerprint speed: mlgate vs raw BLAKE3 and MLflow's dataset digest, on the same frames.

Run: `make bench` (or `python benchmarks/fingerprint.py [--rows N] [--rounds N] [--file-mb N]`).
The frame section times, round after round, raw BLAKE3 over the numeric column buffers, mlgate's
fingerprint of the numeric frame and of the same frame plus one string column (as ``dtype=object``
and as pandas' default ``str`` dtype), and MLflow's ``from_pandas().digest`` of both string
frames. Ratios are taken within each round and printed as median (range). Targets: numeric
mlgate >= 0.9x raw BLAKE3; with a ``str`` column >= 3x MLflow's digest; with an object column
faster than MLflow's digest (which reads the first 10,000 rows; mlgate reads all of them).
The file section: mlgate vs raw memory-mapped BLAKE3 (what `b3sum` does), and a second call on an
unchanged file served from the stat cache.

Measured (MLflow 3.18.0, pandas 3.1.1, 2 cores shared with other jobs): see README
"Fingerprints" for the figures and the command.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import numpy as np
import pandas as pd

from mlgate.fingerprint import fingerprint_file, fingerprint_frame


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all this process's threads)."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def raw_blake3(buffers: list[memoryview]) -> str:
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    for b in buffers:
        h.update(b)
    return str(h.hexdigest())


def spread(values: list[float]) -> str:
    """``median (min-max)`` of per-round values."""
    return f"{statistics.median(values):6.2f}x ({min(values):.2f}-{max(values):.2f})"


def frames(args: argparse.Namespace) -> None:
    """Each round times every contender once on the same frames, in turn; the ratios are taken
    within a round (so a busy moment hits both sides) and shown as median (range)."""
    rng = np.random.default_rng(0)
    numeric = pd.DataFrame(rng.normal(size=(args.rows, 10)), columns=[f"x{i}" for i in range(10)])
    ids = [f"id-{i}" for i in range(args.rows)]
    with_object = numeric.assign(s=pd.Series(ids, dtype=object))
    with_str = numeric.assign(s=pd.Series(ids, dtype="str"))
    del ids
    assert with_object["s"].dtype == object and with_str["s"].dtype != object
    num_bytes = numeric.memory_usage(index=False).sum()
    buffers = [memoryview(numeric[c].to_numpy()).cast("B") for c in numeric.columns]
    import mlflow

    print(
        f"frame: {args.rows:,} rows x 10 float64 (+1 string column: dtype=object, or pandas'"
        f" default {with_str['s'].dtype!r});"
        f" numeric {num_bytes / 1e9:.2f} GB; pandas {pd.__version__}, MLflow {mlflow.__version__}"
    )
    import mlflow.data

    contenders: dict[str, Callable[[], object]] = {
        "raw blake3 (column buffers)": lambda: raw_blake3(buffers),
        "mlgate fingerprint (numeric)": lambda: fingerprint_frame(numeric),
        "mlgate fingerprint (+ object str)": lambda: fingerprint_frame(with_object),
        "mlgate fingerprint (+ str dtype)": lambda: fingerprint_frame(with_str),
    }
    if not args.skip_mlflow:
        contenders["mlflow digest (+ object str)"] = lambda: (
            mlflow.data.from_pandas(with_object).digest
        )
        contenders["mlflow digest (+ str dtype)"] = lambda: mlflow.data.from_pandas(with_str).digest
    for fn in contenders.values():
        fn()  # warm-up: first-call imports and allocations
    times: dict[str, list[float]] = {k: [] for k in contenders}
    cpu: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.rounds):
        for k, fn in contenders.items():
            wall, used = timed(fn)
            times[k].append(wall)
            cpu[k].append(used)
    for k, ts in times.items():
        med = statistics.median(ts)
        rate = f"{num_bytes / med / 1e9:7.2f} GB/s" if "numeric" in k or "raw" in k else " " * 12
        print(f"  {k:36s} {rate}  median {med:7.3f} s  (min {min(ts):.3f}, max {max(ts):.3f})"
              f"  CPU {statistics.median(cpu[k]):.3f} s")  # fmt: skip
    ratio = lambda a, b: [x / y for x, y in zip(times[a], times[b], strict=True)]  # noqa: E731
    print(f"  over {args.rounds} rounds, ratio in each round, median (range):")
    num = ratio("raw blake3 (column buffers)", "mlgate fingerprint (numeric)")
    print(f"  numeric: mlgate / raw blake3       {spread(num)}  (target >= 0.9)")
    if not args.skip_mlflow:
        obj = ratio("mlflow digest (+ object str)", "mlgate fingerprint (+ object str)")
        st = ratio("mlflow digest (+ str dtype)", "mlgate fingerprint (+ str dtype)")
        print(f"  object strings: mlgate vs mlflow   {spread(obj)}  (target > 1, faster)")
        print(f"  str dtype: mlgate vs mlflow        {spread(st)}  (target >= 3)")
        print("  (MLflow's digest reads the first 10,000 rows; mlgate hashes every row)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--file-mb", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3, help="best-of for the file section")
    ap.add_argument("--rounds", type=int, default=7, help="rounds of the frame section")
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--frames-only", action="store_true", help="skip the file section")
    args = ap.parse_args()
    frames(args)
    if args.frames_only:
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.bin"
        with path.open("wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(args.file_mb):
                f.write(chunk)
        size = path.stat().st_size
        os.environ["MLGATE_CACHE_DIR"] = str(Path(tmp) / "cache")

        def raw_file() -> str:
            h = blake3.blake3(max_threads=blake3.blake3.AUTO)
            h.update_mmap(str(path))
            return str(h.hexdigest())

        raw_file()  # warm the page cache for both
        t_rawf = best_of(raw_file, args.repeat)
        t_mgf = best_of(lambda: fingerprint_file(path, use_cache=False), args.repeat)
        t0 = time.perf_counter()
        first = fingerprint_file(path)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = fingerprint_file(path)
        t_second = time.perf_counter() - t0
        assert first.hex == raw_file() and second.cached and second.digest == first.digest
        print(f"file: {size / 1e9:.2f} GB")
        print(f"  raw blake3 mmap (b3sum-style)   {size / t_rawf / 1e9:7.2f} GB/s  {t_rawf:8.3f} s")
        print(f"  mlgate fingerprint_file         {size / t_mgf / 1e9:7.2f} GB/s  {t_mgf:8.3f} s")
        print(f"  ratio mlgate / raw blake3       {t_rawf / t_mgf:7.2f}x   (target >= 0.70)")
        print(f"  first call (hash + cache write) {t_first:8.3f} s")
        print(f"  second call (from cache: {second.cached})  {t_second * 1000:8.2f} ms")


if __name__ == "__main__":
    main()
