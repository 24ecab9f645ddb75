"""The request handlers and the ASGI app, driven in-process (no sockets) with real loaded models
from the real tracking server."""

from __future__ import annotations

import asyncio
import json
import random
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.linear_model import LogisticRegression

import mlgate
from mlgate.registry.pyfunc import predictions_json
from mlgate.serving import v2
from mlgate.serving.asgi import App
from mlgate.serving.follower import Follower, ServeConfig
from mlgate.serving.handlers import Handlers, predictions_body
from mlgate.serving.routing import Traffic
from mlgate.serving.telemetry import parse_prometheus
from mlgate.testing import scoring_bodies

FEATURES = [f"f{i}" for i in range(6)]


@pytest.fixture(scope="module")
def served(tracking_server, classifier, tmp_path_factory):
    """A model with two real versions: v1 champion, v2 challenger (a different fit)."""
    model, train, _ = classifier
    name = f"handlers-{time.time_ns()}"
    base = tmp_path_factory.mktemp("handlers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLGATE_CACHE_DIR", str(base / "cache"))
        store = mlgate.Store(tracking_server.uri)
        other = LogisticRegression(C=0.001, max_iter=200).fit(train[FEATURES], train["label"])
        v1, v2_ = (
            mlgate.register(
                m,
                name=name,
                train_data=train,
                input_example=train[FEATURES].head(3),
                code_path=base,
                store=store,
            ).number
            for m in (model, other)
        )
        policy = base / "mlgate.toml"
        policy.write_text("[default.gates]\nchampion = []\nchallenger = []\n")
        mlgate.promote(name, v1, to="champion", policy=policy, store=store)
        mlgate.promote(name, v2_, to="challenger", policy=policy, store=store)
        local = {v: store.load_pyfunc(f"models:/{name}/{v}") for v in (v1, v2_)}
        yield name, v1, v2_, local, tracking_server.uri


def handlers_for(served, *, follow: bool = True, **config) -> Handlers:
    """Handlers over a Follower of the served model (loaded unless ``follow`` is False)."""
    name, *_, uri = served
    cfg = ServeConfig(model=name, tracking_uri=uri, **config)
    follower = Follower(cfg)
    if follow:
        assert follower.refresh()
    return Handlers(cfg, follower, rng=random.Random(0))


@pytest.fixture
def handlers(served):
    h = handlers_for(served)
    yield h
    h.follower.stop()


def body_of(frame) -> bytes:
    return json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))})


def v2_body(frame, **extra) -> bytes:
    inputs = [
        {"name": c, "datatype": "FP64", "shape": [len(frame)], "data": frame[c].tolist()}
        for c in frame.columns
    ]
    return json.dumps({"inputs": inputs, **extra}).encode()


def test_invocations_in_process_give_pyfunc_predictions(handlers, served, classifier):
    """Every input format answers pyfunc's own predictions, from the champion, which says so."""
    _, v1, _, local, _ = served
    frame = classifier[2][FEATURES].head(7)
    want = np.asarray(local[v1].predict(frame))

    async def main():
        return {
            fmt: await handlers.invocations(body.encode(), ctype)
            for fmt, (ctype, body) in scoring_bodies(frame).items()
        }

    for fmt, reply in asyncio.run(main()).items():
        assert reply.status == 200, (fmt, reply.body)
        assert np.array_equal(reply.json()["predictions"], want), fmt
        assert (
            reply.header("X-Mlgate-Version") == v1 and reply.header("x-mlgate-role") == "champion"
        )


def test_client_mistakes_are_4xx_in_mlflows_shape_and_counted(handlers, served):
    """Empty bodies are refused before routing; bad JSON and media types are 4xx from the version
    routed to; each is counted in /metrics."""
    _, v1, *_ = served

    async def main():
        return (
            await handlers.invocations(b"  "),
            await handlers.invocations(b"{nope"),
            await handlers.invocations(b"<x/>", "application/xml"),
        )

    empty, bad, xml = asyncio.run(main())
    assert (empty.status, empty.json()["error_code"]) == (400, "BAD_REQUEST")
    assert empty.header("x-mlgate-version") is None
    assert (bad.status, bad.json()["error_code"], bad.header("x-mlgate-version")) == (
        400,
        "BAD_REQUEST",
        v1,
    )
    assert (xml.status, xml.json()["error_code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    text = handlers.metrics().body.decode()
    assert f'mlgate_invalid_requests_total{{model="{served[0]}"}} 1' in text
    assert parse_prometheus(text)[v1]["errors"] == 2


def test_bodies_nested_too_deeply_or_with_numbers_too_big_are_400s_not_500s(handlers, served):
    """JSON nested deeper than the parser goes, and an integer no double holds (both parse as
    JSON), are the client's mistakes in both protocols: a 400 in the protocol's error shape."""
    name = served[0]
    deep = b"[" * 100_000 + b"]" * 100_000
    columns = ", ".join(f'"{f}"' for f in FEATURES)
    huge = "1" + "0" * 400
    split = f'{{"dataframe_split": {{"columns": [{columns}], "data": [[{huge}, 1, 1, 1, 1, 1]]}}}}'
    tensors = ", ".join(
        f'{{"name": "{f}", "datatype": "FP64", "shape": [1], "data": [{huge if i == 0 else 1}]}}'
        for i, f in enumerate(FEATURES)
    )

    async def main():
        return (
            await handlers.invocations(deep),
            await handlers.invocations(b'{"dataframe_split": ' + deep + b"}"),
            await handlers.invocations(split.encode()),
            await handlers.v2_infer(name, deep),
            await handlers.v2_infer(name, f'{{"inputs": [{tensors}]}}'.encode()),
        )

    *mlflow_replies, v2_deep, v2_huge = asyncio.run(main())
    for reply in mlflow_replies:
        assert (reply.status, reply.json()["error_code"]) == (400, "BAD_REQUEST"), reply.body[:200]
    for reply in (v2_deep, v2_huge):
        assert reply.status == 400 and set(reply.json()) == {"error"}, reply.body[:200]
    assert "nested too deeply" in v2_deep.json()["error"]


def test_nothing_loaded_yet_is_503_on_every_readiness_and_scoring_endpoint(served, classifier):
    """Before the first poll: /ping, /health, /version, V2 ready and both scoring protocols 503."""
    h = handlers_for(served, follow=False)
    try:
        body = body_of(classifier[2][FEATURES].head(1)).encode()
        inv = asyncio.run(h.invocations(body))
        infer = asyncio.run(h.v2_infer(served[0], v2_body(classifier[2][FEATURES].head(1))))
        assert (inv.status, inv.json()["error_code"]) == (503, "NOT_READY")
        assert infer.status == 503 and set(infer.json()) == {"error"}
        assert [r.status for r in (h.ping(), h.health(), h.version(), h.v2_ready())] == [503] * 4
        assert h.health().json()["status"] == "not_ready" and h.v2_live().status == 200
    finally:
        h.follower.stop()


def test_a_split_reaches_both_versions_a_key_sticks_and_metrics_count_each(served, classifier):
    """At 50% both versions answer, a key always gets the same one, and the telemetry counts
    exactly what was answered per version."""
    _, v1, v2_, _, _ = served
    h = handlers_for(served, traffic=Traffic("split", 50))
    row = classifier[2][FEATURES].head(1)
    body = body_of(row).encode()

    async def main():
        seen = [(await h.invocations(body)).header("x-mlgate-version") for _ in range(100)]
        sticky = {(await h.invocations(body, key="user-7")).header("x-mlgate-version")}
        for _ in range(19):
            sticky.add((await h.invocations(body, key="user-7")).header("x-mlgate-version"))
        return seen, sticky

    try:
        seen, sticky = asyncio.run(main())
        stats = parse_prometheus(h.metrics().body.decode())
    finally:
        h.follower.stop()
    assert set(seen) == {v1, v2_} and len(sticky) == 1
    counts = {v: seen.count(v) + 20 * (v in sticky) for v in (v1, v2_)}
    assert {v: stats[v]["requests"] for v in (v1, v2_)} == counts
    assert {v: stats[v]["latency_count"] for v in (v1, v2_)} == counts


def test_shadow_scores_a_copy_and_counts_disagreement(served, classifier):
    """In shadow mode the champion answers; the challenger scores each request too, and its
    disagreements are exactly the rows where the two versions' predictions differ."""
    _, v1, v2_, local, _ = served
    h = handlers_for(served, traffic=Traffic("shadow", 0))
    rows = classifier[2][FEATURES].head(30)
    differ = int(
        sum(
            np.asarray(local[v1].predict(rows.iloc[[i]]))[0]
            != np.asarray(local[v2_].predict(rows.iloc[[i]]))[0]
            for i in range(len(rows))
        )
    )

    async def main():
        answered = [
            (await h.invocations(body_of(rows.iloc[[i]]).encode())).header("x-mlgate-version")
            for i in range(len(rows))
        ]
        deadline = time.monotonic() + 10
        while h.telemetry.shadow_requests.get(v2_, 0) < len(rows):
            assert time.monotonic() < deadline, "the shadow copies were not scored"
            await asyncio.sleep(0.01)
        return answered

    try:
        answered = asyncio.run(main())
    finally:
        h.follower.stop()
    assert set(answered) == {v1}
    assert h.telemetry.shadow_requests[v2_] == len(rows)
    assert h.telemetry.shadow_disagreements.get(v2_, 0) == differ
    assert h.telemetry.shadow_errors.get(v2_, 0) == 0


def test_v2_in_process_predicts_routes_and_refuses(handlers, served, classifier):
    """V2 infer gives pyfunc's predictions from the routed or the asked-for version, echoes the
    id, refuses an unknown model or version and a wrong datatype; metadata from the signature."""
    name, v1, v2_, local, _ = served
    frame = classifier[2][FEATURES].head(5)

    async def main():
        return (
            await handlers.v2_infer(name, v2_body(frame, id="r-1")),
            await handlers.v2_infer(name, v2_body(frame), version=v2_),
            await handlers.v2_infer("nope", v2_body(frame)),
            await handlers.v2_infer(name, v2_body(frame), version="99"),
            await handlers.v2_infer(name, v2_body(frame).replace(b"FP64", b"INT64")),
        )

    routed, asked, unknown, missing, wrong = asyncio.run(main())
    for reply, version in ((routed, v1), (asked, v2_)):
        assert reply.status == 200 and reply.json()["model_version"] == version
        assert reply.header("x-mlgate-version") == version
        [out] = reply.json()["outputs"]
        assert np.array_equal(out["data"], np.asarray(local[version].predict(frame)))
    assert routed.json()["id"] == "r-1" and asked.json()["id"]
    assert (unknown.status, missing.status, wrong.status) == (404, 404, 400)
    assert all(set(r.json()) == {"error"} for r in (unknown, missing, wrong))
    meta = handlers.v2_model(name).json()
    assert meta["versions"] == [v1, v2_] and [i["name"] for i in meta["inputs"]] == FEATURES
    assert handlers.v2_model(name, v2_).json()["versions"] == [v2_]
    assert handlers.v2_model_ready(name, "99").status == 404


def test_scoring_slower_than_the_timeout_is_a_503_and_the_server_answers_on(served, classifier):
    """A request not scored within --timeout gets 503 TIMEOUT (counted for its version); the
    batch loop skips it and answers the next request."""
    _, v1, _, local, _ = served
    h = handlers_for(served, timeout=0.0)
    rows = classifier[1][FEATURES]
    big = body_of(rows.sample(20000, replace=True, random_state=0)).encode()
    one = classifier[2][FEATURES].head(1)

    async def main():
        late = await h.invocations(big)
        h.follower.state.loaded[v1].batcher.dispatcher.timeout = 30.0
        return late, await h.invocations(body_of(one).encode())

    try:
        late, next_one = asyncio.run(main())
        stats = parse_prometheus(h.metrics().body.decode())
    finally:
        h.follower.stop()
    assert (late.status, late.json()["error_code"]) == (503, "TIMEOUT")
    assert late.header("x-mlgate-version") == v1
    assert stats[v1]["errors"] == 1 and stats[v1]["server_errors"] == 1
    assert next_one.status == 200
    assert next_one.json()["predictions"] == np.asarray(local[v1].predict(one)).tolist()


PLAIN = st.one_of(
    hnp.arrays(st.sampled_from([np.int64, np.int32, np.uint8, np.bool_]), st.integers(0, 5)),
    hnp.arrays(st.sampled_from([np.uint64, np.int64]), hnp.array_shapes(max_dims=2, max_side=3)),
    hnp.arrays(np.float64, st.integers(0, 5)),  # NaN and infinities included
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=3)),
    hnp.arrays(hnp.unicode_string_dtypes(max_len=4), st.integers(0, 4)),
)


@settings(max_examples=300, deadline=None)
@given(predictions=PLAIN, request_id=st.none() | st.text(max_size=6))
def test_fast_json_writes_byte_for_byte_what_the_slow_way_writes(predictions, request_id):
    """/invocations' body equals MLflow's own encoder's, and V2's one-tensor template equals
    json.dumps of the full response, for plain numeric and string predictions (ints and finite
    floats are written by repr: the same text); a request without an id gets a fresh one."""
    assert predictions_body(predictions) == predictions_json(predictions).encode()
    decoded = v2.Decoded(request_id, None, None, None, None)
    try:
        want = json.loads(json.dumps(v2.response("m\u00e9", "3", decoded, predictions)))
    except (TypeError, ValueError):  # not a V2 tensor (e.g. strings that are not str)
        return
    fast, again = (v2.response_body("m\u00e9", "3", decoded, predictions) for _ in range(2))
    if request_id is None:  # made up per response: unique, and the rest of the body the same
        ids = {want["id"], json.loads(fast)["id"], json.loads(again)["id"]}
        assert len(ids) == 3 and all(isinstance(i, str) and i for i in ids)
        answer = json.loads(fast)
        answer["id"] = want["id"] = ""
        fast = json.dumps(answer).encode()
    assert fast == json.dumps(want).encode()


async def asgi(app, method, path, body=b"", headers=(), chunks=None):
    """One request through the ASGI app, as uvicorn would make it: (status, headers, body)."""
    parts = chunks or [body]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
        for i, p in enumerate(parts)
    ]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in headers],
    }
    await app(scope, receive, send)
    start, end = sent
    return start["status"], dict(start["headers"]), end["body"]


def test_the_asgi_app_routes_refuses_and_reads_bodies_in_process(served, classifier):
    """Unknown paths 404 and wrong methods 405 in each protocol's shape; HEAD answers like GET;
    a body over the limit is 413 whether declared or streamed; a chunked body is read whole;
    the lifespan starts and stops the follower."""
    name, v1, *_ = served
    h = handlers_for(served, max_body_bytes=2000)
    app = App(h)
    body = body_of(classifier[2][FEATURES].head(2)).encode()
    ctype = ("content-type", "application/json")

    async def main():
        return {
            "nope": await asgi(app, "GET", "/nope"),
            "v2 nope": await asgi(app, "GET", "/v2/nothing"),
            "get invocations": await asgi(app, "GET", "/invocations"),
            "post ping": await asgi(app, "POST", "/ping"),
            "get infer": await asgi(app, "GET", f"/v2/models/{name}/infer"),
            "head ping": await asgi(app, "HEAD", "/ping"),
            "declared": await asgi(
                app, "POST", "/invocations", b"{}", [ctype, ("content-length", "5000")]
            ),
            "streamed": await asgi(app, "POST", "/invocations", chunks=[b"x" * 1500] * 2),
            "v2 streamed": await asgi(
                app, "POST", f"/v2/models/{name}/infer", chunks=[b"x" * 1500] * 2
            ),
            "bad length": await asgi(app, "POST", "/invocations", body, [("content-length", "x")]),
            "chunked": await asgi(
                app, "POST", "/invocations", chunks=[body[:10], body[10:]], headers=[ctype]
            ),
        }

    try:
        got = asyncio.run(main())
        lifespan = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        said = []

        async def receive():
            return lifespan.pop(0)

        async def send(message):
            said.append((message["type"], h.follower._thread is not None))

        asyncio.run(app({"type": "lifespan"}, receive, send))
    finally:
        h.follower.stop()
    assert said == [("lifespan.startup.complete", True), ("lifespan.shutdown.complete", True)]
    assert h.follower._thread is not None and not h.follower._thread.is_alive()
    status = {k: s for k, (s, _, _) in got.items()}
    assert status == {
        "nope": 404,
        "v2 nope": 404,
        "get invocations": 405,
        "post ping": 405,
        "get infer": 405,
        "head ping": 200,
        "declared": 413,
        "streamed": 413,
        "v2 streamed": 413,
        "bad length": 400,
        "chunked": 200,
    }
    assert json.loads(got["nope"][2])["error_code"] == "NOT_FOUND"
    assert json.loads(got["get invocations"][2])["error_code"] == "METHOD_NOT_ALLOWED"
    assert set(json.loads(got["v2 nope"][2])) == {"error"}
    assert set(json.loads(got["v2 streamed"][2])) == {"error"}
    assert "limit" in json.loads(got["declared"][2])["message"]
    _, headers, answer = got["chunked"]
    assert headers[b"x-mlgate-version"] == v1.encode()
    assert int(headers[b"content-length"]) == len(answer)
    assert len(json.loads(answer)["predictions"]) == 2


def test_a_regressor_answers_its_own_floats_bit_for_bit_on_both_protocols(classifier, tmp_path):
    """Float answers (written by repr on the fast paths) are the model's own predictions exactly,
    on /invocations and on V2, with the inputs in schema order and reversed."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import Ridge

    _, train, test = classifier
    features = train[FEATURES]
    target = features["f0"] * 3.25 - features["f3"] / 7 + 1e-3
    model = Ridge(alpha=0.1).fit(features, target)
    signature = infer_signature(features, model.predict(features))
    mlflow.sklearn.save_model(model, str(tmp_path / "model"), signature=signature)
    cfg = ServeConfig(model="reg", model_dir=str(tmp_path / "model"), verify_digest=False)
    follower = Follower(cfg)
    assert follower.refresh()
    h = Handlers(cfg, follower, rng=random.Random(0))
    rows = test[FEATURES].head(5)
    want = model.predict(rows).tolist()
    reversed_inputs = json.dumps({"inputs": json.loads(v2_body(rows))["inputs"][::-1]}).encode()
    # (not body_of: pandas' to_json keeps 10 significant digits)
    split = {"columns": FEATURES, "data": rows.to_numpy().tolist()}
    exact = json.dumps({"dataframe_split": split}).encode()

    async def main():
        return (
            await h.invocations(exact),
            await h.v2_infer("reg", v2_body(rows)),
            await h.v2_infer("reg", reversed_inputs),
        )

    try:
        mlflow_reply, *v2_replies = asyncio.run(main())
    finally:
        follower.stop()
    assert mlflow_reply.status == 200 and mlflow_reply.json()["predictions"] == want
    for reply in v2_replies:
        out = reply.json()["outputs"][0]
        assert reply.status == 200, reply.body
        assert (out["datatype"], out["shape"], out["data"]) == ("FP64", [5, 1], want)
