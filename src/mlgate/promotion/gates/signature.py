"""``signature``: the candidate must accept every input the champion accepted."""

from __future__ import annotations

from mlgate.promotion.gates.base import Column, Evidence, Gate, GateResult, GateSpec, Needs, result
from mlgate.promotion.schema import Boolean, Schema

# Types a column may widen to without breaking callers that send the narrower type.
_WIDENS = {
    ("integer", "long"),
    ("integer", "double"),
    ("long", "double"),
    ("float", "double"),
    ("integer", "float"),
}


def check(spec: GateSpec, ev: Evidence) -> GateResult:
    """A removed or retyped champion column, or a new *required* column, is breaking."""
    allow_missing = bool(spec.get("allow_missing", False))
    expected = "candidate inputs accept every input the champion accepts"
    cand = ev.candidate.signature
    if cand is None:
        why = ev.candidate.signature_error or "the candidate was logged without a signature"
        return result(
            spec,
            allow_missing,
            None,
            expected,
            why + ("; allowed by allow_missing" if allow_missing else ""),
        )
    if ev.champion_error:
        return result(spec, False, None, expected, f"champion unreadable: {ev.champion_error}")
    if ev.champion is None:
        return result(
            spec,
            True,
            _cols(cand),
            expected,
            f"no {ev.champion_alias} yet: first promotion, nothing to be compatible with",
        )
    champ = ev.champion.signature
    if champ is None:
        why = ev.champion.signature_error or f"champion v{ev.champion.version} has no signature"
        return result(
            spec,
            allow_missing,
            None,
            expected,
            why + ("; allowed by allow_missing" if allow_missing else ""),
        )
    by_name = {c.name: c for c in cand}
    old = {c.name: c for c in champ}
    breaks: list[str] = []
    for c in champ:
        new = by_name.get(c.name)
        if new is None:
            if c.required:
                breaks.append(f"required column {c.name!r} ({c.type}) was removed")
        elif new.type != c.type and (c.type, new.type) not in _WIDENS:
            breaks.append(f"column {c.name!r} changed type {c.type} -> {new.type}")
    for c in cand:
        if c.name not in old and c.required:
            breaks.append(f"new column {c.name!r} is required; champion callers do not send it")
    observed = {"candidate": _cols(cand), "champion": _cols(champ)}
    if breaks:
        return result(spec, False, observed, expected, "; ".join(breaks))
    added = [c.name for c in cand if c.name not in old]
    note = f" (optional columns added: {', '.join(added)})" if added else ""
    return result(
        spec, True, observed, expected, f"compatible with champion v{ev.champion.version}{note}"
    )


def _cols(cols: tuple[Column, ...]) -> list[str]:
    return [f"{c.name}:{c.type}{'' if c.required else '?'}" for c in cols]


GATE = Gate(
    type="signature",
    schema=Schema((Boolean("allow_missing", False),)),
    check=check,
    needs=lambda spec: Needs(signature=True),
)
