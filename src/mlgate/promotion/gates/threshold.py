"""``metric``: the candidate's metric within absolute bounds (``min``, ``max`` or both)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlgate.promotion.gates.base import Evidence, Gate, GateResult, GateSpec, fmt, result, usable
from mlgate.promotion.gates.common import METRIC, metric_needs, metric_value
from mlgate.promotion.schema import Number, Schema, problem


def _bounds(values: Mapping[str, Any]) -> None:
    lo, hi = values["min"], values["max"]
    if lo is None and hi is None:
        raise problem("", "a metric gate needs min, max or both")
    if lo is not None and hi is not None and lo > hi:
        raise problem("min", f"min ({lo}) is greater than max ({hi}): no value can pass")


def check(spec: GateSpec, ev: Evidence) -> GateResult:
    """``min <= metric <= max`` on the candidate (inclusive)."""
    metric = str(spec.get("metric"))
    lo, hi = spec.get("min"), spec.get("max")
    parts = ([f">= {fmt(lo)}"] if lo is not None else []) + (
        [f"<= {fmt(hi)}"] if hi is not None else []
    )
    expected = f"{metric} " + " and ".join(parts)
    value, source, why = metric_value(ev, ev.candidate, metric)
    if value is None:
        return result(spec, False, None, expected, why)
    if not usable(value):
        return result(spec, False, value, expected, f"{metric} is {value}: not a finite number")
    ok = (lo is None or value >= lo) and (hi is None or value <= hi)
    verdict = "within" if ok else "outside"
    return result(
        spec, ok, value, expected, f"{metric} = {fmt(value)} ({source}), {verdict} bounds"
    )


GATE = Gate(
    type="metric",
    schema=Schema((METRIC, Number("min"), Number("max")), rules=(_bounds,)),
    check=check,
    needs=metric_needs,
)
