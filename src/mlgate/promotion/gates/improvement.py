"""``improvement``: the candidate must beat the champion by at least ``min_improvement``."""

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
    amount = float(spec.get("min_improvement", 0.0))
    how = " (relative)" if spec.get("relative") else ""
    expected = f"{spec.get('metric')} better than champion by at least {fmt(amount)}{how}"
    return versus_champion(spec, ev, amount=amount, expected=expected)


GATE = Gate(
    type="improvement",
    schema=Schema(
        (METRIC, Number("min_improvement", 0.0), Boolean("relative", False), DIRECTION),
        rules=(direction_known,),
    ),
    check=check,
    needs=metric_needs,
)
