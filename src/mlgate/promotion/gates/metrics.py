"""Metric gates: absolute thresholds, comparison with the champion, paired bootstrap."""

from __future__ import annotations

from mlgate.lineage import Tags
from mlgate.promotion.gates import Evidence, GateResult, VersionEvidence, fmt, result, usable
from mlgate.promotion.policy import GateSpec, greater_is_better


def _value(ev: Evidence, v: VersionEvidence, metric: str) -> tuple[float | None, str, str]:
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


def threshold(spec: GateSpec, ev: Evidence) -> GateResult:
    """``min <= metric <= max`` on the candidate."""
    metric = str(spec.get("metric"))
    lo, hi = spec.get("min"), spec.get("max")
    parts = ([f">= {fmt(lo)}"] if lo is not None else []) + (
        [f"<= {fmt(hi)}"] if hi is not None else []
    )
    expected = f"{metric} " + " and ".join(parts)
    value, source, why = _value(ev, ev.candidate, metric)
    if value is None:
        return result(spec, False, None, expected, why)
    if not usable(value):
        return result(spec, False, value, expected, f"{metric} is {value}: not a finite number")
    ok = (lo is None or value >= lo) and (hi is None or value <= hi)
    verdict = "within" if ok else "outside"
    return result(
        spec, ok, value, expected, f"{metric} = {fmt(value)} ({source}), {verdict} bounds"
    )


def _too_few_rows(ev: Evidence) -> str | None:
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
        cand, _, why_cand = _value(ev, ev.candidate, metric)
        cham, _, why_champ = _value(ev, champ, metric)
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
        return (
            None,
            None,
            "",
            (
                f"the {who} has no recorded evaluation-data fingerprint, so its logged {metric} cannot "
                "be compared like for like; give evaluation data to score both on the same rows"
            ),
        )
    if fa != fb:
        return (
            None,
            None,
            "",
            (
                f"logged metrics come from different evaluation data (candidate {fa[:19]}…, champion "
                f"{fb[:19]}…); refusing to compare; give evaluation data to score both on the same rows"
            ),
        )
    return cand, cham, f"both logged, same evaluation data {fa[:19]}…", None


def versus_champion(spec: GateSpec, ev: Evidence) -> GateResult:
    """``no_regression``: candidate may be worse by at most ``tolerance``.
    ``improvement``: candidate must be better by at least ``min_improvement``.
    Both absolute, or relative to the champion's value with ``relative = true``."""
    metric = str(spec.get("metric"))
    gib = greater_is_better(spec)
    relative = bool(spec.get("relative", False))
    if spec.type == "no_regression":
        amount = -float(spec.get("tolerance", 0.0))
        expected = f"{metric} no worse than champion by more than {fmt(-amount)}{' (relative)' if relative else ''}"
    else:
        amount = float(spec.get("min_improvement", 0.0))
        expected = f"{metric} better than champion by at least {fmt(amount)}{' (relative)' if relative else ''}"
    settled = champion_missing(spec, ev, expected)
    if settled is not None or ev.champion is None:
        return settled or result(spec, False, None, expected, "no champion")
    too_few = _too_few_rows(ev)
    if too_few:
        return result(spec, False, None, expected, too_few)
    cand, champ, source, problem = _pair(ev, metric)
    if problem:
        return result(spec, False, None, expected, problem)
    if not usable(cand) or not usable(champ):
        return result(
            spec,
            False,
            {"candidate": cand, "champion": champ},
            expected,
            f"{metric} is not a finite number (candidate {cand}, champion {champ})",
        )
    assert cand is not None and champ is not None
    gain = (cand - champ) if gib else (champ - cand)
    if relative:
        if champ == 0:
            return result(
                spec,
                False,
                {"candidate": cand, "champion": champ},
                expected,
                "relative change from a champion value of 0 is undefined",
            )
        gain = gain / abs(champ)
    ok = gain >= amount - 1e-12
    observed = {"candidate": cand, "champion": champ, "improvement": gain}
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


def bootstrap(spec: GateSpec, ev: Evidence) -> GateResult:
    """The improvement over the champion must hold at the stated confidence (paired bootstrap)."""
    from mlgate.promotion.measures import metrics_for, paired_bootstrap

    metric = str(spec.get("metric"))
    conf = float(spec.get("confidence", 0.95))
    floor = float(spec.get("min_improvement", 0.0))
    expected = f"{conf:.0%} interval of {metric} improvement entirely above {fmt(floor)}"
    settled = champion_missing(spec, ev, expected)
    if settled is not None or ev.champion is None:
        return settled or result(spec, False, None, expected, "no champion")
    e = ev.evaluation
    too_few = _too_few_rows(ev) if e is not None else None
    if too_few:
        return result(spec, False, None, expected, too_few)
    if e is None:
        return result(
            spec,
            False,
            None,
            expected,
            "a bootstrap gate needs evaluation data (rows to resample); set evaluation.data "
            "in the policy or pass eval data",
        )
    if metric not in metrics_for(e.task):
        return result(
            spec,
            False,
            None,
            expected,
            f"{metric!r} cannot be bootstrapped for {e.task}; use one of "
            f"{', '.join(sorted(metrics_for(e.task)))}",
        )
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
