"""The fast numeric parser gives exactly what MLflow's own parser gives, or steps aside."""

from __future__ import annotations

import asyncio
import json
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgate.errors import ScoringInputError
from mlgate.registry.pyfunc import parse_scoring_request, predict
from mlgate.serving.batching import (
    INLINE_BUDGET,
    INLINE_ROWS,
    PROBE_EVERY,
    PROBE_LIMIT,
    ROWS,
    Batcher,
    Dispatcher,
    _Group,
)
from mlgate.serving.fastpath import (
    ARRAY_SAFE,
    NumericSchema,
    array_predictor,
    linear_predictor,
    loads,
    parse_rows,
    thread_pools,
)

FEATURES = [f"f{i}" for i in range(6)]


def _batcher(pyfunc):
    return Batcher(pyfunc, Dispatcher(16, ThreadPoolExecutor(1)), NumericSchema.from_model(pyfunc))


@pytest.fixture
def pyfunc(store, model_name, make_version):
    version = make_version()
    return store.load_pyfunc(f"models:/{model_name}/{version}")


NUMBER = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.integers(-1000, 1000))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.lists(NUMBER, min_size=6, max_size=6), min_size=1, max_size=20),
    records=st.booleans(),
)
def test_fast_path_matches_mlflow_parser(pyfunc, rows, records):
    """For numeric rows the fast path's frame predicts exactly as MLflow's parsed frame does."""
    if records:
        body = json.dumps(
            {"dataframe_records": [dict(zip(FEATURES, r, strict=True)) for r in rows]}
        )
    else:
        body = json.dumps({"dataframe_split": {"columns": FEATURES, "data": rows}})
    schema = NumericSchema.from_model(pyfunc)
    assert schema is not None
    fast = parse_rows(body.encode(), "application/json", schema)
    assert fast is not None
    slow, _ = parse_scoring_request(body.encode(), "application/json", pyfunc)
    want = predict(pyfunc, slow)
    np.testing.assert_array_equal(predict(pyfunc, schema.frame(fast)), want)
    assert list(schema.frame(fast).dtypes) == list(slow.dtypes)
    # What the server does with them: the linear path, one combined call, cut back per request.
    batcher = _batcher(pyfunc)
    assert batcher.path == "linear"
    ((ok, got),) = batcher.score(ROWS, [fast])
    assert ok
    np.testing.assert_array_equal(got, want)
    outcomes = batcher.score(ROWS, [[r] for r in fast])
    assert all(ok for ok, _ in outcomes)
    np.testing.assert_array_equal(np.concatenate([p for _, p in outcomes]), want)


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": FEATURES[::-1], "data": [[1] * 6]}},
        {"dataframe_split": {"columns": FEATURES, "data": [[1, 2, 3, 4, 5, "6"]]}},
        {"dataframe_split": {"columns": FEATURES, "data": [[1, 2, 3, 4, 5, None]]}},
        {"dataframe_split": {"columns": FEATURES, "data": [[1, 2, 3, 4, 5, True]]}},
        {"dataframe_records": [{"f0": 1}]},
        {"inputs": {f: [1.0] for f in FEATURES}},
        {"dataframe_split": {"columns": FEATURES, "data": [[1] * 6]}, "params": {"a": 1}},
    ],
)
def test_fast_path_steps_aside(pyfunc, body):
    """Anything but plain numeric rows in schema order goes to MLflow's parser."""
    assert (
        parse_rows(json.dumps(body).encode(), "application/json", NumericSchema.from_model(pyfunc))
        is None
    )


# --------------------------------------------------------------------------- loads


def _outcome(fn, body: bytes):
    """What a JSON decoder makes of ``body``: its value written back by json (which tells 1 from
    1.0, keeps key order, writes NaN and lone surrogates), or the type of its error."""
    try:
        return "value", json.dumps(fn(body))
    except RecursionError:
        return "error", "RecursionError"
    except Exception as exc:  # noqa: BLE001 - the error's type is the outcome
        return "error", type(exc).__name__


# Where msgspec and json part ways, or could: loads must be json.loads on every one.
LOADS_EDGES = [
    b'{"a": 1, "a": 2, "b": 3}',  # duplicate keys: the last value, the first position
    b"NaN",
    b"[Infinity, -Infinity]",
    b"1e400",
    b"-1e400",
    b"1.7976931348623157e309",
    b"1.0e-400",
    b"4.9406564584124654e-324",
    b"-0",
    b"-0.0",
    b"18446744073709551615",
    b"18446744073709551616",  # beyond 64 bits: still an int
    b"-9223372036854775809",
    b"123456789012345678901234567890.5",
    b"9007199254740993",
    b"\xef\xbb\xbf{}",  # a UTF-8 byte-order mark
    '{"a": 1}'.encode("utf-16"),
    '{"a": 1}'.encode("utf-32"),
    b'"\\ud800"',  # an escaped lone surrogate
    b'"\\ud83d\\ude00"',
    b'"\\u0000"',
    b'"\xff"',  # not UTF-8
    b'"\x01"',  # a raw control character
    b"[1,]",
    b'{"a": 1} x',
    b" \t\n\r[1]\n",
    b"",
    b"[" * 5000 + b"]" * 5000,
    b'{"dataframe_split": {"columns": ["f0"], "data": [[1.5]]}}',
]

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.floats()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("body", LOADS_EDGES, ids=range(len(LOADS_EDGES)))
def test_loads_is_json_loads(body):
    """fastpath.loads (msgspec first, json where it refuses) decides every edge as json does."""
    assert _outcome(loads, body) == _outcome(json.loads, body)


@settings(max_examples=400, deadline=None)
@given(
    value=JSON_VALUES,
    compact=st.booleans(),
    cut=st.integers(0, 200),
    junk=st.binary(max_size=2),
)
def test_loads_is_json_loads_on_random_documents(value, compact, cut, junk):
    """Random documents as json writes them (NaN, infinities and big integers included), and
    the same documents cut short or with stray bytes: the same value, or json's own error."""
    text = json.dumps(value, separators=(",", ":") if compact else None).encode()
    for body in (text, text[:cut] + junk + text[cut:], text[:cut]):
        assert _outcome(loads, body) == _outcome(json.loads, body), body


# --------------------------------------------------------------------------- the array path


def _data(n: int = 60, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 6)), columns=FEATURES)
    label = (frame["f0"] + frame["f1"] > 0).astype(int)
    return frame, label


DOUBLES = NumericSchema(tuple(FEATURES), (np.float64,) * 6, (False,) * 6)


def _fitted(name: str):
    """An instance of the sklearn class ``name`` fitted on a DataFrame (a transformer in a
    Pipeline before a LogisticRegression)."""
    from sklearn.base import is_classifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.utils import all_estimators

    classes = dict(all_estimators())
    frame, label = _data()
    cls = classes[name]
    kwargs = {"random_state": 0} if "random_state" in cls().get_params() else {}
    if name in ("MLPClassifier", "MLPRegressor"):
        kwargs["max_iter"] = 50
    est = cls(**kwargs)
    if not hasattr(est, "predict"):
        est = make_pipeline(est, LogisticRegression())
    target = label if is_classifier(est) else frame["f0"] * 2 + frame["f2"]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of tiny fits
        return est.fit(frame, target)


@pytest.mark.parametrize("name", sorted(ARRAY_SAFE))
def test_array_path_gives_the_dataframe_predictions_for_every_listed_class(name):
    """Each listed class predicts on the schema's ndarray exactly as on the frame."""
    est = _fitted(name)
    fn = array_predictor(est, "predict", DOUBLES)
    assert fn is not None, name
    frame, _ = _data(40, seed=1)
    rows = frame.values.tolist()
    np.testing.assert_array_equal(fn(DOUBLES.array(rows)), est.predict(DOUBLES.frame(rows)))


LINEAR = {
    "LogisticRegression": ("binary", "three"),
    "SGDClassifier": ("binary", "three"),
    "Perceptron": ("binary", "three"),
    "LinearSVC": ("binary", "three"),
    "LinearRegression": ("value", "two values"),
    "Ridge": ("value", "two values"),
    "Lasso": ("value",),
    "ElasticNet": ("value",),
    "LinearSVR": ("value",),
}


@pytest.mark.parametrize(
    ("name", "target"), [(n, t) for n, targets in LINEAR.items() for t in targets]
)
def test_linear_path_gives_exactly_predicts_answers(name, target):
    """The linear path's arithmetic is predict's, bit for bit: binary and three-class labels
    (strings too), one and two regression targets, on random rows, ties at a zero score, and
    one row; a batch with NaN or infinity gets scikit-learn's own error."""
    import pandas as pd
    from sklearn.utils import all_estimators

    frame, label = _data(120, seed=3)
    targets = {
        "binary": label,
        "three": pd.Series(np.digitize(frame["f1"], [-0.5, 0.5])).map({0: "lo", 1: "mid", 2: "hi"}),
        "value": frame["f0"] * 2 - frame["f3"],
        "two values": pd.DataFrame({"a": frame["f0"], "b": frame["f2"] - frame["f1"]}),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = dict(all_estimators())[name]().fit(frame, targets[target])
    linear = linear_predictor(est, "predict", DOUBLES)
    assert linear is not None
    rng = np.random.default_rng(7)
    rows = [*rng.normal(scale=5.0, size=(500, 6)).tolist(), [0.0] * 6, [1e300, -1e300, 0, 0, 0, 0]]
    for batch in (rows, rows[:1], rows[-2:-1]):
        x = DOUBLES.array(batch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = est.predict(x)
        got = linear(x)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    for bad in (np.nan, np.inf):
        x = DOUBLES.array([[1.0, bad, 0, 0, 0, 0]])
        with warnings.catch_warnings():  # (serving filters the no-feature-names warning)
            warnings.simplefilter("ignore")
            with pytest.raises(ValueError, match="Input X contains") as ours:
                linear(x)
            with pytest.raises(ValueError) as theirs:
                est.predict(x)
        assert str(ours.value) == str(theirs.value)


def test_linear_path_only_where_predict_is_scikit_learns_generic_one():
    """A class with a predict of its own (RidgeClassifier, a subclass), predict_proba, a
    Pipeline, another width or a mixed-dtype schema keep scikit-learn's own call."""
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame, label = _data()

    class MyModel(LogisticRegression):
        pass

    fitted = LogisticRegression().fit(frame, label)
    assert linear_predictor(fitted, "predict", DOUBLES) is not None
    for est in (
        RidgeClassifier().fit(frame, label),
        MyModel().fit(frame, label),
        make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, label),
        LogisticRegression().fit(frame[FEATURES[:5]], label),
    ):
        assert linear_predictor(est, "predict", DOUBLES) is None, type(est).__name__
    assert linear_predictor(fitted, "predict_proba", DOUBLES) is None
    mixed = NumericSchema(tuple(FEATURES), (np.int64,) + (np.float64,) * 5, (True,) + (False,) * 5)
    assert linear_predictor(fitted, "predict", mixed) is None


def test_array_path_is_refused_when_the_frame_could_matter():
    """Composites that route by column name, pandas output, subclasses, other column orders and
    unlisted classes keep the DataFrame path."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame, label = _data()

    class MyModel(LogisticRegression):
        pass

    by_name = make_pipeline(
        ColumnTransformer([("s", StandardScaler(), ["f0", "f1"])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, label)
    pandas_out = make_pipeline(StandardScaler(), LogisticRegression())
    pandas_out.set_output(transform="pandas")
    pandas_out.fit(frame, label)
    reordered = LogisticRegression().fit(frame[FEATURES[::-1]], label)
    for est in (
        by_name,
        pandas_out,
        MyModel().fit(frame, label),
        reordered,
        AdaBoostClassifier(n_estimators=5).fit(frame, label),
    ):
        assert array_predictor(est, "predict", DOUBLES) is None, type(est).__name__
    mixed = NumericSchema(tuple(FEATURES), (np.int64,) + (np.float64,) * 5, (True,) + (False,) * 5)
    assert array_predictor(LogisticRegression().fit(frame, label), "predict", mixed) is None
    plain = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, label)
    assert array_predictor(plain, "predict", DOUBLES) is not None


def test_array_path_of_a_model_fitted_without_names():
    """A model fitted on an ndarray has no names to check; the array path still agrees."""
    from sklearn.linear_model import LogisticRegression

    frame, label = _data()
    est = LogisticRegression().fit(frame.values, label)
    fn = array_predictor(est, "predict_proba", DOUBLES)
    assert fn is not None
    rows = frame.head(9).values.tolist()
    np.testing.assert_array_equal(fn(DOUBLES.array(rows)), est.predict_proba(frame.head(9).values))


# --------------------------------------------------------------------------- through MLflow


def _rows(frame, n=11):
    return frame[FEATURES].head(n).values.tolist()


def test_predict_proba_models_score_with_the_method_they_were_logged_with(
    store, model_name, make_version, classifier
):
    """``pyfunc_predict_fn="predict_proba"``: the fast paths call predict_proba, like pyfunc."""
    _, _, test = classifier
    version = make_version(log_model_kwargs={"pyfunc_predict_fn": "predict_proba"})
    pyfunc = store.load_pyfunc(f"models:/{model_name}/{version}")
    batcher = _batcher(pyfunc)
    assert batcher.path == "array"
    rows = _rows(test)
    ((ok, got),) = batcher.score(ROWS, [rows])
    assert ok and np.asarray(got).shape == (len(rows), 2)
    np.testing.assert_array_equal(got, predict(pyfunc, test[FEATURES].head(11)))


def test_mixed_dtypes_take_the_frame_path_with_pyfunc_predictions(store, model_name, make_version):
    """An integer column among doubles: no single array, so the checked frame path; same answers."""
    frame, label = _data(80, seed=3)
    frame["f0"] = (frame["f0"] * 10).round().astype("int64")
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(frame, label)
    data = frame.assign(label=label)
    version = make_version(model, train_data=data, eval_data=data, input_example=frame.head(3))
    pyfunc = store.load_pyfunc(f"models:/{model_name}/{version}")
    batcher = _batcher(pyfunc)
    assert batcher.path == "frame"
    body = json.dumps(
        {"dataframe_split": json.loads(frame.head(17).to_json(orient="split", index=False))}
    )
    fast = parse_rows(body.encode(), "application/json", batcher.schema)
    assert fast is not None
    slow, _ = parse_scoring_request(body.encode(), "application/json", pyfunc)
    ((ok, got),) = batcher.score(ROWS, [fast])
    assert ok
    np.testing.assert_array_equal(got, predict(pyfunc, slow))


def test_one_trip_scores_both_versions_and_isolates_a_bad_request(
    store, model_name, make_version, classifier
):
    """Champion and challenger requests queued together are scored in one trip to the predict
    thread, each version by its own model; a row sklearn refuses fails only its own request
    (its group's combined call fails, and that group is scored request by request)."""
    from sklearn.linear_model import LogisticRegression

    _, train, test = classifier
    v1 = make_version()
    v2 = make_version(LogisticRegression(C=0.001).fit(train[FEATURES], train["label"]))
    models = {v: store.load_pyfunc(f"models:/{model_name}/{v}") for v in (v1, v2)}

    class CountingExecutor(ThreadPoolExecutor):
        trips = 0

        def submit(self, *args, **kwargs):
            CountingExecutor.trips += 1
            return super().submit(*args, **kwargs)

    executor = CountingExecutor(1)
    dispatcher = Dispatcher(256, executor)
    batchers = {v: Batcher(m, dispatcher, NumericSchema.from_model(m)) for v, m in models.items()}
    rows = _rows(test, 12)
    bad = [[float("nan")] * 6]  # JSON's NaN gets past the parser; LogisticRegression refuses it

    async def main():
        calls = [batchers[v1 if i % 2 else v2].submit_rows([r]) for i, r in enumerate(rows)]
        calls.insert(5, batchers[v1].submit_rows(bad))
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        dispatcher.close()
        executor.shutdown()
    assert CountingExecutor.trips == 1  # the failed combined call is retried in the same trip
    assert isinstance(results.pop(5), ScoringInputError)
    for i, (row, got) in enumerate(zip(rows, results, strict=True)):
        version = v1 if i % 2 else v2
        np.testing.assert_array_equal(got, predict(models[version], test[FEATURES].iloc[[i]]))
        assert np.asarray(got).shape == (1,)
        assert test[FEATURES].iloc[i].tolist() == row


def test_cheap_cycles_are_scored_on_the_loop_and_the_rest_on_the_predict_thread(pyfunc):
    """Unmeasured versions, cycles expected over the budget and cycles of many rows go to the
    thread."""
    batcher = _batcher(pyfunc)
    dispatcher = batcher.dispatcher
    one = _Group(batcher, ROWS, [[[0.5] * 6]])
    assert batcher.cost is None and not dispatcher._cheap([one])
    ((ok, _),) = batcher.score(ROWS, [[[0.5] * 6]])
    assert ok and batcher.cost is not None and batcher.cost > 0
    batcher.cost = INLINE_BUDGET / 4
    assert dispatcher._cheap([one])
    assert not dispatcher._cheap([one] * 4)  # four groups' worth: at the budget
    assert not dispatcher._cheap([_Group(batcher, ROWS, [[[0.5] * 6] * (INLINE_ROWS + 1)])])
    batcher.cost = INLINE_BUDGET * 2
    assert not dispatcher._cheap([one])


def test_a_version_is_timed_on_the_loop_once_in_16_cycles_over_budget(pyfunc):
    """Cycles expected over the budget (and under PROBE_LIMIT) go to the thread, but every 16th is
    scored on the loop to be timed there; a timing on the thread (with its waits for the GIL) can
    lower the estimate, never raise it. Slower cycles and cycles of many rows never run inline."""
    batcher = _batcher(pyfunc)
    dispatcher = batcher.dispatcher
    one = _Group(batcher, ROWS, [[[0.5] * 6]])
    rows = [[[0.5] * 6]]
    batcher.score(ROWS, rows)
    assert batcher.cost is not None and not batcher.timed_on_loop
    batcher.cost = 3600.0  # e.g. a first call that loaded a library
    batcher.score(ROWS, rows, on_loop=True)
    assert batcher.timed_on_loop and batcher.cost < 60  # the first timing on the loop replaces it
    batcher.cost = 3600.0  # e.g. a call on the loop preempted by another process
    batcher.score(ROWS, rows)
    assert batcher.cost < 60
    batcher.cost = 0.0
    batcher.score(ROWS, rows)
    assert batcher.cost == 0.0
    batcher.cost = INLINE_BUDGET * 2
    decisions = [dispatcher._cheap([one]) for _ in range(3 * PROBE_EVERY)]
    assert decisions == ([False] * (PROBE_EVERY - 1) + [True]) * 3
    batcher.cost = PROBE_LIMIT
    assert not any(dispatcher._cheap([one]) for _ in range(3 * PROBE_EVERY))
    many = _Group(batcher, ROWS, [[[0.5] * 6] * (INLINE_ROWS + 1)])
    batcher.cost = INLINE_BUDGET * 2
    assert not any(dispatcher._cheap([many]) for _ in range(3 * PROBE_EVERY))


def test_inputs_that_cannot_be_combined_still_go_through_the_one_loop(pyfunc, classifier):
    """A request with params, or an input that is not a DataFrame, is scored alone but in the
    same cycle and trip as the others: a model never predicts in two threads at once."""
    _, _, test = classifier
    frame = test[FEATURES].head(4)
    trips: list[int] = []

    class CountingExecutor(ThreadPoolExecutor):
        def submit(self, *args, **kwargs):
            trips.append(1)
            return super().submit(*args, **kwargs)

    executor = CountingExecutor(1)
    dispatcher = Dispatcher(64, executor)
    batcher = Batcher(pyfunc, dispatcher, NumericSchema.from_model(pyfunc))

    async def main():
        return await asyncio.gather(
            batcher.submit(frame, None),
            batcher.submit(frame, {"threshold": 0.5}),
            batcher.submit(frame.to_dict(orient="list"), None),  # a dict of columns
            batcher.submit_rows(frame.values.tolist()),
            return_exceptions=True,
        )

    try:
        plain, with_params, as_dict, rows = asyncio.run(main())
    finally:
        dispatcher.close()
        executor.shutdown()
    assert len(trips) == 1
    want = predict(pyfunc, frame)
    np.testing.assert_array_equal(plain, want)
    np.testing.assert_array_equal(rows, want)
    # exactly what pyfunc does with them, called directly
    np.testing.assert_array_equal(with_params, predict(pyfunc, frame, {"threshold": 0.5}))
    np.testing.assert_array_equal(as_dict, predict(pyfunc, frame.to_dict(orient="list")))


def test_thread_pools_that_serving_would_start_are_named():
    """n_jobs > 1 anywhere in the estimator (nested in a Pipeline too) is reported; 1 and None
    are not."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    assert thread_pools(RandomForestClassifier(n_jobs=2)) == {"n_jobs": 2}
    assert thread_pools(RandomForestClassifier(n_jobs=1)) == {}
    assert thread_pools(make_pipeline(StandardScaler(), LogisticRegression(n_jobs=-1))) == {
        "logisticregression__n_jobs": -1
    }
    assert thread_pools(make_pipeline(StandardScaler(), LogisticRegression())) == {}
    assert thread_pools(object()) == {}
