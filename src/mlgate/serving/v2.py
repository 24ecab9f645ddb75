"""The Open Inference Protocol (V2, KServe v2 REST) next to MLflow's ``/invocations``: its codec.

Decoding requests, encoding responses and the model metadata; the endpoints themselves are
methods of :class:`mlgate.serving.handlers.Handlers` (all JSON; errors are ``{"error": "..."}``):

* ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2`` (server metadata).
* ``GET /v2/models/{name}`` and ``/v2/models/{name}/versions/{version}``: metadata, with inputs
  and outputs from the version's MLflow signature; ``.../ready``: 200 when loaded, else 4xx.
* ``POST /v2/models/{name}/infer``: routed like ``/invocations`` (split, shadow, sticky
  ``X-Mlgate-Key``); ``POST /v2/models/{name}/versions/{version}/infer``: one loaded version
  (champion or challenger) explicitly.

Tensors are decoded as MLServer's codecs do: request ``parameters.content_type`` ``pd`` makes a
DataFrame with one column per input (shape ``[N]`` or ``[N, 1]``), ``np`` one ndarray of the
single input's shape, ``dict`` a dict of ndarrays; without one, the model's signature chooses
(named columns: ``pd``). Unlike MLServer, every element is checked against its ``datatype``
(no silent float-to-int truncation, no strings parsed as numbers) and client mistakes are 4xx.

The common request — one numeric input per schema column, of the schema's own datatype — is
decoded straight into rows for the same adaptive batcher as ``/invocations``.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import operator
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import numpy as np

from mlgate.errors import ScoringInputError
from mlgate.serving.fastpath import NumericSchema, loads, plain_json

#: V2 datatype -> numpy dtype (BYTES is decoded as Python strings).
DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": object,
}
_FROM_NUMPY = {np.dtype(t).name: name for name, t in DATATYPES.items() if t is not object}
_FROM_DTYPE = {np.dtype(t): name for name, t in DATATYPES.items() if t is not object}
#: MLflow column types -> (V2 datatype, input content type), as mlserver-mlflow maps them.
_COLUMN_TYPES = {
    "boolean": ("BOOL", "np"),
    "integer": ("INT32", "np"),
    "long": ("INT64", "np"),
    "float": ("FP32", "np"),
    "double": ("FP64", "np"),
    "string": ("BYTES", "str"),
    "binary": ("BYTES", "base64"),
    "datetime": ("BYTES", "datetime"),
}
_SCHEMA_DATATYPE = {
    np.dtype(np.float64): "FP64",
    np.dtype(np.float32): "FP32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.int32): "INT32",
}
REQUEST_CONTENT_TYPES = ("pd", "np", "dict")
# The id of a request that has none (MLServer makes one up too): unique per process and cheap
# (uuid4 for each request cost 2 us, a fifth of decoding one).
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


class V2Error(ScoringInputError):
    """A V2 request the server refuses; ``status`` is the HTTP status (4xx)."""


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class ModelSpec:
    """What the V2 endpoints need to know about one loaded version, computed once."""

    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    content_type: str  # the request-level default: pd, np or dict
    numeric: NumericSchema | None
    rows: RowDecoder | None = None  # the row path's decoder (numeric named columns only)


def _tensor_specs(schema: Any, prefix: str, first: int) -> list[dict[str, Any]]:
    if schema is None:
        return []
    out = []
    for i, spec in enumerate(schema.inputs):
        name = spec.name if spec.name else f"{prefix}{i + first}"
        if type(spec).__name__ == "TensorSpec":
            dtype = np.dtype(spec.type)
            datatype = _FROM_NUMPY.get(dtype.name, "BYTES")
            shape, content = [int(d) for d in spec.shape], "np"
        else:
            kind = getattr(spec.type, "name", None)
            datatype, content = _COLUMN_TYPES.get(str(kind), ("BYTES", "pd_json"))
            shape = [-1, 1]
        out.append(
            {
                "name": name,
                "datatype": datatype,
                "shape": shape,
                "parameters": {"content_type": content},
            }
        )
    return out


def model_spec(model: Any, numeric: NumericSchema | None) -> ModelSpec:
    """The V2 view of a pyfunc model's signature (inputs, outputs, default content type)."""
    meta = model.metadata
    inputs_schema = meta.get_input_schema()
    # Unnamed inputs are input-0.. as in MLServer; an unnamed output is output-1, the name
    # every ndarray prediction is answered under (MLServer's metadata says output-0 there).
    inputs = _tensor_specs(inputs_schema, "input-", 0)
    outputs = _tensor_specs(meta.get_output_schema(), "output-", 1)
    if inputs_schema is not None and inputs_schema.is_tensor_spec():
        content = "dict" if inputs_schema.has_input_names() else "np"
    else:
        content = "pd"
    rows = RowDecoder.build(numeric) if numeric is not None else None
    return ModelSpec(inputs, outputs, content, numeric, rows)


# --------------------------------------------------------------------------- decoding


class Decoded(msgspec.Struct, gc=False):
    """A V2 request, decoded: ``rows`` (fast path) or ``data`` (DataFrame, ndarray, dict).

    ``id`` is the client's, or None when it sent none (the response makes one up then). A
    msgspec struct: made for every request, in 0.07 µs against a dataclass's 0.17."""

    id: str | None
    rows: list[Any] | None
    data: Any
    params: dict[str, Any] | None
    outputs: list[str] | None


def _shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise V2Error(f"{where}: shape must be a list of non-negative integers, got {value!r}")
    return value


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise V2Error(f"{where}: data must be a list, got {type(data).__name__}")
    if not any(isinstance(v, list) for v in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            flat.append(v)
        else:
            stack.pop()
    return flat


def _check_elements(flat: list[Any], datatype: str, where: str) -> None:
    if datatype in ("FP16", "FP32", "FP64"):
        ok = all(type(v) is float or type(v) is int or v is None for v in flat)
        what = "numbers (or null)"
    elif datatype == "BOOL":
        ok, what = all(type(v) is bool for v in flat), "true or false"
    elif datatype == "BYTES":
        ok, what = all(type(v) is str for v in flat), "strings"
    else:
        ok, what = all(type(v) is int for v in flat), "integers"
    if not ok:
        bad = next(
            v
            for v in flat
            if not (
                (datatype in ("FP16", "FP32", "FP64") and type(v) in (int, float, type(None)))
                or (datatype == "BOOL" and type(v) is bool)
                or (datatype == "BYTES" and type(v) is str)
                or (datatype not in ("FP16", "FP32", "FP64", "BOOL", "BYTES") and type(v) is int)
            )
        )
        raise V2Error(f"{where}: datatype {datatype} takes {what}, got {json.dumps(bad)}")


def _tensor(item: Any, pos: int) -> tuple[str, str, list[int], Any, str | None]:
    """(name, datatype, shape, data, input content type) of one request input, checked."""
    if not isinstance(item, dict):
        raise V2Error(f"inputs[{pos}] must be an object with name, shape, datatype and data")
    name = item.get("name")
    if not isinstance(name, str):
        raise V2Error(f"inputs[{pos}]: name must be a string")
    where = f"input {name!r}"
    missing = [k for k in ("shape", "datatype", "data") if k not in item]
    if missing:
        raise V2Error(f"{where}: missing {', '.join(missing)}")
    datatype = item["datatype"]
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise V2Error(f"{where}: unknown datatype {datatype!r}; use one of {', '.join(DATATYPES)}")
    shape = _shape(item["shape"], where)
    content = _content_type(item.get("parameters"), where)
    return name, datatype, shape, item["data"], content


def _content_type(parameters: Any, where: str) -> str | None:
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise V2Error(f"{where}: parameters must be an object")
    content = parameters.get("content_type")
    if content is not None and not isinstance(content, str):
        raise V2Error(f"{where}: parameters.content_type must be a string")
    return content


def _array(name: str, datatype: str, shape: list[int], data: Any, content: str | None) -> Any:
    where = f"input {name!r}"
    flat = _flatten(data, where)
    if math.prod(shape) != len(flat):
        raise V2Error(
            f"{where}: shape {shape} holds {math.prod(shape)} elements but data has {len(flat)}"
        )
    _check_elements(flat, datatype, where)
    if content not in (None, "np", "str") or (content == "str" and datatype != "BYTES"):
        raise V2Error(
            f"{where}: unsupported content_type {content!r} for {datatype}; use np or str"
        )
    dtype = DATATYPES[datatype]
    try:
        values = [math.nan if v is None else v for v in flat] if None in flat else flat
        return np.array(values, dtype=dtype).reshape(shape)
    except (OverflowError, ValueError, TypeError) as exc:
        raise V2Error(f"{where}: data does not fit {datatype}: {exc}") from None


class _RequestedOutput(msgspec.Struct, gc=False):
    name: str


@dataclass(frozen=True)
class RowDecoder:
    """The row path's decoder for one version: msgspec, typed by the version's own columns.

    Each input tensor is a struct tagged by its ``name`` (one per schema column, in any order),
    with its ``datatype`` a literal, ``shape`` a list of ints and ``data`` a flat list of ints
    (integer columns) or numbers (a boolean or a float is not an int there, big integers stay
    integers): msgspec checks all of that while it parses, and any other request fails to
    decode here and goes to the general decoder, which accepts it or says what is wrong.
    """

    decode: Any  # bytes -> the request struct (raises msgspec.ValidationError, DecodeError)
    columns: list[type]  # the tensor struct of each column, in schema order

    @classmethod
    def build(cls, numeric: NumericSchema) -> RowDecoder | None:
        datatypes = [_SCHEMA_DATATYPE[np.dtype(t)] for t in numeric.dtypes]
        tensors = [
            msgspec.defstruct(
                f"Column{i}",
                [
                    ("datatype", Literal[datatype]),
                    ("shape", list[int]),
                    ("data", list[int] if integer else list[int | float]),
                ],
                tag_field="name",
                tag=name,
                namespace={"position": i},
                forbid_unknown_fields=True,
                gc=False,
            )
            for i, (name, datatype, integer) in enumerate(
                zip(numeric.columns, datatypes, numeric.integer, strict=True)
            )
        ]
        # A union of one tagged struct would not require the tag (a tensor without a name
        # would decode), so there is always a second: a name no column has, and no fields.
        unknown = next(t for t in map("-".__mul__, itertools.count()) if t not in numeric.columns)
        nothing = msgspec.defstruct(
            "NoColumn",
            [],
            tag_field="name",
            tag=unknown,
            namespace={"position": None},
            forbid_unknown_fields=True,
            gc=False,
        )
        request = msgspec.defstruct(
            "RowRequest",
            [
                ("inputs", list[functools.reduce(operator.or_, [*tensors, nothing])]),  # type: ignore[misc]
                ("id", str | None, None),
                ("outputs", list[_RequestedOutput] | None, None),
                ("parameters", dict[str, Any] | None, None),
            ],
            forbid_unknown_fields=True,
            gc=False,
        )
        try:
            decoder = msgspec.json.Decoder(request)
        except (TypeError, ValueError):  # e.g. two columns of one name: no tagged union
            return None
        return cls(decoder.decode, tensors)


def _row_request(body: bytes, spec: ModelSpec) -> Decoded | None:
    """The common request, decoded straight into rows in schema column order; None for anything
    else (which the general decoder then decides, the same way, more slowly).

    Common means: a ``pd`` request (the default for named columns) with no other parameters,
    and one input per schema column (in any order), each exactly ``name``, ``datatype`` (the
    column's own), ``shape`` ``[N]`` or ``[N, 1]`` and ``data``, a flat list of N numbers (ints
    only in the integer columns); see :class:`RowDecoder` for what msgspec checks.
    """
    decoder = spec.rows
    if decoder is None or spec.content_type != "pd":
        return None
    try:
        request = decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):  # (ValidationError is a DecodeError)
        return None
    inputs = request.inputs
    columns: list[Any] | None
    if list(map(type, inputs)) == decoder.columns:  # in schema order, as clients mostly send
        columns = [t.data for t in inputs]
    else:
        columns = _in_schema_order(inputs, len(decoder.columns))
        if columns is None:
            return None
    parameters = request.parameters
    if parameters is not None and (
        parameters.get("content_type", "pd") != "pd" or not _PLAIN_PARAMETERS.issuperset(parameters)
    ):
        return None
    # every column N values long (zip's strict check) and shaped [N] or [N, 1] (counted in C)
    n, width = len(columns[0]), len(columns)
    shapes = [t.shape for t in inputs]
    if n == 0 or shapes.count([n]) + shapes.count([n, 1]) != width:
        return None
    try:
        rows = list(zip(*columns, strict=True))
    except ValueError:
        return None
    outputs = [o.name for o in request.outputs] if request.outputs is not None else None
    return Decoded(request.id, rows, None, None, outputs)


def _in_schema_order(inputs: list[Any], width: int) -> list[Any] | None:
    """The tensors' data in schema column order when each column is there once; else None."""
    if len(inputs) != width:
        return None
    columns: list[Any] = [None] * width
    for tensor in inputs:
        position = tensor.position
        if position is None or columns[position] is not None:
            return None
        columns[position] = tensor.data
    return columns


_PLAIN_PARAMETERS = frozenset({"content_type", "headers"})


def _new_id() -> str:
    return f"{_ID_PREFIX}-{next(_ID_COUNTER)}"


def decode(body: bytes, spec: ModelSpec) -> Decoded:
    """Decode an inference request for a version (raises :class:`V2Error`)."""
    common = _row_request(body, spec)
    if common is not None:
        return common
    try:
        doc = loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise V2Error(f"the body is not JSON: {exc}") from None
    except RecursionError:
        raise V2Error("the body is not JSON this server reads: it is nested too deeply") from None
    return decode_doc(doc, spec)


def decode_doc(doc: Any, spec: ModelSpec) -> Decoded:
    """Decode a parsed inference request (raises :class:`V2Error`)."""
    if not isinstance(doc, dict):
        raise V2Error("an inference request is a JSON object with an inputs list")
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise V2Error("id must be a string")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise V2Error("inputs must be a non-empty list of tensors")
    params, content = None, None
    parameters = doc.get("parameters")
    if parameters is not None:
        content = _content_type(parameters, "the request")
        extra = {k: v for k, v in parameters.items() if k not in ("content_type", "headers")}
        params = extra or None
    outputs = _requested(doc.get("outputs"))
    content = content or spec.content_type
    if content not in REQUEST_CONTENT_TYPES:
        raise V2Error(
            f"unsupported content_type {content!r}; use one of {', '.join(REQUEST_CONTENT_TYPES)}"
        )
    tensors = [_tensor(item, pos) for pos, item in enumerate(inputs)]
    names = [t[0] for t in tensors]
    if len(set(names)) != len(names):
        raise V2Error("input names must be unique")
    if content == "np":
        if len(tensors) != 1:
            raise V2Error(f"content_type np takes one input tensor, got {len(tensors)}")
        return Decoded(rid, None, _array(*tensors[0]), params, outputs)
    arrays = {t[0]: _array(*t) for t in tensors}
    if content == "dict":
        return Decoded(rid, None, arrays, params, outputs)
    return Decoded(rid, None, _frame(arrays, tensors), params, outputs)


def mismatch(body: bytes, spec: ModelSpec) -> str | None:
    """Why a request the model refused does not fit the version's inputs, in V2's words: the
    inputs it lacks, or an input sent as another datatype than the signature's. None when the
    request's names and datatypes are the signature's (MLflow's own cause stands then).

    Only called for a refused request, so a valid one pays nothing for it; only for a model of
    named columns (a tensor's name is not the model's business).
    """
    if spec.content_type != "pd":
        return None
    try:
        inputs = loads(body).get("inputs")
        sent = {i["name"]: i["datatype"] for i in inputs}
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None
    wanted = {i["name"]: i["datatype"] for i in spec.inputs}
    missing = [name for name in wanted if name not in sent]
    if missing:
        return f"the request lacks model inputs {missing} (the model takes {list(wanted)})"
    for name, datatype in sent.items():
        want = wanted.get(name)
        if want is not None and datatype != want:
            return f"input {name!r} is {datatype}; the model's signature wants {want}"
    return None


def _frame(arrays: dict[str, Any], tensors: list[Any]) -> Any:
    import pandas as pd

    lengths = set()
    for name, _, shape, _, _ in tensors:
        if not shape or math.prod(shape[1:]) != 1:
            raise V2Error(f"input {name!r}: a column's shape is [N] or [N, 1], got {shape}")
        lengths.add(shape[0])
    if len(lengths) != 1:
        raise V2Error(f"inputs have different lengths {sorted(lengths)}; columns need one length")
    return pd.DataFrame({name: a.reshape(-1) for name, a in arrays.items()})


def _requested(outputs: Any) -> list[str] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise V2Error("outputs must be a list of objects with a name")
    return [o["name"] for o in outputs]


# --------------------------------------------------------------------------- encoding


def _output(name: str, values: Any) -> dict[str, Any]:
    """One response tensor, as MLServer's numpy and pandas codecs write it."""
    arr = np.asarray(values)
    shape = list(arr.shape) if arr.ndim > 1 else [int(arr.size), 1]
    kind = arr.dtype.kind
    # by dtype first: a dtype's name is computed on every access (a third of this function)
    datatype = _FROM_DTYPE.get(arr.dtype) or _FROM_NUMPY.get(arr.dtype.name)
    if datatype is not None:
        data = arr.reshape(-1).tolist()
        if kind == "f" and not bool(np.isfinite(arr).all()):
            # JSON has no NaN or infinity: a V2 answer writes both as null, so a strict client
            # parses it; /invocations keeps MLflow's NaN/Infinity tokens (see the README)
            data = [None if isinstance(v, float) and not math.isfinite(v) else v for v in data]
        return {
            "name": name,
            "shape": shape,
            "datatype": datatype,
            "parameters": {"content_type": "np"},
            "data": data,
        }
    items = arr.reshape(-1).tolist()
    if all(isinstance(v, str) for v in items):
        return {
            "name": name,
            "shape": shape,
            "datatype": "BYTES",
            "parameters": {"content_type": "str"},
            "data": items,
        }
    data = [json.dumps(_plain(v)) for v in items]
    return {
        "name": name,
        "shape": shape,
        "datatype": "BYTES",
        "parameters": {"content_type": "pd_json"},
        "data": data,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def encode_outputs(predictions: Any) -> tuple[list[dict[str, Any]], str]:
    """Response tensors and the response content type for a pyfunc prediction."""
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        return [_output(str(c), predictions[c].to_numpy()) for c in predictions.columns], "pd"
    if isinstance(predictions, dict):
        return [_output(str(k), v) for k, v in predictions.items()], "dict"
    if isinstance(predictions, pd.Series):
        predictions = predictions.to_numpy()
    return [_output("output-1", predictions)], "np"


def response(model: str, version: str, decoded: Decoded, predictions: Any) -> dict[str, Any]:
    """The inference response for ``decoded`` (only the requested outputs, when it names some)."""
    outputs, content = encode_outputs(predictions)
    if decoded.outputs is not None:
        have = {o["name"]: o for o in outputs}
        unknown = [n for n in decoded.outputs if n not in have]
        if unknown:
            raise V2Error(
                f"no output named {', '.join(map(repr, unknown))}; outputs are "
                f"{', '.join(map(repr, have))}"
            )
        outputs = [have[n] for n in decoded.outputs]
    return {
        "model_name": model,
        "model_version": version,
        "id": decoded.id if decoded.id is not None else _new_id(),
        "parameters": {"content_type": content},
        "outputs": outputs,
    }


# What json.dumps writes for a response with one 1-D tensor of plain numbers (the common case):
# a template per version and datatype, filled in with the id, the size and the data, since the
# dumps of the whole document cost more than its decoding.
@functools.lru_cache(maxsize=256)
def _one_tensor(model: str, version: str, datatype: str) -> bytes:
    head = f'{{"model_name": {json.dumps(model)}, "model_version": {json.dumps(version)}, "id": '
    tail = (
        ', "parameters": {"content_type": "np"}, "outputs": [{"name": "output-1", '
        f'"shape": [%d, 1], "datatype": "{datatype}", "parameters": {{"content_type": "np"}}, '
        '"data": %s}]}'
    )
    return (head.replace("%", "%%") + "%s" + tail).encode()


def response_body(model: str, version: str, decoded: Decoded, predictions: Any) -> bytes:
    """The inference response as JSON bytes (raises :class:`V2Error` for an unknown output)."""
    if decoded.outputs is None and type(predictions) is np.ndarray and predictions.ndim == 1:
        dtype = predictions.dtype
        datatype = _FROM_DTYPE.get(dtype)
        if datatype is not None and (dtype.kind != "f" or np.isfinite(predictions).all()):
            rid = (
                b'"%s"' % _new_id().encode()
                if decoded.id is None
                else json.dumps(decoded.id).encode()
            )
            data = plain_json(predictions.tolist(), dtype.kind)
            return _one_tensor(model, version, datatype) % (rid, predictions.size, data)
    return json.dumps(response(model, version, decoded, predictions)).encode()
