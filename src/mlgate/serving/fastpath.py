"""A fast, exact parser for the most common scoring request: numeric rows for a numeric schema.

MLflow's parser builds a DataFrame for every request (about 0.6 ms for one row). For a
``dataframe_split`` or ``dataframe_records`` body whose columns are exactly the model's numeric
input columns, mlgate instead keeps the decoded rows, and the batcher builds *one* DataFrame for
a whole batch with the dtypes MLflow's parser would have produced. Anything else (other formats,
other columns, strings, booleans, nulls, params) returns None and takes MLflow's own parser, so
behaviour never differs; only the cost does.

For the scikit-learn classes in :data:`ARRAY_SAFE`, :func:`array_predictor` goes one step
further: the batch becomes the ndarray scikit-learn would take out of that frame, and the
estimator is called on it directly.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

import msgspec
import numpy as np

from mlgate.errors import ScoringInputError

_DTYPES = {"double": np.float64, "float": np.float32, "long": np.int64, "integer": np.int32}


@dataclass(frozen=True)
class NumericSchema:
    """Input columns of a model whose inputs are all named, required, numeric columns."""

    columns: tuple[str, ...]
    dtypes: tuple[Any, ...]
    integer: tuple[bool, ...]

    @classmethod
    def from_model(cls, model: Any) -> NumericSchema | None:
        try:
            schema = model.metadata.get_input_schema()
            if schema is None or not schema.has_input_names() or model.metadata.get_params_schema():
                return None
            cols, dtypes, integer = [], [], []
            for spec in schema.inputs:
                kind = getattr(getattr(spec, "type", None), "name", None)
                if kind not in _DTYPES or not getattr(spec, "required", True):
                    return None
                cols.append(str(spec.name))
                dtypes.append(_DTYPES[kind])
                integer.append(kind in ("long", "integer"))
        except (AttributeError, TypeError, ValueError):
            return None
        return cls(tuple(cols), tuple(dtypes), tuple(integer))

    @cached_property
    def column_list(self) -> list[str]:
        """The columns as the list a ``dataframe_split`` body names them in."""
        return list(self.columns)

    @cached_property
    def integer_positions(self) -> tuple[int, ...]:
        """The positions of the integer columns."""
        return tuple(i for i, integer in enumerate(self.integer) if integer)

    @property
    def uniform(self) -> bool:
        """Every column has the same dtype (the rows are one 2-D array)."""
        return len(set(self.dtypes)) == 1

    def array(self, rows: list[list[Any]]) -> np.ndarray:
        """The rows as the 2-D array scikit-learn takes out of :meth:`frame` (uniform schemas).

        Column-major, like ``np.asarray`` of a DataFrame: with the other layout BLAS sums in
        another order, and e.g. ElasticNet's predictions differed in the last bit.
        """
        try:
            return np.asfortranarray(np.array(rows, dtype=self.dtypes[0]))
        except OverflowError as exc:
            raise _does_not_fit(exc) from None

    def frame(self, rows: list[list[Any]]) -> Any:
        """One DataFrame for many requests' rows, with the schema's dtypes."""
        import pandas as pd

        try:
            if self.uniform:  # one 2-D block: much cheaper than a dict of columns
                block = np.array(rows, dtype=self.dtypes[0])
                return pd.DataFrame(block, columns=list(self.columns))
            data = {
                c: np.array([r[i] for r in rows], dtype=t)
                for i, (c, t) in enumerate(zip(self.columns, self.dtypes, strict=True))
            }
        except OverflowError as exc:
            raise _does_not_fit(exc) from None
        return pd.DataFrame(data, columns=list(self.columns))


def _does_not_fit(exc: OverflowError) -> ScoringInputError:
    """An integer too big for its column (or for a double): the client's mistake, a 400."""
    return ScoringInputError(f"a number does not fit its column's type: {exc}")


_NUMBERS = frozenset({int, float})
_decode = msgspec.json.Decoder().decode


def loads(body: bytes) -> Any:
    """``json.loads(body)``, exactly, at a fifth to a third of the cost for a scoring request.

    msgspec's decoder parses first (0.6 against 2.8 us for a one-row ``dataframe_split``
    body, 2.0 against 6.0 for the V2 request of six columns). Every document it accepts it
    decodes as json does (the same values, big integers too; the last of duplicate keys); what
    it refuses (``NaN``/``Infinity`` and numbers beyond a double, a byte-order mark or a UTF-16
    body, escaped lone surrogates, and malformed JSON) goes to ``json.loads``, which decides —
    so a body json accepts is accepted with json's value, and any other raises json's error.
    Pinned by ``tests/test_fastpath.py::test_loads_is_json_loads``.
    """
    try:
        return _decode(body)
    except msgspec.DecodeError:
        return json.loads(body)


def plain_json(values: list[Any], kind: str) -> bytes:
    """``json.dumps(values).encode()`` for the ``tolist()`` of a numpy array of kind ``kind``.

    Ints and finite floats are written by ``repr``, which gives the same text (json writes a
    float by its repr) for less: 0.17 against 1.41 µs for ``[1]``, 1.06 against 2.6 µs for three
    floats. NaN and infinities (the only reprs of a number with an ``n``), bools and strings
    are written by json. Used for ``/invocations`` and V2 answers alike."""
    if kind in _REPR_KINDS:
        text = repr(values)
        if "n" not in text:
            return text.encode()
    return json.dumps(values).encode()


_REPR_KINDS = frozenset("iuf")


def parse_rows(
    body: bytes, content_type: str, schema: NumericSchema | None
) -> list[list[Any]] | None:
    """Rows in schema column order, or None when the request is not the simple numeric case."""
    if schema is None:
        return None
    if content_type != "application/json" and _mime(content_type) != "application/json":
        return None
    try:
        doc = loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if type(doc) is not dict or len(doc) != 1:
        return None
    ((key, value),) = doc.items()
    cols = schema.columns
    rows: list[list[Any]] = []
    if key == "dataframe_split":
        if type(value) is not dict or not _SPLIT_KEYS.issuperset(value):
            return None
        data = value.get("data")
        if value.get("columns") != schema.column_list or type(data) is not list:
            return None
        for row in data:
            if type(row) is not list or len(row) != len(cols):
                return None
        rows = data
    elif key == "dataframe_records":
        if type(value) is not list:
            return None
        for rec in value:
            if type(rec) is not dict or len(rec) != len(cols):
                return None
            try:
                rows.append([rec[c] for c in cols])
            except KeyError:
                return None
    else:
        return None
    if not rows:
        return None
    # ints or floats everywhere (one pass in C per row), and only ints in integer columns
    integer = schema.integer_positions
    for row in rows:
        if not _NUMBERS.issuperset(map(type, row)):
            return None
        for i in integer:
            if type(row[i]) is not int:
                return None
    return rows


_SPLIT_KEYS = frozenset({"columns", "data", "index"})


def _mime(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


# --------------------------------------------------------------------------- arrays for sklearn

# scikit-learn classes whose prediction methods validate X (``validate_data``/``check_array``)
# and then compute on the resulting ndarray alone: given a frame whose columns are exactly the
# fitted feature names, in order, and of one numeric dtype, they compute on ``np.asarray(frame)``
# — the same array mlgate can hand them without building the frame (for a six-column
# LogisticRegression, predict took 0.64 ms on a DataFrame and 0.15 ms on the array, measured
# in-process with pandas 3 and scikit-learn 1.9, whatever the row count). Exact classes only:
# a subclass may read the frame. Each is checked against its DataFrame predictions in
# tests/test_fastpath.py. A Pipeline qualifies when every step does and none outputs pandas.
ARRAY_SAFE = frozenset(
    {
        # linear models
        "LogisticRegression",
        "LinearRegression",
        "Ridge",
        "RidgeClassifier",
        "Lasso",
        "ElasticNet",
        "SGDClassifier",
        "SGDRegressor",
        "Perceptron",
        # trees and ensembles of trees
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
        # (on a uniform numeric schema its frame has no category dtype to read categories from)
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
        # others
        "KNeighborsClassifier",
        "KNeighborsRegressor",
        "GaussianNB",
        "SVC",
        "SVR",
        "LinearSVC",
        "LinearSVR",
        "MLPClassifier",
        "MLPRegressor",
        # transformers, as Pipeline steps
        "StandardScaler",
        "MinMaxScaler",
        "MaxAbsScaler",
        "RobustScaler",
        "PCA",
        "PolynomialFeatures",
    }
)

_NO_NAMES_WARNING = r"X does not have valid feature names"


def _array_safe(estimator: Any) -> bool:
    if estimator is None or (isinstance(estimator, str) and estimator == "passthrough"):
        return True  # a Pipeline step that does nothing
    cls = type(estimator)
    if not cls.__module__.startswith("sklearn."):
        return False
    output = getattr(estimator, "_sklearn_output_config", {}).get("transform", "default")
    if output != "default":  # set_output(transform="pandas"): steps pass frames on
        return False
    if cls.__name__ == "Pipeline":
        return all(_array_safe(step) for _, step in estimator.steps)
    return cls.__name__ in ARRAY_SAFE


def _probe_rows(schema: NumericSchema) -> list[list[Any]]:
    """A few distinct rows of the schema's types, to compare both paths on at load time."""
    rows = []
    for i in range(4):
        rows.append(
            [
                (i + j) % 5 - 2 if integer else ((i + 1) * (j + 2) % 7 - 3) / 4
                for j, integer in enumerate(schema.integer)
            ]
        )
    return rows


def array_predictor(
    estimator: Any, method: str, schema: NumericSchema
) -> Callable[[np.ndarray], Any] | None:
    """``estimator.method`` to call on :meth:`NumericSchema.array` rows, or None.

    Only for the classes in :data:`ARRAY_SAFE` (and Pipelines of them), a uniform schema, and a
    model fitted on exactly the schema's columns in order (or on no names at all). Before it is
    used, both paths score a few probe rows and must agree exactly; if they do not, or either
    fails, the model keeps the DataFrame path.
    """
    import sklearn

    if not schema.uniform or not _array_safe(estimator):
        return None
    if sklearn.get_config().get("transform_output", "default") != "default":
        return None
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and [str(n) for n in names] != list(schema.columns):
        return None
    fn = getattr(estimator, method, None)
    if not callable(fn):
        return None
    rows = _probe_rows(schema)
    try:
        with warnings.catch_warnings():  # e.g. "fitted without feature names": not the point here
            warnings.simplefilter("ignore")
            by_frame, by_array = fn(schema.frame(rows)), fn(schema.array(rows))
        same = bool(np.array_equal(np.asarray(by_frame), np.asarray(by_array)))
    except Exception:  # noqa: BLE001 - any doubt keeps the DataFrame path
        return None
    if not same:
        return None
    # The frame's names were checked against the schema (and the schema against the fitted
    # names above); sklearn would warn on every call that the array has none.
    warnings.filterwarnings("ignore", message=_NO_NAMES_WARNING, category=UserWarning)
    return cast("Callable[[np.ndarray], Any]", fn)


# --------------------------------------------------------------------------- linear models


def _functions(owner: str, *names: str) -> set[Any]:
    """The function objects ``owner.name`` of scikit-learn's linear_model (those that exist)."""
    import importlib

    module_name, _, cls_name = owner.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError):
        return set()
    return {cls.__dict__[n] for n in names if n in cls.__dict__}


def linear_predictor(
    estimator: Any, method: str, schema: NumericSchema
) -> Callable[[np.ndarray], Any] | None:
    """``estimator.predict``'s own arithmetic on :meth:`NumericSchema.array` rows, without its
    per-call input validation; None when the estimator is not such a linear model.

    For a one-row LogisticRegression, scikit-learn 1.9's ``predict`` took 165 us, nearly all of
    it validating the input (array namespaces, dataframe detection, finiteness, feature counts),
    and this 4.6 us: rows that already match the schema need no validation but the finiteness
    check, which is kept (a batch with NaN or infinity is handed to ``predict`` itself, so its
    error is scikit-learn's). Only where the class's ``predict`` and decision function are
    scikit-learn's generic linear ones, whose code this repeats: ``X @ coef_.T + intercept_``,
    then for classifiers the positive score or the largest one picks from ``classes_``. Before
    it is used it must give exactly ``predict``'s answers on 68 rows (see
    :func:`array_predictor`'s probes, and random ones); otherwise, None.
    """
    if method != "predict" or not schema.uniform:
        return None
    cls = type(estimator)
    if not cls.__module__.startswith("sklearn."):
        return None
    coef = getattr(estimator, "coef_", None)
    intercept = getattr(estimator, "intercept_", None)
    if not isinstance(coef, np.ndarray) or coef.ndim not in (1, 2) or coef.dtype.kind != "f":
        return None
    if getattr(estimator, "n_features_in_", None) != len(schema.columns):
        return None
    base = "sklearn.linear_model._base"
    classifier = cls.predict in _functions(f"{base}.LinearClassifierMixin", "predict") and (
        cls.decision_function in _functions(f"{base}.LinearClassifierMixin", "decision_function")
    )
    regressor = cls.predict in (
        _functions(f"{base}.LinearModel", "predict")
        | _functions(f"{base}.MultiOutputLinearModel", "predict")
        | _functions("sklearn.linear_model._ridge.Ridge", "predict")
    ) and getattr(cls, "_decision_function", None) in (
        _functions(f"{base}.LinearModel", "_decision_function")
        | _functions("sklearn.linear_model._coordinate_descent.ElasticNet", "_decision_function")
    )
    if not (classifier or regressor):
        return None
    predict = estimator.predict
    coef_t = coef.T if coef.ndim == 2 else coef
    isfinite = np.isfinite

    if classifier:
        classes = getattr(estimator, "classes_", None)
        if not isinstance(classes, np.ndarray):
            return None

        def linear(x: np.ndarray) -> Any:
            if not isfinite(x).all():
                return predict(x)  # scikit-learn's own error
            scores = x @ coef_t + intercept
            if scores.ndim > 1 and scores.shape[1] == 1:
                scores = scores.reshape(-1)
            if scores.ndim == 1:
                return classes.take((scores > 0).astype(np.intp), axis=0)
            return classes.take(scores.argmax(axis=1), axis=0)

    else:

        def linear(x: np.ndarray) -> Any:
            if not isfinite(x).all():
                return predict(x)
            return x @ coef_t + intercept

    rng = np.random.default_rng(0)
    probes = [*_probe_rows(schema), *(rng.normal(scale=3.0, size=(64, len(schema.columns))))]
    rows = [[float(v) for v in row] for row in probes]
    try:
        x = schema.array(rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = predict(x)
        got = linear(x)
        same = type(got) is type(want) and got.dtype == want.dtype and np.array_equal(got, want)
    except Exception:  # noqa: BLE001 - any doubt keeps scikit-learn's own predict
        return None
    return linear if same else None


def thread_pools(estimator: Any) -> dict[str, Any]:
    """The ``n_jobs`` parameters (nested ones too) that make each predict call start a pool.

    Serving scores small batches one at a time, where a joblib pool per call costs more than it
    saves: a 60-tree forest took ~18 ms for one row with ``n_jobs=2`` and ~3 ms with 1.
    """
    try:
        params = estimator.get_params(deep=True)
    except Exception:  # noqa: BLE001 - not a scikit-learn estimator after all
        return {}
    return {
        k: v
        for k, v in params.items()
        if (k == "n_jobs" or k.endswith("__n_jobs")) and v not in (None, 1)
    }
