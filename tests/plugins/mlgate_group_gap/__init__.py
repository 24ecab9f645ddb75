"""A third-party gate type, shipped the way a plug-in would be: ``group_gap``, the gap between
one metric measured on two groups (say recall on two customer segments) must stay small.

The tests copy this package into a temporary directory next to a ``.dist-info`` whose
``entry_points.txt`` registers it under ``mlgate.gates``, as ``pip install`` would have.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlgate.promotion.gates import (
    Evidence,
    Gate,
    GateResult,
    GateSpec,
    Needs,
    Number,
    Schema,
    String,
    fmt,
    metric_value,
    problem,
    result,
    usable,
)


def _two_metrics(values: Mapping[str, Any]) -> None:
    if values["metric_a"] == values["metric_b"]:
        raise problem("metric_b", "must differ from metric_a")


def needs(spec: GateSpec) -> Needs:
    """Both groups' metric, evaluated when evaluation data is given, else as logged."""
    return Needs(metrics=frozenset({str(spec.get("metric_a")), str(spec.get("metric_b"))}))


def check(spec: GateSpec, ev: Evidence) -> GateResult:
    """``|metric_a - metric_b| <= max_gap`` on the candidate; a missing or NaN value fails."""
    names = str(spec.get("metric_a")), str(spec.get("metric_b"))
    limit = float(spec.get("max_gap"))
    expected = f"|{names[0]} - {names[1]}| <= {fmt(limit)}"
    (a, _, why_a), (b, _, why_b) = (metric_value(ev, ev.candidate, n) for n in names)
    if not usable(a) or not usable(b):
        why = why_a or why_b or f"{names[0]} = {a}, {names[1]} = {b}: not finite numbers"
        return result(spec, False, None, expected, why)
    assert a is not None and b is not None
    gap = abs(a - b)
    words = "within" if gap <= limit else "over"
    why = f"gap between {names[0]} and {names[1]} is {fmt(gap)}, {words} {fmt(limit)}"
    return result(spec, gap <= limit, gap, expected, why)


GATE = Gate(
    type="group_gap",
    schema=Schema(
        (
            String("metric_a", required=True),
            String("metric_b", required=True),
            Number("max_gap", required=True, test=lambda v: v >= 0, rule="zero or more"),
        ),
        rules=(_two_metrics,),
    ),
    check=check,
    needs=needs,
)

#: Broken registrations the tests point entry points at: not a Gate, a Gate of another name,
#: and a Gate whose check does not return a GateResult.
not_a_gate = check
MISNAMED = Gate(type="something_else", schema=Schema(()), check=check)


def _says_yes(spec: GateSpec, ev: Evidence) -> Any:
    return "yes"


LIAR = Gate(type="gap_liar", schema=Schema(()), check=_says_yes)
