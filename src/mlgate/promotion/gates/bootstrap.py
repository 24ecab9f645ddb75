"""``bootstrap``: the improvement over the champion must hold at the stated confidence.

Both versions' predictions on the same evaluation rows are resampled together (a paired
bootstrap, :func:`mlgate.promotion.measures.paired_bootstrap`); the lower end of the interval
of the improvement must be above ``min_improvement``.
"""

from __future__ import annotations

from mlgate.promotion.gates.base import Evidence, Gate, GateResult, GateSpec, fmt, result
from mlgate.promotion.gates.common import (
    DIRECTION,
    METRIC,
    champion_missing,
    direction_known,
    greater_is_better,
    metric_needs,
    too_few_rows,
)
from mlgate.promotion.schema import Integer, Number, Schema


def _refusal(spec: GateSpec, ev: Evidence) -> str | None:
    """Why this evidence cannot be bootstrapped, else None (a champion exists)."""
    from mlgate.promotion.measures import metrics_for

    e = ev.evaluation
    too_few = too_few_rows(ev) if e is not None else None
    if too_few:
        return too_few
    if e is None:
        return (
            "a bootstrap gate needs evaluation data (rows to resample); set evaluation.data "
            "in the policy or pass eval data"
        )
    metric = str(spec.get("metric"))
    if metric not in metrics_for(e.task):
        return (
            f"{metric!r} cannot be bootstrapped for {e.task}; use one of "
            f"{', '.join(sorted(metrics_for(e.task)))}"
        )
    return None


def check(spec: GateSpec, ev: Evidence) -> GateResult:
    """The paired-bootstrap interval of the improvement lies entirely above the floor."""
    from mlgate.promotion.measures import paired_bootstrap

    metric = str(spec.get("metric"))
    conf = float(spec.get("confidence", 0.95))
    floor = float(spec.get("min_improvement", 0.0))
    expected = f"{conf:.0%} interval of {metric} improvement entirely above {fmt(floor)}"
    settled = champion_missing(spec, ev, expected)
    if settled is not None or ev.champion is None:
        return settled or result(spec, False, None, expected, "no champion")
    refused = _refusal(spec, ev)
    if refused or ev.evaluation is None:
        return result(spec, False, None, expected, refused or "no evaluation")
    e = ev.evaluation
    cand = e.predictions.get(ev.candidate.version)
    champ = e.predictions.get(ev.champion.version)
    if cand is None or champ is None:
        err = ev.candidate.evaluation_error or ev.champion.evaluation_error or "no predictions"
        return result(spec, False, None, expected, f"like-for-like evaluation failed: {err}")
    b = paired_bootstrap(
        e.task,
        metric,
        e.y_true,
        cand,
        champ,
        greater_is_better=greater_is_better(spec),
        confidence=conf,
        samples=int(spec.get("samples", 1000)),
        seed=int(spec.get("seed", 0)),
    )
    ok = b.lower > floor
    observed = {
        "improvement": b.observed,
        "lower": b.lower,
        "upper": b.upper,
        "rows": b.rows,
        "samples": b.samples,
    }
    reason = (
        f"{metric} improvement {fmt(b.observed)} (evaluated), {conf:.0%} interval "
        f"[{fmt(b.lower)}, {fmt(b.upper)}] over {b.rows} rows x {b.samples} resamples"
        f"{'' if ok else f' reaches {fmt(floor)} or below'}"
    )
    return result(spec, ok, observed, expected, reason)


GATE = Gate(
    type="bootstrap",
    schema=Schema(
        (
            METRIC,
            Number("confidence", 0.95, test=lambda v: 0.5 <= v < 1, rule="in [0.5, 1)"),
            Integer("samples", 1000, minimum=100),
            Integer("seed", 0, minimum=0),
            Number("min_improvement", 0.0),
            DIRECTION,
        ),
        rules=(direction_known,),
    ),
    check=check,
    needs=metric_needs,
)
