"""``no_regression``: the candidate may be worse than the champion by at most ``tolerance``."""

from __future__ import annotations

from mlgate.promotion.gates.base import Evidence, Gate, GateResult, GateSpec, fmt
from mlgate.promotion.gates.common import (
    DIRECTION,
    METRIC,
    direction_known,
    metric_needs,
    versus_champion,
)
from mlgate.promotion.schema import Boolean, Number, Schema


def check(spec: GateSpec, ev: Evidence) -> GateResult:
    """Absolute, or relative to the champion's value with ``relative = true``."""
    tolerance = float(spec.get("tolerance", 0.0))
    how = " (relative)" if spec.get("relative") else ""
    expected = f"{spec.get('metric')} no worse than champion by more than {fmt(tolerance)}{how}"
    return versus_champion(spec, ev, amount=-tolerance, expected=expected)


GATE = Gate(
    type="no_regression",
    schema=Schema(
        (
            METRIC,
            Number("tolerance", 0.0, test=lambda v: v >= 0, rule="zero or more"),
            Boolean("relative", False),
            DIRECTION,
        ),
        rules=(direction_known,),
    ),
    check=check,
    needs=metric_needs,
)
