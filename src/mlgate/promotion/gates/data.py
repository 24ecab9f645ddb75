"""Data-fingerprint gates: pinned training data, unchanged recorded data, train != eval.

A recorded fingerprint is compared only with one taken the same way: a digest of a DataFrame's
content (``register(train_data=frame)``) with the policy's file read into a frame
(:func:`mlgate.promotion.evaluation.read_frame`), a digest of file bytes with the file's bytes. Every
mismatch message says which kind of digest each side is.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlgate.lineage import Tags
from mlgate.promotion.gates import Evidence, GateResult, result
from mlgate.promotion.policy import GateSpec


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
            kind = recorded_kind(tags, role)
            as_frame = kind == "dataframe"
            fps = ev.frame_fingerprints if as_frame else ev.path_fingerprints
            now = fps.get(str(path))
            if recorded[role] is None:
                problems.append(f"no {role} data fingerprint was recorded to compare {path} with")
            elif kind == "array":
                problems.append(
                    f"{role} data was recorded from a numpy array, which no file can be compared with"
                )
            elif now is None or now.startswith("error:"):
                problems.append(
                    f"cannot fingerprint {path}: {(now or 'error: not computed')[6:].strip()}"
                )
            elif recorded[role] != now:
                problems.append(
                    f"{role} data {_short(recorded[role])} ({_KIND_WORDS.get(kind, kind)}, "
                    f"recorded) differs from {path} ({_short(now)}, "
                    f"{'the table it holds' if as_frame else _KIND_WORDS.get(kind, kind)})"
                )
    if spec.get("distinct_train_eval"):
        checks.append("train != eval")
        if recorded["train"] is None or recorded["eval"] is None:
            problems.append("train and eval fingerprints must both be recorded to tell them apart")
        elif recorded["train"] == recorded["eval"]:
            problems.append("training and evaluation data are identical")
        if recorded["train"] is not None and recorded["train"] in ev.scored_fingerprints:
            problems.append(
                f"the evaluation data scored for this check is the training data "
                f"({_short(recorded['train'])}): metrics on training rows prove nothing"
            )
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
                problems.append(
                    f"recorded {role} data {source} changed since registration "
                    f"({_short(recorded[role])} -> {_short(now)})"
                )
        if not any_source:
            problems.append("no data path was recorded at registration, so none can be verified")
    observed = {k: v for k, v in recorded.items() if v}
    expected = "; ".join(checks)
    if problems:
        return result(spec, False, observed, expected, "; ".join(problems))
    return result(spec, True, observed, expected, "all data fingerprint checks hold")


_KIND_WORDS = {
    "dataframe": "DataFrame content",
    "file": "file bytes",
    "directory": "directory of file digests",
    "array": "numpy array",
}


def recorded_kind(tags: Mapping[str, str], role: str) -> str:
    """How the ``role`` fingerprint was taken: ``dataframe``, ``array``, ``file`` or
    ``directory``. For versions registered before mlgate recorded it: a column count means a
    frame, a byte size a file or directory (both compared by bytes), rows alone an array."""
    kind = tags.get(Tags.data(role, "kind"))
    if kind:
        return kind
    if Tags.data(role, "columns") in tags:
        return "dataframe"
    if Tags.data(role, "bytes") in tags:
        return "file"
    return "array" if Tags.data(role, "rows") in tags else "file"


def _short(fp: str | None) -> str:
    return "none" if not fp else fp[:19] + "…"
