"""The Open Inference Protocol (V2 REST) of `mlgate serve`, on a real server and real models."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlgate
from mlgate.promotion.traffic import set_traffic
from mlgate.serving import v2
from mlgate.serving.telemetry import parse_prometheus
from mlgate.serving.v2 import decode, model_spec
from test_serving import (
    FEATURES,
    Served,
    local_predictions,
    promote_tampered,
    serve_pair,
    start_server,
    stop,
)


def columns(frame, datatype: str = "FP64", shape_1: bool = False) -> list[dict]:
    """One V2 input per column (the `pd` content type), as MLServer's PandasCodec encodes it."""
    n = len(frame)
    return [
        {
            "name": c,
            "datatype": datatype,
            "shape": [n, 1] if shape_1 else [n],
            "data": frame[c].tolist(),
        }
        for c in frame.columns
    ]


def infer(url: str, model: str, body, *, version: str | None = None, **kw) -> requests.Response:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    data = body if isinstance(body, bytes) else json.dumps(body)
    return requests.post(
        f"{url}{path}",
        data=data,
        headers={"Content-Type": "application/json", **kw.pop("headers", {})},
        timeout=10,
        **kw,
    )


@pytest.fixture
def two_versions(store, model_name, make_version, classifier, tmp_path):
    """v1 champion (the fixture's model) and v2 challenger (a different fit)."""
    from sklearn.linear_model import LogisticRegression

    _, train, _ = classifier
    policy = tmp_path / "mlgate.toml"
    policy.write_text("[default.gates]\nchampion = []\nchallenger = []\n")
    v1 = make_version()
    v2 = make_version(
        LogisticRegression(C=0.001, max_iter=200).fit(train[FEATURES], train["label"])
    )
    mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
    mlgate.promote(model_name, v2, to="challenger", policy=policy, store=store)
    return v1, v2, policy


@pytest.fixture
def server(tracking_uri, model_name, two_versions):
    url, proc = start_server(tracking_uri, model_name)
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def shared(
    tracking_server, classifier, tmp_path_factory, inferred_requirements
) -> Iterator[Served]:
    """One served champion/challenger pair for the tests that only read (see serve_pair)."""
    yield from serve_pair(tracking_server, classifier, tmp_path_factory, inferred_requirements)


def test_health_and_metadata_from_the_signature(shared):
    """Health, readiness and model metadata (inputs from the MLflow signature, per version)."""
    server, model_name, v1, v2 = shared.url, shared.name, shared.v1, shared.v2
    assert requests.get(f"{server}/v2/health/live", timeout=5).status_code == 200
    assert requests.get(f"{server}/v2/health/ready", timeout=5).status_code == 200
    assert requests.get(f"{server}/v2", timeout=5).json()["name"] == "mlgate"
    meta = requests.get(f"{server}/v2/models/{model_name}", timeout=5).json()
    assert meta["name"] == model_name and meta["versions"] == [v1, v2]
    assert meta["inputs"] == [
        {"name": f, "datatype": "FP64", "shape": [-1, 1], "parameters": {"content_type": "np"}}
        for f in FEATURES
    ]
    assert [(o["datatype"], o["shape"]) for o in meta["outputs"]] == [("INT64", [-1])]
    assert meta["parameters"] == {"content_type": "pd"}
    for v in (v1, v2):
        one = requests.get(f"{server}/v2/models/{model_name}/versions/{v}", timeout=5).json()
        assert one["versions"] == [v] and one["inputs"] == meta["inputs"]
        ready = requests.get(f"{server}/v2/models/{model_name}/versions/{v}/ready", timeout=5)
        assert ready.status_code == 200
    assert requests.get(f"{server}/v2/models/{model_name}/ready", timeout=5).status_code == 200
    for path in (
        "/v2/models/nope",
        f"/v2/models/{model_name}/versions/99",
        f"/v2/models/{model_name}/versions/99/ready",
        "/v2/models/nope/ready",
    ):
        r = requests.get(f"{server}{path}", timeout=5)
        assert r.status_code == 404 and r.json()["error"], path


def test_infer_gives_pyfunc_predictions_and_names_the_version(shared, classifier):
    """pd columns ([N] or [N, 1], nested or flat) predict as pyfunc does; id echoed; the
    response's model_version is the version that answered, champion or challenger."""
    server, model_name, store, v1, v2 = shared.url, shared.name, shared.store, shared.v1, shared.v2
    _, _, test = classifier
    frame = test[FEATURES].head(9)
    for version in (v1, v2):
        want = local_predictions(store, model_name, version, frame)
        for shape_1 in (False, True):
            for params in (None, {"content_type": "pd"}):
                body = {"id": f"req-{version}", "inputs": columns(frame, shape_1=shape_1)}
                if params:
                    body["parameters"] = params
                r = infer(server, model_name, body, version=version)
                assert r.status_code == 200, r.text
                doc = r.json()
                assert doc["id"] == f"req-{version}" and doc["model_name"] == model_name
                assert doc["model_version"] == version == r.headers["X-Mlgate-Version"]
                [out] = doc["outputs"]
                assert out["datatype"] == "INT64" and out["shape"] == [9, 1]
                assert np.array_equal(out["data"], want)
    # Routed: the champion answers at weight 0, and says so.
    r = infer(server, model_name, {"inputs": columns(frame.head(1))})
    assert r.status_code == 200 and r.json()["model_version"] == v1 and r.json()["id"]
    # A float32 column takes the general decoder: the same values MLServer's codec gives.
    r = infer(server, model_name, {"inputs": columns(frame, "FP32")}, version=v1)
    want32 = local_predictions(store, model_name, v1, frame.astype("float32").astype("float64"))
    assert r.status_code == 200 and np.array_equal(r.json()["outputs"][0]["data"], want32)


def test_split_sticky_and_metrics_per_version(server, store, model_name, two_versions, classifier):
    """At 50% V2 requests reach both versions, a key sticks to one, /metrics counts each."""
    v1, v2, _ = two_versions
    _, _, test = classifier
    set_traffic(store, model_name, weight=50, reason="test")
    deadline = time.time() + 15
    while requests.get(f"{server}/version", timeout=5).json()["serving"][1]["weight"] != 50.0:
        assert time.time() < deadline, "server did not follow the traffic change"
        time.sleep(0.2)
    body = {"inputs": columns(test[FEATURES].head(1))}
    seen = {infer(server, model_name, body).json()["model_version"] for _ in range(60)}
    assert seen == {v1, v2}
    sticky = {
        infer(server, model_name, body, headers={"X-Mlgate-Key": "user-7"}).json()["model_version"]
        for _ in range(20)
    }
    assert len(sticky) == 1
    stats = parse_prometheus(requests.get(f"{server}/metrics", timeout=5).text)
    assert stats[v1]["requests"] + stats[v2]["requests"] >= 80
    assert stats[v1]["requests"] > 0 and stats[v2]["requests"] > 0


def test_shadow_mode_counts_the_challenger(tracking_uri, model_name, two_versions, classifier):
    """In shadow mode the champion answers every V2 request and the challenger scores a copy."""
    v1, v2, _ = two_versions
    _, _, test = classifier
    url, proc = start_server(tracking_uri, model_name, "--mode", "shadow")
    try:
        body = {"inputs": columns(test[FEATURES].head(5))}
        versions = {infer(url, model_name, body).json()["model_version"] for _ in range(10)}
        assert versions == {v1}
        time.sleep(0.5)
        text = requests.get(f"{url}/metrics", timeout=5).text
        assert f'mlgate_shadow_requests_total{{model="{model_name}",version="{v2}"}} 10' in text
    finally:
        stop(proc)


ROW = [0.1, -1.2, 0.3, 2.0, -0.5, 1.1]


def _cols(**override) -> list[dict]:
    return [
        {"name": f, "datatype": "FP64", "shape": [1], "data": [ROW[i]], **override}
        for i, f in enumerate(FEATURES)
    ]


BAD = {
    "not json": b"{nope",
    "empty body": b"",
    "a list": b"[1, 2]",
    "no inputs": {"id": "x"},
    "empty inputs": {"inputs": []},
    "inputs not a list": {"inputs": {"f0": 1}},
    "unknown datatype": {"inputs": _cols(datatype="FLOAT")},
    "strings as FP64": {"inputs": _cols(data=["a"])},
    "booleans as FP64": {"inputs": _cols(data=[True])},
    "floats as INT64": {"inputs": _cols(datatype="INT64", data=[1.5])},
    "too big for INT8": {
        "parameters": {"content_type": "np"},
        "inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [999]}],
    },
    "shape larger than data": {"inputs": _cols(shape=[3])},
    "shape not a column": {"inputs": _cols(shape=[1, 2], data=[1.0, 2.0])},
    "negative shape": {"inputs": _cols(shape=[-1])},
    "missing shape": {"inputs": [{k: v for k, v in c.items() if k != "shape"} for c in _cols()]},
    "a missing column": {"inputs": _cols()[:5]},
    "duplicate names": {"inputs": [*_cols(), _cols()[0]]},
    "columns of different lengths": {
        "inputs": [*_cols()[:5], {**_cols()[5], "shape": [2], "data": [1.0, 2.0]}]
    },
    "np with six tensors": {"parameters": {"content_type": "np"}, "inputs": _cols()},
    "np tensor for named columns": {
        "parameters": {"content_type": "np"},
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 6], "data": ROW}],
    },
    "unknown content type": {"parameters": {"content_type": "zzz"}, "inputs": _cols()},
    "id not a string": {"id": 5, "inputs": _cols()},
    "unknown output": {"inputs": _cols(), "outputs": [{"name": "nope"}]},
}


def test_malformed_requests_get_4xx_json_and_the_server_stays_up(shared):
    """Wrong datatype, shape that does not match data, wrong names: 4xx {"error": ...}."""
    server, model_name = shared.url, shared.name
    for case, body in BAD.items():
        r = infer(server, model_name, body)
        assert 400 <= r.status_code < 500, (case, r.status_code, r.text)
        assert set(r.json()) == {"error"} and r.json()["error"], case
    assert requests.get(f"{server}/v2/health/live", timeout=5).status_code == 200
    assert infer(server, model_name, {"inputs": _cols()}).status_code == 200


def test_unknown_model_or_version_and_wrong_method(shared):
    """Unknown model or version: 404; GET on infer: 405; all {"error": ...}."""
    server, model_name = shared.url, shared.name
    body = {"inputs": _cols()}
    for r in (
        infer(server, "nope", body),
        infer(server, model_name, body, version="99"),
        requests.get(f"{server}/v2/models/{model_name}/infer", timeout=5),
        requests.get(f"{server}/v2/nothing", timeout=5),
    ):
        assert r.status_code in (404, 405) and set(r.json()) == {"error"}, r.text


def test_a_challenger_that_failed_to_load_is_a_4xx(
    server, store, model_name, two_versions, make_version, tracking_server
):
    """A challenger whose artifacts fail their digest is not loaded: asking for it is a 4xx
    that says so, and the champion keeps answering."""
    v1, _, policy = two_versions
    v3 = make_version()
    promote_tampered(server, store, model_name, v3, "challenger", policy, tracking_server)
    r = infer(server, model_name, {"inputs": _cols()}, version=v3)
    assert r.status_code == 400 and "not loaded" in r.json()["error"], r.text
    ready = requests.get(f"{server}/v2/models/{model_name}/versions/{v3}/ready", timeout=5)
    assert ready.status_code == 400
    r = infer(server, model_name, {"inputs": _cols()})
    assert r.status_code == 200 and r.json()["model_version"] == v1


JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)
TENSOR = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from([*FEATURES, "x", ""]) | JSONISH,
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BOOL", "BYTES", "UINT8", "X"])
        | JSONISH,
        "shape": st.lists(st.integers(-2, 3), max_size=3) | JSONISH,
        "data": st.lists(JSONISH, max_size=4) | JSONISH,
        "parameters": st.fixed_dictionaries({}, optional={"content_type": JSONISH}) | JSONISH,
    },
)
REQUEST = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=5) | JSONISH,
        "inputs": st.lists(TENSOR, max_size=7) | JSONISH,
        "parameters": st.fixed_dictionaries(
            {}, optional={"content_type": st.sampled_from(["pd", "np", "dict", "x"]) | JSONISH}
        )
        | JSONISH,
        "outputs": st.lists(st.fixed_dictionaries({"name": JSONISH}), max_size=2) | JSONISH,
    },
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=st.one_of(st.binary(max_size=200), REQUEST.map(lambda v: json.dumps(v).encode())))
def test_fuzzed_v2_requests_never_get_5xx(shared, payload):
    """Random bytes and random V2-shaped JSON: never a 5xx, errors are {"error": ...}."""
    server, model_name = shared.url, shared.name
    r = infer(server, model_name, payload)
    assert r.status_code < 500, (payload, r.status_code, r.text)
    if r.status_code >= 400:
        assert set(r.json()) == {"error"}


def test_plain_numeric_columns_take_the_batchers_row_path(store, model_name, make_version):
    """The common request decodes to rows (the batcher's fast path) that predict exactly as the
    general decoder's DataFrame does; anything unusual takes the general decoder."""
    from mlgate.registry.pyfunc import predict
    from mlgate.serving.fastpath import NumericSchema

    pyfunc = store.load_pyfunc(f"models:/{model_name}/{make_version()}")
    schema = NumericSchema.from_model(pyfunc)
    spec = model_spec(pyfunc, schema)
    rows = [[0.5, 1, -2.25, 3.0, 0.0, 1e-3], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]
    inputs = [
        {"name": f, "datatype": "FP64", "shape": [2], "data": [r[i] for r in rows]}
        for i, f in enumerate(FEATURES)
    ]
    fast = decode(json.dumps({"inputs": inputs[::-1]}).encode(), spec)
    assert fast.rows is not None
    general = decode(json.dumps({"inputs": inputs, "parameters": {"a": 1}}).encode(), spec)
    assert general.rows is None and general.params == {"a": 1}
    np.testing.assert_array_equal(
        predict(pyfunc, schema.frame(fast.rows)), predict(pyfunc, general.data)
    )
    nested = [{**c, "shape": [2, 1], "data": [[v] for v in c["data"]]} for c in inputs]
    assert decode(json.dumps({"inputs": nested}).encode(), spec).rows is None


def _mixed_spec(columns=None):
    """The V2 view of a model with a double, a long and a double column (or the ``columns``
    given): a real MLflow Model's metadata (what model_spec reads of a loaded pyfunc), no model
    needed to decode."""
    import warnings
    from types import SimpleNamespace

    import pandas as pd
    from mlflow.models import Model, infer_signature

    from mlgate.serving.fastpath import NumericSchema

    columns = COLUMNS if columns is None else columns
    kinds = {"FP64": np.float64, "INT64": np.int64}
    frame = pd.DataFrame({name: np.array([1], dtype=kinds[t]) for name, t in columns})
    with warnings.catch_warnings():  # MLflow's hint that integer columns cannot hold NaN
        warnings.simplefilter("ignore")
        model = SimpleNamespace(metadata=Model(signature=infer_signature(frame, np.zeros(1))))
    schema = NumericSchema.from_model(model)
    assert schema is not None and schema.integer == tuple(t == "INT64" for _, t in columns)
    return model_spec(model, schema), schema


NEAR_NUMBER = (
    st.floats(width=64)
    | st.integers(-(2**70), 2**70)
    | st.booleans()
    | st.none()
    | st.just("1")
    | st.lists(st.floats(-1, 1), max_size=1)
)
COLUMNS = (("a", "FP64"), ("n", "INT64"), ("b", "FP64"))


@st.composite
def near_plain_requests(draw, columns=COLUMNS):
    """Requests at the edge of the row path: plain columns of the mixed spec (numbers of the
    column's kind, in any order, with an optional id, outputs and `pd`), then, two times in
    three, one thing made wrong or unusual (a name, datatype, shape, value, a tensor's or the
    request's parameters, outputs, id)."""
    n = draw(st.integers(1, 3))
    numbers = {"FP64": st.floats(-1e6, 1e6) | st.integers(-9, 9), "INT64": st.integers(-9, 9)}
    inputs = [
        {
            "name": name,
            "datatype": datatype,
            "shape": draw(st.sampled_from([[n], [n, 1]])),
            "data": draw(st.lists(numbers[datatype], min_size=n, max_size=n)),
        }
        for name, datatype in columns
    ]
    request: dict = {"inputs": draw(st.permutations(inputs))}
    if draw(st.booleans()):
        request["id"] = draw(st.text(max_size=3))
    if draw(st.integers(0, 3)) == 0:
        request["outputs"] = [{"name": "output-1"}]
    if draw(st.integers(0, 3)) == 0:
        request["parameters"] = {"content_type": "pd"}
    if draw(st.integers(0, 2)) > 0:
        tensor = draw(st.sampled_from(request["inputs"]))
        change = draw(st.integers(0, 10))
        if change == 0:
            tensor["name"] = draw(st.sampled_from(["a", "n", "b", "zz", "", 1]))
        elif change == 10:  # no name, or the name last (msgspec reads a tag anywhere)
            name = tensor.pop("name")
            if draw(st.booleans()):
                tensor["name"] = name
        elif change == 1:
            tensor["datatype"] = draw(st.sampled_from(["FP64", "INT64", "FP32", "INT32", "BOOL"]))
        elif change == 2:
            tensor["shape"] = draw(
                st.sampled_from([[n + 1], [n, 2], [n, 1, 1], [True], [float(n)], [], "1", None])
            )
        elif change == 3:
            tensor["data"][draw(st.integers(0, n - 1))] = draw(NEAR_NUMBER)
        elif change == 4:
            tensor["data"] = tensor["data"][:-1]
        elif change == 5:
            tensor["parameters"] = draw(st.sampled_from([None, {"content_type": "np"}, {}]))
        elif change == 6:
            request["inputs"] = request["inputs"][: draw(st.integers(0, 2))] + (
                [tensor] if draw(st.booleans()) else []
            )
        elif change == 7:
            request["parameters"] = draw(
                st.sampled_from([{"content_type": "np"}, {"headers": {}}, {"a": 1}, None, []])
            )
        elif change == 8:
            request["outputs"] = draw(st.sampled_from([[{"name": 1}], [], "x", None]))
        else:
            request["id"] = draw(st.sampled_from([7, None, ["x"]]))
    return json.dumps(request).encode()


def _decoded(body, spec, schema, general: bool):
    """(what the decoder made of the body, in comparable form) or ("error", message)."""
    from mlgate.errors import ScoringInputError
    from mlgate.serving.v2 import V2Error, decode_doc

    try:
        d = decode_doc(json.loads(body), spec) if general else decode(body, spec)
    except V2Error as exc:
        return "error", exc.message
    if isinstance(d.data, np.ndarray):  # content_type np: never the row path
        assert d.rows is None
        return "array", d.data.shape, str(d.data.dtype), json.dumps(d.data.tolist())
    try:
        frame = schema.frame(d.rows) if d.rows is not None else d.data[list(schema.columns)]
    except ScoringInputError:  # a number too big for its column: refused when scored
        return "error", "does not fit"
    except KeyError:  # a column is missing: the model refuses the frame when it scores
        frame = d.data
    rid = d.id if json.loads(body).get("id") is not None else None
    values = json.dumps(frame.to_numpy().tolist())  # (NaN is written as NaN, and equal)
    return rid, d.outputs, d.params, list(frame.columns), [str(t) for t in frame.dtypes], values


@settings(max_examples=300, deadline=None)
@given(body=near_plain_requests())
def test_the_row_path_decides_every_request_as_the_general_decoder(body):
    """The row path (msgspec's typed decoding) and the general decoder (json, then the codec)
    give the same rows, dtypes, id and outputs, or both refuse; many requests take the row path."""
    _same_decision(body, *_mixed_spec())


@settings(max_examples=150, deadline=None)
@given(body=near_plain_requests(columns=(("a", "FP64"),)))
def test_the_row_path_decides_one_column_requests_as_the_general_decoder(body):
    """The same for a model of one column (where msgspec would not need the tag of a union of
    one tagged struct: a tensor without a name must still be refused)."""
    _same_decision(body, *_mixed_spec((("a", "FP64"),)))


def _same_decision(body, spec, schema):
    fast, general = _decoded(body, spec, schema, False), _decoded(body, spec, schema, True)
    if general[0] == "error":
        assert fast[0] == "error", (body, fast)
        if fast[1] != "does not fit":
            assert fast == general or general[1].endswith(("does not fit INT64", "fit FP64")), body
    else:
        assert fast == general, body


def test_the_row_path_takes_the_common_requests_and_refuses_what_does_not_fit():
    """Rows for the plain request, with or without `pd`, an id and requested outputs; a number
    too big for its column is the client's 400 (not a 500 when the batch is built)."""
    from mlgate.errors import ScoringInputError

    spec, schema = _mixed_spec()
    plain = [
        {"name": "b", "datatype": "FP64", "shape": [2, 1], "data": [1, 2.5]},
        {"name": "a", "datatype": "FP64", "shape": [2], "data": [0.5, -1e-300]},
        {"name": "n", "datatype": "INT64", "shape": [2], "data": [3, -4]},
    ]
    for extra in ({}, {"parameters": {"content_type": "pd"}, "id": "x", "outputs": []}):
        d = decode(json.dumps({"inputs": plain, **extra}).encode(), spec)
        assert [list(r) for r in d.rows] == [[0.5, 3, 1], [-1e-300, -4, 2.5]], extra
    assert d.id == "x" and d.outputs == []
    dup = b'{"inputs": [], "inputs": ' + json.dumps(plain).encode() + b', "id": "1", "id": "2"}'
    assert decode(dup, spec).rows is not None and decode(dup, spec).id == "2"  # as json reads it
    for column, big in (("n", 2**63), ("a", 10**400)):
        body = [dict(t, data=[big, 1]) if t["name"] == column else t for t in plain]
        rows = decode(json.dumps({"inputs": body}).encode(), spec).rows
        with pytest.raises(ScoringInputError, match="does not fit its column"):
            schema.frame(rows)
    ordered = sorted(plain, key=lambda t: "anb".index(t["name"]))
    name_last = [{k: t[k] for k in ("datatype", "shape", "data", "name")} for t in ordered]
    for inputs in (ordered, name_last, plain):
        assert decode(json.dumps({"inputs": inputs}).encode(), spec).rows is not None

    one, _ = _mixed_spec((("a", "FP64"),))
    tensor = {"name": "a", "datatype": "FP64", "shape": [1], "data": [0.5]}
    assert decode(json.dumps({"inputs": [tensor]}).encode(), one).rows == [(0.5,)]
    for other in ("", "b"):  # another column: a frame the model refuses when it scores
        body = json.dumps({"inputs": [dict(tensor, name=other)]}).encode()
        assert list(decode(body, one).data.columns) == [other]
    odd, _ = _mixed_spec((("", "FP64"), ("-", "INT64")))  # names the decoder's filler could take
    pair = [dict(tensor, name=""), {"name": "-", "datatype": "INT64", "shape": [1], "data": [3]}]
    assert decode(json.dumps({"inputs": pair}).encode(), odd).rows == [(0.5, 3)]
    nameless = json.dumps({"inputs": [{k: v for k, v in tensor.items() if k != "name"}]})
    with pytest.raises(v2.V2Error, match="name"):
        decode(nameless.encode(), one)


def test_the_path_table_recognises_exactly_the_infer_paths():
    """Only /v2/models/NAME[/versions/V]/infer reach the infer handler; anything else is another
    endpoint or no route at all (404, or 405 for a wrong method)."""
    from mlgate.serving.asgi import match

    assert match("/v2/models/m/infer") == ("v2_infer", {"name": "m"})
    assert match("/v2/models/m/versions/3/infer") == ("v2_infer", {"name": "m", "version": "3"})
    for path in (
        "/v2/models//infer",
        "/v2/models/m/versions//infer",
        "/v2/models/m/ready",
        "/v2/models/m/infer/x",
        "/v2/models/m/x/3/infer",
        "/v2/models/m",
    ):
        assert (match(path) or ("none",))[0] != "v2_infer", path
    assert match("/v2/models/m/ready") == ("v2_model_ready", {"name": "m"})
    assert match("/v2/models/m") == ("v2_model", {"name": "m"})
    for path in ("/v2/models//infer", "/v2/models/m/infer/x", "/v2/models/m/", "/nope"):
        assert match(path) is None, path
