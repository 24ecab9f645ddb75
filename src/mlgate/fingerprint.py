"""Full-content fingerprints of data: DataFrames, arrays, files and directories.

MLflow's dataset digest hashes only the first 10,000 rows and keeps 8 hex characters, so a change
in row 50,000 goes unseen. mlgate hashes *everything*, with BLAKE3 over a canonical encoding:

* **DataFrame**: a JSON header (format version, row count, column names and dtypes, and the index
  when asked for), then for each column its canonical buffers, each length-prefixed. Numeric,
  bool and datetime columns hash their little-endian value buffer (NaN payloads canonicalised);
  nullable and Arrow-backed columns hash a validity mask plus values with nulls zeroed; strings
  hash their UTF-8 lengths and bytes; categoricals hash their categories and codes; object columns
  of mixed types use a type-tagged encoding and refuse objects with no stable encoding.
  So column order, dtypes and row order are part of the content, and memory layout
  (slices, copies, block consolidation, Arrow chunking) is not. The index is left out unless
  ``include_index=True``.
* **File**: plain BLAKE3 of the bytes, memory-mapped and multi-threaded, so the value equals what
  ``b3sum`` prints. A cache keyed by (device, inode, size, mtime_ns, ctime_ns) makes re-hashing an
  unchanged file cost a ``stat``; it lives in SQLite (WAL) and is safe for concurrent processes.
  A file whose size reads 0 is always read (procfs and some FUSE files report 0 and have
  content) and never cached.
* **Directory**: a sorted manifest of relative POSIX paths and per-file hashes (Merkle style),
  hashed again. Empty directories do not count (artifact stores have no directories).

Every fingerprint is written ``blake3:<64 hex>``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import decimal
import json
import math
import os
import sqlite3
import stat
import struct
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3
import numpy as np

from mlgate import config
from mlgate.errors import FingerprintError, IntegrityError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd


def _pandas() -> Any:
    # pandas is imported on first use so that `import mlgate` stays fast.
    import pandas

    return pandas


ALGORITHM = "blake3"
PREFIX = f"{ALGORITHM}:"
FRAME_FORMAT = "mlgate-frame/1"
ARRAY_FORMAT = "mlgate-array/1"
DIRECTORY_FORMAT = "mlgate-dir/1"
#: MLflow caps a dataset digest at 36 characters; this is how much of ours it gets.
MLFLOW_DIGEST_LENGTH = 36

_FLUSH_BYTES = 1 << 20


@dataclass(frozen=True)
class Fingerprint:
    """The fingerprint of one piece of data, and what it was taken over.

    Attributes:
        digest: ``blake3:<64 hex>``.
        kind: ``dataframe``, ``array``, ``file`` or ``directory``.
        rows: row count (frames and arrays).
        columns: column count (frames).
        schema: ``(name, dtype)`` pairs in column order (frames).
        size_bytes: bytes hashed from disk (files and directories).
        files: number of files (directories).
        source: the path that was hashed, when it was a path.
        cached: True when a file's digest came from the stat cache.
    """

    digest: str
    kind: str
    rows: int | None = None
    columns: int | None = None
    schema: tuple[tuple[str, str], ...] | None = None
    size_bytes: int | None = None
    files: int | None = None
    source: str | None = field(default=None, compare=False)
    cached: bool = field(default=False, compare=False)

    @property
    def hex(self) -> str:
        """The 64 hex characters without the algorithm prefix."""
        return self.digest.split(":", 1)[1]

    def short(self, length: int = MLFLOW_DIGEST_LENGTH) -> str:
        """The first ``length`` hex characters (MLflow's dataset digest allows 36)."""
        return self.hex[:length]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (schema as a list of ``[name, dtype]``)."""
        data = asdict(self)
        if self.schema is not None:
            data["schema"] = [list(pair) for pair in self.schema]
        return data

    def __str__(self) -> str:
        return self.digest


def _hasher() -> Any:
    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def _finish(h: Any) -> str:
    return PREFIX + str(h.hexdigest())


_BLOCK = 1 << 26  # 64 MiB: a buffer's digest is a list of block digests past this size
_STEP = 1 << 20  # 1 MiB: NaN check then hash, while the bytes are in the core's L2 cache


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class _Sink:
    """Collects a frame's buffers, hashes them in parallel, and feeds their digests in order.

    Each buffer gets its own BLAKE3 digest (a buffer over 64 MiB: the BLAKE3 of its 64 MiB block
    digests), and the outer hash covers ``(length, digest)`` of every buffer in order, so buffer
    boundaries are unambiguous. The work items (buffers or blocks) run on a thread pool, each
    with a single-threaded hasher: float data is checked for NaN and hashed 1 MiB at a time, so
    it is read from memory once. A digest depends only on the bytes, never on the threading.
    """

    def __init__(self, h: Any) -> None:
        self.h = h
        self.items: list[bytes | bytearray | memoryview | _Floats] = []

    def put(self, buf: bytes | bytearray | memoryview | _Floats) -> None:
        self.items.append(buf)

    def flush(self) -> None:
        tasks: list[tuple[int, Any]] = []
        for i, buf in enumerate(self.items):
            n = len(buf)
            if n <= _BLOCK:
                tasks.append((i, buf))
            else:
                tasks.extend((i, _block(buf, off)) for off in range(0, n, _BLOCK))
        if len(tasks) > 1 and sum(len(t[1]) for t in tasks) > 1 << 22:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(_workers()) as pool:
                digests = list(pool.map(_digest, (t[1] for t in tasks)))
        else:
            digests = [_digest(t[1]) for t in tasks]
        per_item: dict[int, list[bytes]] = {}
        for (i, _), d in zip(tasks, digests, strict=True):
            per_item.setdefault(i, []).append(d)
        for i, buf in enumerate(self.items):
            parts = per_item[i]
            digest = parts[0] if len(buf) <= _BLOCK else blake3.blake3(b"".join(parts)).digest()
            self.h.update(len(buf).to_bytes(8, "little") + digest)
        self.items.clear()


def _block(buf: bytes | bytearray | memoryview | _Floats, off: int) -> Any:
    if isinstance(buf, _Floats):
        item = buf.a.reshape(-1).view(np.uint8)[off : off + _BLOCK].view(buf.a.dtype)
        return _Floats(item)
    return memoryview(buf)[off : off + _BLOCK]


def _digest(buf: bytes | bytearray | memoryview | _Floats) -> bytes:
    h = blake3.blake3()
    if isinstance(buf, _Floats):
        buf.hash_into(h)
    else:
        mv = memoryview(buf)
        for off in range(0, len(mv), _BLOCK):
            h.update(mv[off : off + _BLOCK])
    return bytes(h.digest())


# --------------------------------------------------------------------------- DataFrames / arrays


def _little_endian(a: np.ndarray) -> np.ndarray:
    order = a.dtype.byteorder
    if order == ">" or (order == "=" and sys.byteorder == "big"):
        a = a.astype(a.dtype.newbyteorder("<"))
    return a


def _has_nan(part: np.ndarray) -> bool:
    # min() propagates NaN, so it is NaN iff a NaN is present (no false positives, unlike a sum's
    # inf - inf) and it is a vectorised pass without BLAS threads fighting the hash pool.
    # Complex arrays: NaN in either part makes the minimum's comparison NaN-aware only per
    # element, so they take the exact mask.
    if part.dtype.kind == "c":
        return bool(np.isnan(part).any())
    return bool(np.isnan(np.minimum.reduce(part)))


class _Floats:
    """A contiguous little-endian float/complex array whose NaNs must be made canonical.

    Different NaN bit patterns (x86's default NaN has the sign bit set) are the same missing
    value. Checking for NaN and hashing happen chunk by chunk, so each chunk is read from memory
    once; only an array that holds a NaN is copied and rewritten.
    """

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __len__(self) -> int:
        return int(self.a.nbytes)

    def hash_into(self, inner: Any) -> None:
        flat = self.a.reshape(-1)
        step = max(1, _STEP // max(1, flat.itemsize))
        for i in range(0, flat.size, step):
            part = flat[i : i + step]
            if _has_nan(part):
                inner.reset()
                fixed = flat.copy()
                fixed[np.isnan(fixed)] = np.nan
                inner.update(fixed.view(np.uint8).data)
                return
            inner.update(part.view(np.uint8).data)


def _numeric_buffer(a: np.ndarray) -> memoryview | _Floats:
    """The canonical bytes of a numeric/bool/datetime array: little-endian, C order, NaN fixed."""
    a = _little_endian(a)
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    if a.dtype.kind in "fc" and a.size:
        return _Floats(a)
    return a.reshape(-1).view(np.uint8).data


def _mask_buffer(mask: np.ndarray) -> bytes | memoryview:
    if not mask.any():
        return b"N0"
    return np.ascontiguousarray(mask, dtype=np.bool_).view(np.uint8).data


def _arrow_buffers(arr: Any, where: str) -> Iterator[bytes | memoryview | _Floats]:
    """Canonical buffers of a pyarrow Array or ChunkedArray (chunking does not matter)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    t = arr.type
    if pa.types.is_dictionary(t):
        yield from _arrow_buffers(arr.dictionary_decode(), where)
        return
    if pa.types.is_null(t):
        yield b"null"
        return
    if arr.null_count == 0 and _has_validity_bitmap(pa, t):
        yield b"N0"  # what _mask_buffer gives an all-false mask, without building it
    else:
        mask = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=np.bool_)
        yield _mask_buffer(mask)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        yield from _arrow_bytes(arr, pc, "")
    elif pa.types.is_string_view(t):
        yield from _arrow_bytes(arr.cast(pa.large_string()), pc, "")
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        yield from _arrow_bytes(arr, pc, b"")
    elif pa.types.is_binary_view(t):
        yield from _arrow_bytes(arr.cast(pa.large_binary()), pc, b"")
    elif pa.types.is_boolean(t):
        yield _numeric_buffer(pc.fill_null(arr, False).to_numpy(zero_copy_only=False))
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        yield _numeric_buffer(pc.fill_null(arr, 0).to_numpy(zero_copy_only=False))
    elif pa.types.is_temporal(t):
        width = pa.int32() if t.bit_width == 32 else pa.int64()
        ints = arr.view(width) if hasattr(arr, "view") else arr.cast(width)
        yield _numeric_buffer(pc.fill_null(ints, 0).to_numpy(zero_copy_only=False))
    else:  # decimals, lists, structs, maps: exact Python values, type-tagged
        yield from _object_buffers(np.asarray(arr.to_pylist(), dtype=object), where)


def _large(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_large_string(t) or pa.types.is_large_binary(t))


def _has_validity_bitmap(pa: Any, t: Any) -> bool:
    """True for the types whose nulls are exactly their validity bitmap's (so ``null_count`` is
    the number of True values ``is_null()`` gives); unions and run-end encoded arrays are not."""
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_boolean(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_temporal(t)
    )


def _arrow_bytes(arr: Any, pc: Any, empty: Any) -> Iterator[memoryview]:
    """A (large) string or binary array's value lengths as int64, then its value bytes.

    Lengths, not offsets, so that slicing and chunking do not matter; 32-bit offsets give the
    same int64 lengths as after a cast to the large type (which would copy them first).
    """
    if arr.null_count:
        arr = pc.fill_null(arr, empty)
    width = np.int64 if _large(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset : arr.offset + len(arr) + 1]
    if len(offsets) > 1:
        yield np.subtract(offsets[1:], offsets[:-1], dtype=np.int64).view(np.uint8).data
    else:
        yield memoryview(b"")
    data = arr.buffers()[2]
    if data is None or len(offsets) < 2:
        yield memoryview(b"")
    else:
        yield memoryview(data)[int(offsets[0]) : int(offsets[-1])]


def _encode_scalar(v: Any, out: bytearray, where: str, row: int, pd: Any) -> None:
    """Append a type-tagged canonical encoding of one Python value to ``out``."""
    if v is None or v is pd.NA or v is pd.NaT:
        out += b"\x00"
    elif isinstance(v, bool | np.bool_):
        out += b"b1" if v else b"b0"
    elif isinstance(v, int | np.integer):
        s = str(int(v)).encode()
        out += b"i" + len(s).to_bytes(2, "little") + s
    elif isinstance(v, float | np.floating):
        f = float(v)
        out += b"\x00" if math.isnan(f) else b"f" + struct.pack("<d", f)
    elif isinstance(v, str):
        s = v.encode("utf-8", "surrogatepass")
        out += b"s" + len(s).to_bytes(8, "little") + s
    elif isinstance(v, bytes | bytearray | memoryview):
        b = bytes(v)
        out += b"y" + len(b).to_bytes(8, "little") + b
    elif isinstance(v, pd.Timestamp | _dt.datetime | _dt.date | _dt.time | _dt.timedelta):
        s = (v.isoformat() if hasattr(v, "isoformat") else str(v)).encode()
        out += b"t" + type(v).__name__.encode() + b":" + len(s).to_bytes(2, "little") + s
    elif isinstance(v, pd.Timedelta | np.datetime64 | np.timedelta64):
        s = str(v).encode()
        out += b"t" + type(v).__name__.encode() + b":" + len(s).to_bytes(2, "little") + s
    elif isinstance(v, complex | np.complexfloating):
        out += b"c" + struct.pack("<dd", v.real, v.imag)
    elif isinstance(v, decimal.Decimal | uuid.UUID | pd.Interval | pd.Period):
        s = f"{type(v).__name__}:{v}".encode()
        out += b"r" + len(s).to_bytes(4, "little") + s
    elif isinstance(v, list | tuple | np.ndarray):
        items = list(v)
        out += b"l" + len(items).to_bytes(8, "little")
        for item in items:
            _encode_scalar(item, out, where, row, pd)
    elif isinstance(v, dict):
        keys = sorted(v, key=lambda k: (type(k).__name__, str(k)))
        out += b"m" + len(keys).to_bytes(8, "little")
        for k in keys:
            _encode_scalar(k, out, where, row, pd)
            _encode_scalar(v[k], out, where, row, pd)
    else:
        raise FingerprintError(
            f"{where} holds a {type(v).__module__}.{type(v).__qualname__} at position {row}, "
            "which has no stable byte encoding",
            hint="convert the column to strings or numbers before fingerprinting",
        )


def _all_strings(flat: np.ndarray, pa: Any, pd: Any) -> Any:
    """The Arrow array of an object array that holds only strings (and missing values), in one
    pass over the objects; None when it holds anything else, or when it cannot tell.

    Arrow infers ``string`` only when every non-null element is a ``str`` (``bytes`` among them
    make it ``binary``), so with no nulls that settles it. Arrow takes a few more values for null
    than pandas does (``Decimal("NaN")``, ``NaT``), so with nulls pandas' ``infer_dtype`` has the
    last word, as it has in the general path this one must agree with: for the nulls both
    recognise (None, NaN, ``pd.NA``) the arrays are equal.
    """
    try:
        arr = pa.array(flat, from_pandas=True)
    except Exception:  # noqa: BLE001 - anything Arrow refuses takes the general path
        return None
    if not isinstance(arr, pa.Array) or not pa.types.is_string(arr.type):
        return None
    if arr.null_count and pd.api.types.infer_dtype(flat, skipna=True) != "string":
        return None
    return arr


def _object_buffers(a: np.ndarray, where: str) -> Iterator[bytes | memoryview | _Floats]:
    """Object arrays: all strings go through Arrow (fast); anything else is type-tagged."""
    import pyarrow as pa

    pd = _pandas()
    flat = a.reshape(-1)
    strings = _all_strings(flat, pa, pd)
    if strings is not None:
        yield b"O:string"
        yield from _arrow_buffers(strings, where)
        return
    inferred = pd.api.types.infer_dtype(flat, skipna=True)
    if inferred in ("string", "empty", "bytes"):
        kind = pa.large_binary() if inferred == "bytes" else pa.large_string()
        yield b"O:" + inferred.encode()
        yield from _arrow_buffers(pa.array(flat, type=kind, from_pandas=True), where)
        return
    yield b"O:mixed"
    out = bytearray()
    for row, v in enumerate(flat):
        _encode_scalar(v, out, where, row, pd)
        if len(out) >= _FLUSH_BYTES:
            yield bytes(out)
            out.clear()
    yield bytes(out)


def _values_buffers(values: Any, where: str) -> Iterator[bytes | memoryview | _Floats]:
    """Canonical buffers of a column's values (numpy array or pandas ExtensionArray)."""
    pd = _pandas()
    if isinstance(values, pd.Categorical):
        yield b"categorical:" + (b"ordered" if values.ordered else b"unordered")
        yield from _values_buffers(values.categories.array, f"{where} (categories)")
        yield _numeric_buffer(np.asarray(values.codes))
        return
    if isinstance(
        values, pd.arrays.IntegerArray | pd.arrays.FloatingArray | pd.arrays.BooleanArray
    ):
        mask = np.asarray(values.isna(), dtype=np.bool_)
        fill: Any = False if isinstance(values, pd.arrays.BooleanArray) else 0
        yield _mask_buffer(mask)
        yield _numeric_buffer(values.to_numpy(dtype=values.dtype.numpy_dtype, na_value=fill))
        return
    if isinstance(
        values, pd.arrays.DatetimeArray | pd.arrays.TimedeltaArray | pd.arrays.PeriodArray
    ):
        yield _numeric_buffer(np.asarray(values.asi8))
        return
    arrow = getattr(values, "__arrow_array__", None)
    if arrow is not None and not isinstance(values, np.ndarray):
        yield from _arrow_buffers(arrow(), where)
        return
    a = np.asarray(values)
    if a.dtype.kind == "O":
        yield from _object_buffers(a, where)
    elif a.dtype.kind in "biufcMm":
        yield _numeric_buffer(a)
    elif a.dtype.kind in "US":
        yield _numeric_buffer(np.ascontiguousarray(a).view(np.uint8))
    else:  # structured / void dtypes
        raise FingerprintError(f"{where} has dtype {a.dtype}, which mlgate cannot fingerprint")


def _name(label: Any) -> list[str]:
    return [type(label).__name__, str(label)]


def fingerprint_frame(df: pd.DataFrame | pd.Series, *, include_index: bool = False) -> Fingerprint:
    """Fingerprint every cell of a DataFrame (or Series).

    Args:
        df: the data. A Series is treated as a one-column frame.
        include_index: also hash the index (its levels' names, dtypes and values).

    Returns:
        A :class:`Fingerprint` with ``rows``, ``columns`` and ``schema`` set.
    """
    pd = _pandas()
    if isinstance(df, pd.Series):
        df = df.to_frame()
    if not isinstance(df, pd.DataFrame):
        raise FingerprintError(f"expected a pandas DataFrame, got {type(df).__name__}")
    index_levels: list[tuple[Any, Any]] = []
    if include_index:
        for i in range(df.index.nlevels):
            level = df.index.get_level_values(i)
            index_levels.append((level.name, level))
    header = {
        "format": FRAME_FORMAT,
        "rows": len(df),
        "columns": [[*_name(c), str(t)] for c, t in zip(df.columns, df.dtypes, strict=True)],
        "index": [[*_name(n), str(v.dtype)] for n, v in index_levels] if include_index else None,
    }
    h = _hasher()
    sink = _Sink(h)
    sink.put(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    for i, (name, values) in enumerate(index_levels):
        for buf in _values_buffers(values.array, f"index level {i} ({name!r})"):
            sink.put(buf)
    for pos in range(df.shape[1]):
        col = df.iloc[:, pos]
        for buf in _values_buffers(col.array, f"column {df.columns[pos]!r}"):
            sink.put(buf)
    sink.flush()
    schema = tuple((str(c), str(t)) for c, t in zip(df.columns, df.dtypes, strict=True))
    return Fingerprint(
        digest=_finish(h), kind="dataframe", rows=len(df), columns=df.shape[1], schema=schema
    )


def fingerprint_array(a: np.ndarray) -> Fingerprint:
    """Fingerprint a numpy array: shape, dtype and every element (C order)."""
    a = np.asarray(a)
    header = {
        "format": ARRAY_FORMAT,
        "shape": list(a.shape),
        "dtype": _little_endian(a[:0]).dtype.str,
    }
    h = _hasher()
    sink = _Sink(h)
    sink.put(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    for buf in _values_buffers(a, "array"):
        sink.put(buf)
    sink.flush()
    rows = int(a.shape[0]) if a.ndim else 1
    return Fingerprint(digest=_finish(h), kind="array", rows=rows)


# --------------------------------------------------------------------------- files / directories


class _Cache:
    """A (device, inode, size, mtime_ns, ctime_ns) -> digest map in SQLite, shared by processes.

    A cache must never make mlgate fail: every SQLite error disables it for the call.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.path = (directory or config.cache_dir()) / "fingerprints.sqlite"
        self._conn: sqlite3.Connection | None = None
        self._broken = False

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is not None or self._broken:
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS files (dev INTEGER, ino INTEGER, size INTEGER,"
                " mtime_ns INTEGER, ctime_ns INTEGER, algo TEXT, digest TEXT,"
                " PRIMARY KEY (dev, ino, size, mtime_ns, ctime_ns, algo))"
            )
            self._conn = conn
        except (sqlite3.Error, OSError):
            self._broken = True
        return self._conn

    @staticmethod
    def _key(st: os.stat_result) -> tuple[int, int, int, int, int, str]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, ALGORITHM)

    def get(self, st: os.stat_result) -> str | None:
        conn = self._connect()
        if conn is None:
            return None
        try:
            row = conn.execute(
                "SELECT digest FROM files WHERE dev=? AND ino=? AND size=? AND mtime_ns=?"
                " AND ctime_ns=? AND algo=?",
                self._key(st),
            ).fetchone()
        except sqlite3.Error:
            return None
        return str(row[0]) if row else None

    def put(self, st: os.stat_result, digest: str) -> None:
        conn = self._connect()
        if conn is None:
            return
        with contextlib.suppress(sqlite3.Error):
            conn.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*self._key(st), digest),
            )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _same_file_state(a: os.stat_result, b: os.stat_result) -> bool:
    return _Cache._key(a) == _Cache._key(b)


def _hash_file(path: Path, st: os.stat_result, cache: _Cache | None) -> tuple[str, bool, int]:
    """(digest, from the cache, bytes hashed) of a regular file."""
    if not st.st_size:
        # A size of 0 is not proof of no content: procfs, sysfs and some FUSE files report 0
        # and yield bytes. Read what is there, and keep such files out of the cache, whose
        # key (size, times) cannot tell their states apart.
        return _hash_unsized(path)
    if cache is not None:
        hit = cache.get(st)
        if hit is not None:
            return hit, True, st.st_size
    h = _hasher()
    h.update_mmap(str(path))
    digest = _finish(h)
    # Only cache a digest of a file that did not change while it was read.
    if cache is not None and _same_file_state(st, path.stat()):
        cache.put(st, digest)
    return digest, False, st.st_size


def _hash_unsized(path: Path) -> tuple[str, bool, int]:
    h = _hasher()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_STEP):
            h.update(chunk)
            size += len(chunk)
    return _finish(h), False, size


def fingerprint_file(path: str | os.PathLike[str], *, use_cache: bool = True) -> Fingerprint:
    """BLAKE3 of a file's bytes (equal to ``b3sum``), from the stat cache when unchanged."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise NotFoundError(f"no such file: {p}") from None
    except OSError as exc:
        raise FingerprintError(f"cannot read {p}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise FingerprintError(f"{p} is not a regular file")
    cache = _Cache() if use_cache else None
    try:
        digest, cached, size = _hash_file(p, st, cache)
    except OSError as exc:
        raise FingerprintError(f"cannot read {p}: {exc.strerror or exc}") from None
    finally:
        if cache is not None:
            cache.close()
    return Fingerprint(digest=digest, kind="file", size_bytes=size, source=str(p), cached=cached)


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(filenames + [d for d in dirnames if (base / d).is_symlink()]):
            full = base / name
            yield full.relative_to(root).as_posix(), full


def directory_manifest(
    path: str | os.PathLike[str],
    *,
    use_cache: bool = True,
    exclude: frozenset[str] = frozenset(),
) -> list[tuple[str, str, int]]:
    """The sorted ``(relative path, digest, size)`` list a directory fingerprint is made from.

    Symbolic links are recorded by their target, never followed. ``exclude`` names relative
    POSIX paths to leave out.
    """
    root = Path(path)
    cache = _Cache() if use_cache else None
    entries: list[tuple[str, str, int]] = []
    try:
        for rel, full in _walk(root):
            if rel in exclude:
                continue
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = str(full.readlink())
                entries.append((rel, "link:" + target, 0))
            elif stat.S_ISREG(st.st_mode):
                digest, _, size = _hash_file(full, st, cache)
                entries.append((rel, digest, size))
    except OSError as exc:
        raise FingerprintError(f"cannot read {root}: {exc.strerror or exc}") from None
    finally:
        if cache is not None:
            cache.close()
    entries.sort(key=lambda e: e[0])
    return entries


def fingerprint_directory(
    path: str | os.PathLike[str],
    *,
    use_cache: bool = True,
    exclude: frozenset[str] = frozenset(),
) -> Fingerprint:
    """A Merkle fingerprint of a directory: sorted relative paths and each file's BLAKE3."""
    root = Path(path)
    if not root.is_dir():
        if not root.exists():
            raise NotFoundError(f"no such directory: {root}")
        raise FingerprintError(f"{root} is not a directory")
    entries = directory_manifest(root, use_cache=use_cache, exclude=exclude)
    return Fingerprint(
        digest=digest_manifest(entries),
        kind="directory",
        size_bytes=sum(e[2] for e in entries),
        files=len(entries),
        source=str(root),
    )


#: Files MLflow adds to a model directory when it is downloaded through the registry
#: (``models:/name/version``); they are not part of what was logged.
MLFLOW_DOWNLOAD_FILES = frozenset({"registered_model_meta"})


def fingerprint_model_artifacts(path: str | os.PathLike[str]) -> Fingerprint:
    """The digest of a downloaded model directory, however it was downloaded."""
    return fingerprint_directory(path, use_cache=False, exclude=MLFLOW_DOWNLOAD_FILES)


def verify_model_artifacts(
    path: str | os.PathLike[str], recorded: str, *, what: str, refusing: str
) -> str:
    """Re-hash a model directory; raise :class:`IntegrityError` unless it is ``recorded``.

    ``what`` names the model in the message (``churn/3``), ``refusing`` says what is refused
    (``to build``, ``to serve it``). Returns the digest found.
    """
    found = fingerprint_model_artifacts(path).digest
    if found != recorded:
        raise IntegrityError(
            f"{what}: artifacts do not match the digest recorded at registration "
            f"(recorded {recorded}, found {found}); refusing {refusing}"
        )
    return found


def digest_manifest(entries: Iterable[Sequence[Any]]) -> str:
    """Hash a manifest of ``(relative path, digest, size)`` entries in path order."""
    h = _hasher()
    sink = _Sink(h)
    sink.put(DIRECTORY_FORMAT.encode())
    for rel, digest, _size in sorted(entries, key=lambda e: e[0]):
        sink.put(str(rel).encode("utf-8", "surrogateescape"))
        sink.put(str(digest).encode())
    sink.flush()
    return _finish(h)


def fingerprint_path(path: str | os.PathLike[str], *, use_cache: bool = True) -> Fingerprint:
    """Fingerprint a file or a directory, whichever ``path`` is."""
    p = Path(path)
    if p.is_dir():
        return fingerprint_directory(p, use_cache=use_cache)
    if not p.exists():
        raise NotFoundError(f"no such file or directory: {p}")
    return fingerprint_file(p, use_cache=use_cache)


def fingerprint(data: Any, *, include_index: bool = False, use_cache: bool = True) -> Fingerprint:
    """Fingerprint a DataFrame, Series, numpy array, file path or directory path.

    Args:
        data: what to hash. ``str`` and ``os.PathLike`` values are paths.
        include_index: for frames, also hash the index.
        use_cache: for paths, use the stat cache.

    Raises:
        NotFoundError: a path does not exist.
        FingerprintError: the data has no canonical encoding.
    """
    if "pandas" in sys.modules and isinstance(data, _pandas().DataFrame | _pandas().Series):
        return fingerprint_frame(data, include_index=include_index)
    if isinstance(data, np.ndarray):
        return fingerprint_array(data)
    if isinstance(data, str | os.PathLike):
        return fingerprint_path(data, use_cache=use_cache)
    raise FingerprintError(
        f"cannot fingerprint a {type(data).__name__}: pass a DataFrame, Series, numpy array or path"
    )


def is_fingerprint(value: str) -> bool:
    """True when ``value`` looks like ``blake3:<64 hex>``."""
    if not value.startswith(PREFIX) or len(value) != len(PREFIX) + 64:
        return False
    try:
        int(value[len(PREFIX) :], 16)
    except ValueError:
        return False
    return True
