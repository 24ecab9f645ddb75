"""Full-content fingerprints: every cell counts, layout does not, files are cached safely."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import blake3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlgate.errors import FingerprintError, NotFoundError
from mlgate.fingerprint import (
    Fingerprint,
    fingerprint,
    fingerprint_directory,
    fingerprint_file,
    is_fingerprint,
)

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


def mixed_frame(rows: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "f": rng.normal(size=rows),
            "i": rng.integers(0, 100, size=rows),
            "b": rng.integers(0, 2, size=rows).astype(bool),
            "s_obj": pd.Series([f"v{i}" for i in range(rows)], dtype=object),
            "s_str": pd.Series([f"w{i}" if i % 7 else None for i in range(rows)], dtype="string"),
            "s_arrow": pd.array([f"a{i}" for i in range(rows)], dtype="string[pyarrow]"),
            "nint": pd.array([i if i % 5 else None for i in range(rows)], dtype="Int64"),
            "nbool": pd.array(
                [bool(i % 2) if i % 3 else None for i in range(rows)], dtype="boolean"
            ),
            "ts": pd.date_range("2024-01-01", periods=rows, freq="h"),
            "tstz": pd.date_range("2024-01-01", periods=rows, freq="h", tz="Europe/Paris"),
            "cat": pd.Categorical([("x", "y", "z")[i % 3] for i in range(rows)]),
            "a_int": pd.array(list(range(rows)), dtype="int64[pyarrow]"),
            "mixed": pd.Series([1, "a", None, 2.5, b"x"] * (rows // 5), dtype=object),
        }
    )


def test_format_and_metadata():
    """A frame's fingerprint is blake3:<64 hex> with rows, columns and schema."""
    df = mixed_frame()
    fp = fingerprint(df)
    assert is_fingerprint(fp.digest)
    assert (fp.rows, fp.columns, fp.kind) == (50, 13, "dataframe")
    assert fp.schema[0] == ("f", "float64")
    assert len(fp.short()) == 36


@settings(max_examples=60, deadline=None)
@given(
    data=hnp.arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 4)), elements=FLOATS),
    cell=st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
    new=FLOATS,
)
def test_any_single_float_cell_change_changes_fingerprint(data, cell, new):
    """Changing any one cell of a float frame to a different value changes the fingerprint."""
    df = pd.DataFrame(data)
    r, c = cell[0] % data.shape[0], cell[1] % data.shape[1]
    old = df.iat[r, c]
    same = (np.isnan(old) and np.isnan(new)) or (old == new and np.signbit(old) == np.signbit(new))
    changed = df.copy()
    changed.iat[r, c] = new
    assert (fingerprint(changed) == fingerprint(df)) == bool(same)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=1, max_size=30),
    pos=st.integers(0, 1000),
    new=st.one_of(st.none(), st.text(max_size=8)),
)
def test_any_single_string_cell_change_changes_fingerprint(values, pos, new):
    """Strings with missing values: one changed cell changes the fingerprint, for every dtype."""
    i = pos % len(values)
    changed = list(values)
    changed[i] = new
    for dtype in (object, "string", "string[pyarrow]"):
        a = pd.DataFrame({"s": pd.Series(values, dtype=dtype)})
        b = pd.DataFrame({"s": pd.Series(changed, dtype=dtype)})
        assert (fingerprint(a) == fingerprint(b)) == (values[i] == new)


@settings(max_examples=30, deadline=None)
@given(
    data=hnp.arrays(np.int64, st.tuples(st.integers(2, 60), st.integers(1, 3))),
    start=st.integers(0, 30),
)
def test_equal_content_equal_fingerprint_across_layouts(data, start):
    """Copies, slices, Fortran/C order and re-concatenation give the same fingerprint."""
    base = pd.DataFrame(data)
    fp = fingerprint(base)
    assert fingerprint(base.copy()) == fp
    assert fingerprint(pd.DataFrame(np.asfortranarray(data))) == fp
    split = start % len(base)
    assert fingerprint(pd.concat([base.iloc[:split], base.iloc[split:]])) == fp
    sliced = pd.DataFrame(np.vstack([data, data]))[: len(data)]
    assert fingerprint(sliced) == fp


def test_change_past_row_10000_is_seen_where_mlflow_is_blind():
    """A change at row 50,000 of 100,000 changes mlgate's fingerprint but not MLflow's digest."""
    import mlflow.data

    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(100_000, 3)), columns=list("abc"))
    altered = df.copy()
    altered.iat[50_000, 1] += 1.0
    assert fingerprint(df) != fingerprint(altered)
    assert mlflow.data.from_pandas(df).digest == mlflow.data.from_pandas(altered).digest


def test_column_order_dtype_and_row_order_are_content():
    """Reordering columns or rows, or changing a dtype, changes the fingerprint."""
    df = pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]})
    fp = fingerprint(df)
    assert fingerprint(df[["b", "a"]]) != fp
    assert fingerprint(df.iloc[::-1].reset_index(drop=True)) != fp
    assert fingerprint(df.astype({"a": "int32"})) != fp
    assert fingerprint(df.astype({"a": "Int64"})) != fp
    assert fingerprint(df.rename(columns={"a": "A"})) != fp


def test_index_excluded_unless_asked():
    """The index does not count by default and does with include_index=True."""
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    other_index = df.set_axis([10, 20, 30])
    assert fingerprint(df) == fingerprint(other_index)
    assert fingerprint(df, include_index=True) != fingerprint(other_index, include_index=True)


def test_missing_values_nan_payloads_and_nulls():
    """NaN bit patterns are one missing value; a NaN and a number differ; NA differs from 0."""
    a = np.array([1.0, np.nan, 3.0])
    b = a.copy()
    b.view(np.uint64)[1] = 0x7FF8_0000_0000_0001  # another quiet NaN payload
    assert fingerprint(pd.DataFrame({"x": a})) == fingerprint(pd.DataFrame({"x": b}))
    assert fingerprint(pd.DataFrame({"x": [1.0, 0.0, 3.0]})) != fingerprint(pd.DataFrame({"x": a}))
    na = pd.DataFrame({"x": pd.array([1, None], dtype="Int64")})
    zero = pd.DataFrame({"x": pd.array([1, 0], dtype="Int64")})
    assert fingerprint(na) != fingerprint(zero)
    nat = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", None])})
    day = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "1970-01-01"])})
    assert fingerprint(nat) != fingerprint(day)


def test_every_dtype_in_a_mixed_frame_is_covered():
    """Changing one cell in each kind of column changes the fingerprint."""
    df = mixed_frame()
    fp = fingerprint(df)
    edits = {
        "f": 123.0,
        "i": 999,
        "b": not df.at[4, "b"],
        "s_obj": "zz",
        "s_str": "zz",
        "s_arrow": "zz",
        "nint": 777,
        "nbool": not bool(df.at[4, "nbool"]),
        "ts": pd.Timestamp("1999-01-01"),
        "tstz": pd.Timestamp("1999-01-01", tz="Europe/Paris"),
        "cat": "z" if df.at[4, "cat"] != "z" else "x",
        "a_int": -5,
        "mixed": 42,
    }
    for column, value in edits.items():
        changed = df.copy()
        changed.at[4, column] = value
        assert fingerprint(changed) != fp, column


def test_arrow_chunking_does_not_matter():
    """A chunked Arrow-backed column hashes like the same column in one chunk."""
    import pyarrow as pa

    one = pd.DataFrame({"s": pd.array(["a", "b", None, "d"], dtype=pd.ArrowDtype(pa.string()))})
    chunked = pa.chunked_array([["a", "b"], [None, "d"]], type=pa.string())
    two = pd.DataFrame({"s": pd.arrays.ArrowExtensionArray(chunked)})
    assert fingerprint(one) == fingerprint(two)


def test_stable_across_processes():
    """The same frame built in another interpreter gives the same fingerprint."""
    code = (
        "import pandas as pd, numpy as np; from mlgate.fingerprint import fingerprint;"
        "df = pd.DataFrame({'a': np.arange(1000.0), 's': [str(i) for i in range(1000)]});"
        "print(fingerprint(df).digest)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    here = fingerprint(pd.DataFrame({"a": np.arange(1000.0), "s": [str(i) for i in range(1000)]}))
    assert out.stdout.strip() == here.digest


def test_unencodable_objects_are_refused():
    """An object with no stable encoding is an error, never a silent per-process hash."""

    class Thing:
        pass

    with pytest.raises(FingerprintError, match="Thing"):
        fingerprint(pd.DataFrame({"x": [Thing()]}))
    with pytest.raises(FingerprintError):
        fingerprint({"a": 1})


def test_numpy_arrays():
    """Arrays: shape and dtype are content; byte order is not."""
    a = np.arange(12, dtype="<i4").reshape(3, 4)
    assert fingerprint(a) == fingerprint(a.astype(">i4"))
    assert fingerprint(a) != fingerprint(a.reshape(4, 3))
    assert fingerprint(a) != fingerprint(a.astype("i8"))


def test_file_equals_b3sum_and_is_cached(tmp_path: Path):
    """A file's fingerprint is plain BLAKE3 of its bytes; the second call comes from the cache."""
    p = tmp_path / "data.bin"
    payload = os.urandom(3_000_000)
    p.write_bytes(payload)
    first = fingerprint_file(p)
    assert first.digest == "blake3:" + blake3.blake3(payload).hexdigest()
    assert not first.cached
    second = fingerprint_file(p)
    assert second.cached and second.digest == first.digest
    p.write_bytes(payload[:-1] + bytes([payload[-1] ^ 1]))
    third = fingerprint_file(p)
    assert not third.cached and third.digest != first.digest


def test_empty_file(tmp_path: Path):
    """An empty file hashes to BLAKE3 of no bytes."""
    p = tmp_path / "empty"
    p.write_bytes(b"")
    assert fingerprint_file(p).hex == blake3.blake3(b"").hexdigest()


def _hash_in_child(path: str) -> str:
    return fingerprint_file(path).digest


def test_cache_is_shared_and_safe_across_processes(tmp_path: Path):
    """Eight processes hashing the same files at once agree, and the cache serves a new process."""
    files = []
    for i in range(4):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(os.urandom(200_000) + bytes([i]))
        files.append(str(p))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(8) as pool:
        digests = pool.map(_hash_in_child, files * 8)
    for i, path in enumerate(files):
        assert set(digests[i::4]) == {fingerprint_file(path, use_cache=False).digest}
    code = (
        "import json,sys; from mlgate.fingerprint import fingerprint_file;"
        "print(json.dumps([fingerprint_file(p).cached for p in sys.argv[1:]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *files], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == [True] * 4


def test_directory_merkle(tmp_path: Path):
    """A directory's fingerprint covers names and contents, not creation order or empty dirs."""
    a = tmp_path / "a"
    (a / "sub").mkdir(parents=True)
    (a / "x.txt").write_text("x")
    (a / "sub" / "y.txt").write_text("y")
    b = tmp_path / "b"
    (b / "sub").mkdir(parents=True)
    (b / "sub" / "y.txt").write_text("y")
    (b / "x.txt").write_text("x")
    (b / "empty").mkdir()
    fa, fb = fingerprint_directory(a), fingerprint_directory(b)
    assert fa == fb and fa.files == 2
    (b / "sub" / "y.txt").write_text("Y")
    assert fingerprint_directory(b) != fa
    (b / "sub" / "y.txt").write_text("y")
    (b / "x.txt").rename(b / "z.txt")
    assert fingerprint_directory(b) != fa


def test_missing_paths():
    """A path that does not exist is a NotFoundError that names it."""
    with pytest.raises(NotFoundError, match="nope"):
        fingerprint("/nonexistent/nope.csv")


def test_fingerprint_dataclass_roundtrip():
    """to_dict is JSON-serialisable."""
    fp = fingerprint(pd.DataFrame({"a": [1]}))
    assert isinstance(fp, Fingerprint)
    assert json.loads(json.dumps(fp.to_dict()))["schema"] == [["a", "int64"]]


def test_nan_payloads_in_large_multi_block_columns():
    """NaN canonicalisation holds past the 64 MiB block and 1 MiB step boundaries."""
    a = np.arange(9_000_000, dtype=np.float64)
    a[8_999_999] = np.nan
    b = a.copy()
    b.view(np.uint64)[8_999_999] = 0xFFF8_0000_0000_0000  # x86's default NaN: sign bit set
    assert fingerprint(pd.DataFrame({"x": a})) == fingerprint(pd.DataFrame({"x": b}))
    c = a.copy()
    c[4_500_000] += 1
    assert fingerprint(pd.DataFrame({"x": c})) != fingerprint(pd.DataFrame({"x": a}))


@pytest.mark.skipif(not Path("/proc/version").is_file(), reason="needs Linux procfs")
def test_file_whose_size_reads_zero_is_hashed_by_content():
    """A file whose size reads 0 but has content (procfs) hashes its bytes, never from the cache."""
    p = Path("/proc/version")
    content = p.read_bytes()
    assert p.stat().st_size == 0 and content
    first = fingerprint_file(p)
    assert first.digest == "blake3:" + blake3.blake3(content).hexdigest()
    assert first.size_bytes == len(content)
    second = fingerprint_file(p)
    assert not second.cached and second.digest == first.digest
    assert fingerprint(p).digest == first.digest
