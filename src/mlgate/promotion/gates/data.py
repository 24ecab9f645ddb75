"""``data``: pinned training data, unchanged recorded data, train != eval.

A recorded fingerprint is compared only with one taken the same way: a digest of a DataFrame's
content (``register(train_data=frame)``) with the policy's file read into a frame
(:func:`mlgate.promotion.evaluation.read_frame`), a digest of file bytes with the file's bytes.
Every mismatch message says which kind of digest each side is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlgate.keys import Tags
from mlgate.promotion.gates.base import (
    Evidence,
    Gate,
    GateResult,
    GateSpec,
    Needs,
    recorded_kind,
    result,
)
from mlgate.promotion.schema import Boolean, Schema, String, problem

_ROLES = ("train", "eval")
_KIND_WORDS = {
    "dataframe": "DataFrame content",
    "file": "file bytes",
    "directory": "directory of file digests",
    "array": "numpy array",
}


@dataclass(frozen=True)
class Fingerprint(String):
    """A data fingerprint as mlgate writes it: ``blake3:`` and 64 hex characters."""

    def check(self, value: Any) -> Any:
        from mlgate.fingerprint import is_fingerprint

        if not is_fingerprint(super().check(value)):
            raise problem("", "must look like blake3:<64 hex characters>")
        return value


_OPTIONS = (
    Fingerprint("train_fingerprint"),
    Fingerprint("eval_fingerprint"),
    String("train_path"),
    String("eval_path"),
    Boolean("distinct_train_eval"),
    Boolean("verify_recorded"),
)


def _something(values: Mapping[str, Any]) -> None:
    if all(values[o.name] is None for o in _OPTIONS):
        names = ", ".join(sorted(o.name for o in _OPTIONS))
        raise problem("", f"a data gate needs at least one of {names}")


def needs(spec: GateSpec) -> Needs:
    """The files named by ``*_path``, the recorded sources, the evaluation data scored."""
    files = tuple(
        (str(spec.get(f"{role}_path")), role) for role in _ROLES if spec.get(f"{role}_path")
    )
    return Needs(
        data_files=files,
        recorded_data=bool(spec.get("verify_recorded")),
        scored_data=bool(spec.get("distinct_train_eval")),
    )


def check(spec: GateSpec, ev: Evidence) -> GateResult:
    """Every check configured on the gate must hold; each failure is named in the reason."""
    tags = ev.candidate.tags
    recorded = {role: tags.get(Tags.data(role, "fingerprint")) for role in _ROLES}
    problems: list[str] = []
    checks: list[str] = []
    for role in _ROLES:
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
            problems.extend(_path_problems(ev, role, str(path), recorded[role]))
    if spec.get("distinct_train_eval"):
        checks.append("train != eval")
        problems.extend(_distinct_problems(ev, recorded))
    if spec.get("verify_recorded"):
        checks.append("recorded data unchanged")
        problems.extend(_recorded_problems(ev, recorded))
    observed = {k: v for k, v in recorded.items() if v}
    expected = "; ".join(checks)
    if problems:
        return result(spec, False, observed, expected, "; ".join(problems))
    return result(spec, True, observed, expected, "all data fingerprint checks hold")


def _path_problems(ev: Evidence, role: str, path: str, recorded: str | None) -> list[str]:
    """``<role>_path``: the file, fingerprinted the way the recorded digest was, matches it."""
    kind = recorded_kind(ev.candidate.tags, role)
    as_frame = kind == "dataframe"
    now = (ev.frame_fingerprints if as_frame else ev.path_fingerprints).get(path)
    if recorded is None:
        return [f"no {role} data fingerprint was recorded to compare {path} with"]
    if kind == "array":
        return [f"{role} data was recorded from a numpy array, which no file can be compared with"]
    if now is None or now.startswith("error:"):
        return [f"cannot fingerprint {path}: {_error(now)}"]
    if recorded != now:
        words = _KIND_WORDS.get(kind, kind)
        return [
            f"{role} data {_short(recorded)} ({words}, recorded) differs from {path} "
            f"({_short(now)}, {'the table it holds' if as_frame else words})"
        ]
    return []


def _distinct_problems(ev: Evidence, recorded: Mapping[str, str | None]) -> list[str]:
    """``distinct_train_eval``: training data is neither the recorded nor the scored eval data."""
    out = []
    train = recorded["train"]
    if train is None or recorded["eval"] is None:
        out.append("train and eval fingerprints must both be recorded to tell them apart")
    elif train == recorded["eval"]:
        out.append("training and evaluation data are identical")
    if train is not None and train in ev.scored_fingerprints:
        out.append(
            f"the evaluation data scored for this check is the training data "
            f"({_short(train)}): metrics on training rows prove nothing"
        )
    return out


def _recorded_problems(ev: Evidence, recorded: Mapping[str, str | None]) -> list[str]:
    """``verify_recorded``: each data file recorded at registration still has its digest."""
    out = []
    sources = {r: ev.candidate.tags.get(Tags.data(r, "source")) for r in _ROLES}
    for role, source in sources.items():
        if source is None:
            continue
        now = ev.path_fingerprints.get(source)
        if now is None or now.startswith("error:"):
            out.append(f"recorded {role} data {source} cannot be read: {_error(now)}")
        elif now != recorded[role]:
            out.append(
                f"recorded {role} data {source} changed since registration "
                f"({_short(recorded[role])} -> {_short(now)})"
            )
    if all(s is None for s in sources.values()):
        out.append("no data path was recorded at registration, so none can be verified")
    return out


def _error(fingerprint: str | None) -> str:
    return (fingerprint or "error: not computed")[6:].strip()


def _short(fp: str | None) -> str:
    return "none" if not fp else fp[:19] + "…"


GATE = Gate(type="data", schema=Schema(_OPTIONS, rules=(_something,)), check=check, needs=needs)
