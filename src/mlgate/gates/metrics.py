"""Metric gates: absolute thresholds, comparison with the champion, paired bootstrap."""

from __future__ import annotations

from mlgate.gates import Evidence, GateResult, VersionEvidence, fmt, result, usable
from mlgate.policy import GateSpec, greater_is_better


def _value(v: VersionEvidence, metric: str) -> tuple[float | None, str]:
    """A metric from like-for-like evaluation when computed there, else the logged one."""
    if metric in v.evaluated:
        return v.evaluated[metric], "evaluation"
    if metric in v.logged:
        return v.logged[metric], "logged"
    return None, "missing"


def champion_missing(spec: GateSpec, ev: Evidence, expected: str) -> GateResult | None:
    """The verdict of a comparison gate when there is no champion to compare with, else None.

    An unreadable champion fails; no champion at all (the first promotion) passes, explicitly.
    """
    if ev.champion_error:
        return result(spec, False, None, expected, f"champion unreadable: {ev.champion_error}")
    if ev.champion is None:
        return result(spec, True, None, expected,
                      f"no {ev.champion_alias} yet: first promotion, nothing to compare")  # fmt: skip
    return None


def threshold(spec: GateSpec, ev: Evidence) -> GateResult:
    """``min <= metric <= max`` on the candidate."""
    metric = str(spec.get("metric"))
    lo, hi = spec.get("min"), spec.get("max")
    parts = ([f">= {fmt(lo)}"] if lo is not None else []) + (
        [f"<= {fmt(hi)}"] if hi is not None else []
    )
    expected = f"{metric} " + " and ".join(parts)
    if ev.candidate.evaluation_error and metric not in ev.candidate.logged:
        return result(spec, False, None, expected,
                      f"evaluation of the candidate failed: {ev.candidate.evaluation_error}")  # fmt: skip
    if ev.candidate.evaluation_error:
        return result(spec, False, None, expected,
                      f"evaluation data was given but scoring the candidate failed "
                      f"({ev.candidate.evaluation_error}); refusing to fall back to logged metrics")  # fmt: skip
    value, source = _value(ev.candidate, metric)
    if value is None:
        return result(
            spec, False, None, expected, f"metric {metric!r} was not recorded or computed"
        )
    if not usable(value):
        return result(spec, False, value, expected, f"{metric} is {value}: not a finite number")
    ok = (lo is None or value >= lo) and (hi is None or value <= hi)
    verdict = "within" if ok else "outside"
    return result(
        spec, ok, value, expected, f"{metric} = {fmt(value)} ({source}), {verdict} bounds"
    )


def _pair(ev: Evidence, metric: str) -> tuple[float | None, float | None, str, str | None]:
    """(candidate, champion, source, failure reason) for a like-for-like comparison."""
    champ = ev.champion
    assert champ is not None
    if metric in ev.candidate.evaluated and metric in champ.evaluated:
        fp = ev.evaluation.fingerprint if ev.evaluation else "?"
        return (
            ev.candidate.evaluated[metric],
            champ.evaluated[metric],
            f"evaluated on {fp[:19]}…",
            None,
        )
    if ev.candidate.evaluation_error or champ.evaluation_error:
        err = ev.candidate.evaluation_error or champ.evaluation_error
        return None, None, "", f"like-for-like evaluation failed: {err}"
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
    return cand, cham, f"logged, same evaluation data {fa[:19]}…", None


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
    cand, champ, source, problem = _pair(ev, metric)
    if problem:
        return result(spec, False, None, expected, problem)
    if not usable(cand) or not usable(champ):
        return result(spec, False, {"candidate": cand, "champion": champ}, expected,
                      f"{metric} is not a finite number (candidate {cand}, champion {champ})")  # fmt: skip
    assert cand is not None and champ is not None
    gain = (cand - champ) if gib else (champ - cand)
    if relative:
        if champ == 0:
            return result(spec, False, {"candidate": cand, "champion": champ}, expected,
                          "relative change from a champion value of 0 is undefined")  # fmt: skip
        gain = gain / abs(champ)
    ok = gain >= amount - 1e-12
    observed = {"candidate": cand, "champion": champ, "improvement": gain}
    word = "improves on" if gain > 0 else "matches" if gain == 0 else "is worse than"
    reason = (f"{metric} {fmt(cand)} {word} champion v{ev.champion.version} ({fmt(champ)}) "
              f"by {fmt(gain)}{' relative' if relative else ''}; {source}")  # fmt: skip
    return result(spec, ok, observed, expected, reason)


def bootstrap(spec: GateSpec, ev: Evidence) -> GateResult:
    """The improvement over the champion must hold at the stated confidence (paired bootstrap)."""
    from mlgate.scoring import metrics_for, paired_bootstrap

    metric = str(spec.get("metric"))
    conf = float(spec.get("confidence", 0.95))
    floor = float(spec.get("min_improvement", 0.0))
    expected = f"{conf:.0%} interval of {metric} improvement entirely above {fmt(floor)}"
    settled = champion_missing(spec, ev, expected)
    if settled is not None or ev.champion is None:
        return settled or result(spec, False, None, expected, "no champion")
    e = ev.evaluation
    if e is None:
        return result(spec, False, None, expected,
                      "a bootstrap gate needs evaluation data (rows to resample); set evaluation.data "
                      "in the policy or pass eval data")  # fmt: skip
    if metric not in metrics_for(e.task):
        return result(spec, False, None, expected,
                      f"{metric!r} cannot be bootstrapped for {e.task}; use one of "
                      f"{', '.join(sorted(metrics_for(e.task)))}")  # fmt: skip
    cand = e.predictions.get(ev.candidate.version)
    champ = e.predictions.get(ev.champion.version)
    if cand is None or champ is None:
        err = ev.candidate.evaluation_error or ev.champion.evaluation_error or "no predictions"
        return result(spec, False, None, expected, f"like-for-like evaluation failed: {err}")
    b = paired_bootstrap(
        e.task, metric, e.y_true, cand, champ,
        greater_is_better=greater_is_better(spec), confidence=conf,
        samples=int(spec.get("samples", 1000)), seed=int(spec.get("seed", 0)),
    )  # fmt: skip
    ok = b.lower > floor
    observed = {"improvement": b.observed, "lower": b.lower, "upper": b.upper, "rows": b.rows,
                "samples": b.samples}  # fmt: skip
    reason = (f"{metric} improvement {fmt(b.observed)}, {conf:.0%} interval "
              f"[{fmt(b.lower)}, {fmt(b.upper)}] over {b.rows} rows x {b.samples} resamples"
              f"{'' if ok else f' reaches {fmt(floor)} or below'}")  # fmt: skip
    return result(spec, ok, observed, expected, reason)
