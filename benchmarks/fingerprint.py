"""Fingerprint speed: mlgate vs raw BLAKE3, pandas' hash, and MLflow's dataset digest.

Run: `make bench` (or `python benchmarks/fingerprint.py [--rows N] [--file-mb N]`).
Prints GB/s for each on the same data in the same run, and the ratios the targets are set on:
mlgate >= 0.7x raw blake3 on numeric columns, >= 20x MLflow's digest; the same for a file
against raw memory-mapped BLAKE3 (what `b3sum` does); and a second call on an unchanged file
served from the stat cache.
"""

from __future__ import annotations

import argparse
import os
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


def raw_blake3(buffers: list[memoryview]) -> str:
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    for b in buffers:
        h.update(b)
    return str(h.hexdigest())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--file-mb", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-mlflow", action="store_true", help="MLflow's digest takes ~20 s")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    numeric = pd.DataFrame(rng.normal(size=(args.rows, 10)), columns=[f"x{i}" for i in range(10)])
    full = numeric.assign(s=pd.Series([f"id-{i}" for i in range(args.rows)], dtype=object))
    num_bytes = numeric.memory_usage(index=False).sum()
    buffers = [memoryview(numeric[c].to_numpy()).cast("B") for c in numeric.columns]

    print(
        f"frame: {args.rows:,} rows x 10 float64 (+1 string column);"
        f" numeric {num_bytes / 1e9:.2f} GB"
    )
    t_raw = best_of(lambda: raw_blake3(buffers), args.repeat)
    t_mg = best_of(lambda: fingerprint_frame(numeric), args.repeat)
    t_mg_full = best_of(lambda: fingerprint_frame(full), args.repeat)
    t_pd = best_of(lambda: pd.util.hash_pandas_object(numeric, index=False).sum(), 1)
    gbs = lambda t: num_bytes / t / 1e9  # noqa: E731
    print(f"  raw blake3 (column buffers)     {gbs(t_raw):7.2f} GB/s  {t_raw:8.3f} s")
    print(f"  mlgate fingerprint (numeric)    {gbs(t_mg):7.2f} GB/s  {t_mg:8.3f} s")
    print(f"  mlgate fingerprint (+ strings)  {'':>7}        {t_mg_full:8.3f} s")
    print(f"  pd.util.hash_pandas_object      {gbs(t_pd):7.2f} GB/s  {t_pd:8.3f} s")
    print(f"  ratio mlgate / raw blake3       {t_raw / t_mg:7.2f}x   (target >= 0.70)")
    if not args.skip_mlflow:
        import mlflow.data

        t_ml = best_of(lambda: mlflow.data.from_pandas(full).digest, 1)
        print(f"  mlflow from_pandas().digest     {gbs(t_ml):7.2f} GB/s  {t_ml:8.3f} s")
        print(
            f"  ratio mlgate / mlflow           {t_ml / t_mg_full:7.1f}x"
            "   (target >= 20, both with strings)"
        )

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
