"""What the metric gate types share: where a metric's value comes from, how a candidate is
compared with the champion, and which way each metric points."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlgate.keys import Tags
from mlgate.promotion.gates.base import (
    Evidence,
    GateResult,
    GateSpec,
    Needs,
    VersionEvidence,
    fmt,
    result,
    usable,
)
from mlgate.promotion.schema import Boolean, String, problem

#: Metrics whose direction mlgate knows. Anything else needs ``greater_is_better`` in the gate.
GREATER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "balanced_accuracy": True,
    "f1": True,
    "f1_macro": True,
    "f1_micro": True,
    "f1_weighted": True,
    "precision": True,
    "precision_macro": True,
    "recall": True,
    "recall_macro": True,
    "roc_auc": True,
    "auc": True,
    "average_precision": True,
    "r2": True,
    "explained_variance": True,
    "rmse": False,
    "mse": False,
    "mae": False,
    "mape": False,
    "median_absolute_error": False,
    "log_loss": False,
    "loss": False,
    "error_rate": False,
    "brier_score": False,
}

#: The ``metric`` key every metric gate takes.
METRIC = String("metric", required=True)
#: ``greater_is_better``: required for a metric mlgate does not know (see :func:`direction_known`).
DIRECTION = Boolean("greater_is_better")


def direction_known(values: Mapping[str, Any]) -> None:
    """Rule: a comparison needs to know whether a higher value of its metric is better."""
    metric = values["metric"]
    if values.get("greater_is_better") is None and metric not in GREATER_IS_BETTER:
        raise problem(
            "greater_is_better",
            f"mlgate does not know whether higher {metric!r} is better; set true or false",
        )


def greater_is_better(spec: GateSpec) -> bool:
    """The direction of a gate's metric: the gate's setting, else mlgate's table."""
    value = spec.get("greater_is_better")
    if value is not None:
        return bool(value)
    return GREATER_IS_BETTER.get(str(spec.get("metric")), True)


def metric_needs(spec: GateSpec) -> Needs:
    """A metric gate needs its metric for each version (evaluated when data is given)."""
    return Needs(metrics=frozenset({str(spec.get("metric"))}))


def metric_value(ev: Evidence, v: VersionEvidence, metric: str) -> tuple[float | None, str, str]:
    """``(value, where it comes from, why there is none)`` for one version's metric.

    With evaluation data given, only an evaluated value counts: a metric the evaluation could
    not compute is a failure with its reason, never a silent fall-back to the logged number.
    """
    e = ev.evaluation
    if e is not None or v.evaluated or v.evaluation_error:
        if metric in v.evaluated:
            return v.evaluated[metric], f"evaluated on {e.rows if e else '?'} rows", ""
        if v.evaluation_error:
            why = f"evaluation of version {v.version} failed: {v.evaluation_error}"
        elif metric in v.unevaluated:
            why = f"version {v.version}: {v.unevaluated[metric]}"
        else:
            known = ", ".join(sorted(v.evaluated)) or "none"
            task = f" for {e.task}" if e else ""
            why = (
                f"{metric!r} is not a metric mlgate evaluates{task} (evaluated: {known}; "
                "add your own under evaluation.metrics)"
            )
        return None, "", f"{why}; evaluation data was given, so the logged value is not used"
    if metric in v.logged:
        return v.logged[metric], "logged", ""
    return None, "", f"metric {metric!r} was not logged, and no evaluation data was given"


def champion_missing(spec: GateSpec, ev: Evidence, expected: str) -> GateResult | None:
    """The verdict of a comparison gate when there is no champion to compare with, else None.

    An unreadable champion fails; no champion at all (the first promotion) passes, explicitly.
    """
    if ev.champion_error:
        return result(spec, False, None, expected, f"champion unreadable: {ev.champion_error}")
    if ev.champion is None:
        return result(
            spec,
            True,
            None,
            expected,
            f"no {ev.champion_alias} yet: first promotion, nothing to compare",
        )
    return None


def too_few_rows(ev: Evidence) -> str | None:
    """Why a comparison on this evidence would rest on too few rows, else None."""
    e = ev.evaluation
    if e is not None:
        if e.rows < e.min_rows:
            return (
                f"the evaluation data has {e.rows} row{'s' if e.rows != 1 else ''}; a comparison "
                f"with the champion needs at least {e.min_rows} (evaluation.min_rows)"
            )
        return None
    assert ev.champion is not None
    for who, v in (("candidate", ev.candidate), (f"champion v{ev.champion.version}", ev.champion)):
        rows = v.tags.get(Tags.data("eval", "rows"))
        if rows is not None and rows.isdigit() and int(rows) < ev.min_rows:
            return (
                f"the {who}'s logged metrics come from {rows} evaluation rows; a comparison "
                f"needs at least {ev.min_rows} (evaluation.min_rows)"
            )
    return None


def _pair(ev: Evidence, metric: str) -> tuple[float | None, float | None, str, str | None]:
    """(candidate, champion, source, failure reason) for a like-for-like comparison."""
    champ = ev.champion
    assert champ is not None
    evaluated = [ev.candidate.evaluated, champ.evaluated]
    errors = [ev.candidate.evaluation_error, champ.evaluation_error]
    if ev.evaluation is not None or any(evaluated) or any(errors):
        cand, _, why_cand = metric_value(ev, ev.candidate, metric)
        cham, _, why_champ = metric_value(ev, champ, metric)
        if cand is None or cham is None:
            return None, None, "", why_cand or why_champ
        e = ev.evaluation
        where = f"{e.rows} rows of {e.fingerprint[:19]}…" if e else "the same rows"
        return cand, cham, f"both evaluated on {where}", None
    cand, cham = ev.candidate.logged.get(metric), champ.logged.get(metric)
    if cand is None or cham is None:
        who = "candidate" if cand is None else f"champion (version {champ.version})"
        return None, None, "", f"metric {metric!r} is not recorded for the {who}"
    fa, fb = ev.candidate.logged_eval_fingerprint, champ.logged_eval_fingerprint
    if fa is None or fb is None:
        who = "candidate" if fa is None else f"champion (version {champ.version})"
        why = (
            f"the {who} has no recorded evaluation-data fingerprint, so its logged {metric} "
            "cannot be compared like for like; give evaluation data to score both on the same "
            "rows"
        )
        return None, None, "", why
    if fa != fb:
        why = (
            f"logged metrics come from different evaluation data (candidate {fa[:19]}…, "
            f"champion {fb[:19]}…); refusing to compare; give evaluation data to score both on "
            "the same rows"
        )
        return None, None, "", why
    return cand, cham, f"both logged, same evaluation data {fa[:19]}…", None


def versus_champion(spec: GateSpec, ev: Evidence, *, amount: float, expected: str) -> GateResult:
    """The candidate's gain over the champion on the gate's metric must be at least ``amount``
    (negative: a loss of at most that much), absolute or, with ``relative``, as a fraction of
    the champion's value; the gain is oriented so that positive is better."""
    metric = str(spec.get("metric"))
    relative = bool(spec.get("relative", False))
    settled = champion_missing(spec, ev, expected)
    if settled is not None or ev.champion is None:
        return settled or result(spec, False, None, expected, "no champion")
    too_few = too_few_rows(ev)
    if too_few:
        return result(spec, False, None, expected, too_few)
    cand, champ, source, why = _pair(ev, metric)
    if why:
        return result(spec, False, None, expected, why)
    pair = {"candidate": cand, "champion": champ}
    if not usable(cand) or not usable(champ):
        why = f"{metric} is not a finite number (candidate {cand}, champion {champ})"
        return result(spec, False, pair, expected, why)
    assert cand is not None and champ is not None
    gain = (cand - champ) if greater_is_better(spec) else (champ - cand)
    if relative:
        if champ == 0:
            why = "relative change from a champion value of 0 is undefined"
            return result(spec, False, pair, expected, why)
        gain = gain / abs(champ)
    ok = gain >= amount - 1e-12
    observed = {**pair, "improvement": gain}
    return result(
        spec, ok, observed, expected, _compared(metric, cand, champ, ev, gain, relative, source)
    )


def _compared(
    metric: str, cand: float, champ: float, ev: Evidence, gain: float, relative: bool, source: str
) -> str:
    """``accuracy 0.81 is worse than champion v1 (0.95) by 0.14; ...``: the size of a change is
    never negative, the words say its direction (whichever way the metric points)."""
    assert ev.champion is not None
    versus = f"champion v{ev.champion.version} ({fmt(champ)})"
    size = f"{abs(gain) * 100:.4g}% (relative)" if relative else fmt(abs(gain))
    if gain > 0:
        what = f"is better than {versus} by {size}"
    elif gain < 0:
        what = f"is worse than {versus} by {size}"
    else:
        what = f"equals {versus}"
    return f"{metric} {fmt(cand)} {what}; {source}"
