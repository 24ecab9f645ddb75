"""The pyfunc protocol: loading models and MLflow's scoring request format.

mlgate's server speaks MLflow's scoring protocol by using MLflow's own parsers, so every input
format (dataframe_split, dataframe_records, instances, inputs, CSV) behaves exactly as in
`mlflow models serve`, and clients need no change.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgate.errors import (
    ScoringInputError,
)
from mlgate.registry._translate import _calling


def load_local_pyfunc(path: str) -> Any:
    """Load a pyfunc model from a local directory (or any URI the current store resolves)."""
    import mlflow.pyfunc

    with _calling(f"loading {path} as pyfunc"):
        return mlflow.pyfunc.load_model(path)


def parse_scoring_request(body: bytes, content_type: str, model: Any) -> tuple[Any, Any]:
    """Parse a /invocations body into ``(data, params)`` as MLflow's scoring server would."""
    from io import StringIO

    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server as ss

    mime = content_type.split(";")[0].strip().lower()
    schema = model.metadata.get_input_schema()
    try:
        if mime == ss.CONTENT_TYPE_JSON:
            parse = ss._parse_json_data
            parsed = parse(body, model.metadata, schema)  # type: ignore[no-untyped-call]
            return parsed.data, parsed.params
        if mime == ss.CONTENT_TYPE_CSV:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ScoringInputError(f"CSV body is not valid UTF-8: {exc}") from None
            return ss.parse_csv_input(StringIO(text), schema=schema), None
    except MlflowException as exc:
        raise ScoringInputError(_parse_cause(exc.message, body)) from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ScoringInputError(f"cannot parse the request: {type(exc).__name__}: {exc}") from None
    except RecursionError:
        raise ScoringInputError("cannot parse the request: it is nested too deeply") from None
    raise ScoringInputError(
        f"unsupported content type {mime!r}; use application/json or text/csv", status=415
    )


_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def _parse_cause(message: str, body: bytes) -> str:
    """MLflow's parse error in one line; for a JSON object with no input format, the fields it
    has (MLflow's message lists only the ones it kept, so always ``[]``)."""
    import json

    if message.startswith("The input must be a JSON dictionary with exactly one of"):
        try:
            fields = list(json.loads(body))
        except (ValueError, TypeError, RecursionError):
            fields = None
        if fields is not None:
            return (
                f"the request must be a JSON object with exactly one of the input fields "
                f"{', '.join(_FORMATS)}; it has input fields: {fields}"
            )
    return one_line(message)


def one_line(text: str, limit: int = 500) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis says where it was cut)."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def schema_cause(message: str) -> str:
    """What MLflow's schema enforcement says was wrong, without its printout of the frame.

    MLflow writes ``Failed to enforce schema of data '<the frame, many lines>' with schema
    '<schema>'. Error: <the cause>``: the cause ("Model is missing inputs ['x7']",
    "Incompatible input types for column n. Can not safely convert float64 to int64.") is the
    part a client needs, and the only one mlgate answers.
    """
    text = message or ""
    if text.startswith("Failed to enforce schema"):
        at = text.find("' with schema '")
        cut = text.find("'. Error: ", at if at >= 0 else 0)
        if cut >= 0:
            text = text[cut + len("'. Error: ") :]
    return one_line(text)


def _no_rows(data: Any) -> bool:
    try:
        return len(data) == 0
    except TypeError:
        return False


@contextlib.contextmanager
def scoring_errors(data: Any = None) -> Iterator[None]:
    """Schema or input problems raised while scoring ``data`` become
    :class:`ScoringInputError`, each in one line that says what was wrong."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        why = "the request has no rows" if _no_rows(data) else schema_cause(exc.message)
        raise ScoringInputError(f"the model rejected the input: {why}") from None
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ScoringInputError(
            f"the model could not score the input: {type(exc).__name__}: {one_line(str(exc))}"
        ) from None


def predict(model: Any, data: Any, params: Any = None) -> Any:
    """Run a pyfunc model; schema or input problems become :class:`ScoringInputError`."""
    with scoring_errors(data):
        if params:
            return model.predict(data, params=params)
        return model.predict(data)


@dataclass(frozen=True)
class SklearnModel:
    """The fitted estimator behind a scikit-learn flavor pyfunc, and the method it predicts with
    (``predict``, or the ``pyfunc_predict_fn`` it was logged with, e.g. ``predict_proba``)."""

    estimator: Any
    method: str

    def bound(self) -> Callable[[Any], Any]:
        return getattr(self.estimator, self.method)  # type: ignore[no-any-return]


def sklearn_model(model: Any) -> SklearnModel | None:
    """The estimator a sklearn-flavor pyfunc ends in, when its ``predict`` does nothing else.

    ``PyFuncModel.predict`` enforces the signature on every call: for six double columns that
    costs about 0.35 ms whatever the row count (half the cost of a small batch), and for a frame
    whose columns and dtypes already are the schema's (what mlgate's fast path builds) it returns
    an equal frame. For the sklearn flavor nothing else in ``predict`` reaches the model (the
    prediction context serves tracing of GenAI flavors), so calling the estimator's method on
    such a frame gives the same predictions without the second check. Other flavors, signatures
    from type hints, params schemas and models without an input schema get None.
    """
    try:
        meta = model.metadata
        if (
            getattr(model, "loader_module", None) != "mlflow.sklearn"
            or meta.get_input_schema() is None
            or meta.get_params_schema() is not None
            or meta._is_signature_from_type_hint()
            or meta._is_type_hint_from_example()
        ):
            return None
        estimator = model._model_impl.sklearn_model
        method = model._predict_fn.__name__
    except AttributeError:  # another MLflow version's PyFuncModel: take the public path
        return None
    if not callable(getattr(estimator, method, None)):
        return None
    return SklearnModel(estimator, method)


def load_for_evaluation(path: str) -> tuple[Any, Any | None]:
    """Load a model directory already on disk to score it: ``(pyfunc model, estimator)``.

    ``estimator`` is the fitted scikit-learn object behind a sklearn-flavor model (for
    ``is_classifier``/``is_regressor`` and ``predict_proba``), None for any other flavor.
    MLflow's own comparison of the model's pip requirements with this environment is skipped:
    it scans every installed distribution (about 0.3 s per process, measured) only to log a
    warning; :func:`requirement_mismatches` reports the same pins in milliseconds.
    """
    import mlflow.pyfunc

    with _calling(f"loading {path} as pyfunc"):
        model = mlflow.pyfunc.load_model(path, suppress_warnings=True)
    estimator = None
    if getattr(model, "loader_module", None) == "mlflow.sklearn":
        estimator = getattr(getattr(model, "_model_impl", None), "sklearn_model", None)
    return model, estimator


def missing_inputs(model: Any, columns: Any) -> list[str]:
    """The named, required inputs of ``model``'s signature that ``columns`` lacks (none for a
    model without a column signature)."""
    try:
        schema = model.metadata.get_input_schema()
    except AttributeError:
        return []
    if schema is None or not schema.has_input_names() or schema.is_tensor_spec():
        return []
    have = {str(c) for c in columns}
    return [
        str(spec.name)
        for spec in schema.inputs
        if getattr(spec, "required", True) and str(spec.name) not in have
    ]


def canonical_name(name: str) -> str:
    """A distribution name as PEP 503 compares them (``Scikit_Learn`` -> ``scikit-learn``)."""
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1)
def _dist_info_versions() -> dict[str, str]:
    # A wheel installs ``{name}-{version}.dist-info``: the directory names alone give every
    # installed version, without reading one METADATA file. The first on sys.path wins, as
    # for importlib.metadata. Read once per process: a package upgraded while it runs keeps
    # the version this process imported, which is the one its code runs.
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = [p.name for p in Path(entry or ".").iterdir()]
        except OSError:
            continue
        for n in names:
            if n.endswith(".dist-info"):
                name, sep, version = n[: -len(".dist-info")].partition("-")
                if sep:
                    found.setdefault(canonical_name(name), version)
    return found


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name`` (None when it is not installed)."""
    import importlib.metadata as md

    quick = _dist_info_versions().get(canonical_name(name))
    if quick is not None:
        return quick
    try:  # installed some other way (an .egg-info, a path entry this process added later)
        return md.version(name)
    except (md.PackageNotFoundError, ValueError):
        return None


def requirement_mismatches(path: str) -> list[str]:
    """``name==version`` pins in the model's requirements.txt that this environment does not
    have installed at that version, as ``"name: model wants V, installed W"``."""
    import re

    try:
        lines = (Path(path) / "requirements.txt").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out: list[str] = []
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+)", line)
        if not m:
            continue
        name, wanted = m.group(1), m.group(3)
        have = installed_version(name) or "not installed"
        if have != wanted:
            out.append(f"{name}: model wants {wanted}, installed {have}")
    return out


def predictions_json(predictions: Any) -> str:
    """``{"predictions": ...}`` exactly as MLflow's scoring server writes it."""
    from io import StringIO

    from mlflow.pyfunc import scoring_server as ss

    out = StringIO()
    ss.predictions_to_json(predictions, out)  # type: ignore[no-untyped-call]
    return out.getvalue()
