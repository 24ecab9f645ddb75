"""The fast numeric parser gives exactly what MLflow's own parser gives, or steps aside."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgate._mlflow import parse_scoring_request, predict
from mlgate.serving.fastpath import NumericSchema, parse_rows

FEATURES = [f"f{i}" for i in range(6)]


@pytest.fixture
def pyfunc(store, model_name, make_version):
    version = make_version()
    return store.load_pyfunc(f"models:/{model_name}/{version}")


NUMBER = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.integers(-1000, 1000))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.lists(NUMBER, min_size=6, max_size=6), min_size=1, max_size=20),
       records=st.booleans())  # fmt: skip
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
    np.testing.assert_array_equal(predict(pyfunc, schema.frame(fast)), predict(pyfunc, slow))
    assert list(schema.frame(fast).dtypes) == list(slow.dtypes)


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
