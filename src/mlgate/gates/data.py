"""Data-fingerprint gates: pinned training data, unchanged recorded data, train != eval."""

from __future__ import annotations

from mlgate.gates import Evidence, GateResult, result
from mlgate.lineage import Tags
from mlgate.policy import GateSpec


def fingerprints(spec: GateSpec, ev: Evidence) -> GateResult:
    """Every check configured on the gate must hold; each failure is named in the reason."""
    tags = ev.candidate.tags
    recorded = {role: tags.get(Tags.data(role, "fingerprint")) for role in ("train", "eval")}
    problems: list[str] = []
    checks: list[str] = []
    for role in ("train", "eval"):
        pinned = spec.get(f"{role}_fingerprint")
        if pinned is not None:
            checks.append(f"{role} == pinned")
            if recorded[role] != pinned:
                problems.append(
                    f"{role} data {_short(recorded[role])} is not the pinned {_short(pinned)}"
                )
        path = spec.get(f"{role}_path")
        if path is not None:
            checks.append(f"{role} == fingerprint of {path}")
            now = ev.path_fingerprints.get(str(path))
            if now is None or now.startswith("error:"):
                problems.append(
                    f"cannot fingerprint {path}: {(now or 'error: not computed')[6:].strip()}"
                )
            elif recorded[role] != now:
                problems.append(
                    f"{role} data {_short(recorded[role])} differs from {path} ({_short(now)})"
                )
    if spec.get("distinct_train_eval"):
        checks.append("train != eval")
        if recorded["train"] is None or recorded["eval"] is None:
            problems.append("train and eval fingerprints must both be recorded to tell them apart")
        elif recorded["train"] == recorded["eval"]:
            problems.append("training and evaluation data are identical")
    if spec.get("verify_recorded"):
        checks.append("recorded data unchanged")
        any_source = False
        for role in ("train", "eval"):
            source = tags.get(Tags.data(role, "source"))
            if source is None:
                continue
            any_source = True
            now = ev.path_fingerprints.get(source)
            if now is None or now.startswith("error:"):
                problems.append(
                    f"recorded {role} data {source} cannot be read: {(now or 'error: not computed')[6:].strip()}"
                )
            elif now != recorded[role]:
                problems.append(f"recorded {role} data {source} changed since registration "
                                f"({_short(recorded[role])} -> {_short(now)})")  # fmt: skip
        if not any_source:
            problems.append("no data path was recorded at registration, so none can be verified")
    observed = {k: v for k, v in recorded.items() if v}
    expected = "; ".join(checks)
    if problems:
        return result(spec, False, observed, expected, "; ".join(problems))
    return result(spec, True, observed, expected, "all data fingerprint checks hold")


def _short(fp: str | None) -> str:
    return "none" if not fp else fp[:19] + "…"
