"""``lineage``: a commit is recorded, the tree was clean, the artifacts are what was recorded."""

from __future__ import annotations

from mlgate.keys import Tags
from mlgate.lineage import NO_GIT
from mlgate.promotion.gates.base import Evidence, Gate, GateResult, GateSpec, Needs, result
from mlgate.promotion.schema import Boolean, Schema, Strings


def check(spec: GateSpec, ev: Evidence) -> GateResult:
    """Each requirement configured on the gate must hold; each failure is named."""
    tags = ev.candidate.tags
    problems: list[str] = []
    checks: list[str] = []
    commit = tags.get(Tags.GIT_COMMIT)
    if spec.get("require_commit", True):
        checks.append("git commit recorded")
        if not commit or commit == NO_GIT:
            problems.append("no git commit was recorded (trained outside a repository?)")
    if spec.get("require_clean", True):
        checks.append("clean tree")
        dirty = tags.get(Tags.GIT_DIRTY)
        if dirty is None:
            problems.append(
                "the tree state was not recorded (MLflow does not record it: a version logged "
                "outside mlgate passes only with require_clean = false on this gate)"
            )
        elif dirty != "false":
            problems.append("trained from a dirty tree (uncommitted changes)")
    if spec.get("verify_artifacts", True):
        checks.append("artifact digest matches")
        want = tags.get(Tags.ARTIFACT_DIGEST)
        now = ev.candidate.artifact_digest_now
        if want is None:
            problems.append("no artifact digest was recorded (not registered through mlgate)")
        elif ev.candidate.artifact_error:
            problems.append(f"artifacts cannot be read: {ev.candidate.artifact_error}")
        elif now != want:
            problems.append(f"artifacts changed since registration: recorded {want}, now {now}")
    for role in spec.get("require_data", []) or []:
        checks.append(f"{role} data recorded")
        if not tags.get(Tags.data(role, "fingerprint")):
            problems.append(f"no {role} data fingerprint was recorded")
    observed = {
        "commit": commit,
        "dirty": tags.get(Tags.GIT_DIRTY),
        "artifact_digest": ev.candidate.artifact_digest_now,
    }
    expected = "; ".join(checks)
    if problems:
        return result(spec, False, observed, expected, "; ".join(problems))
    return result(spec, True, observed, expected, "lineage complete and artifacts intact")


GATE = Gate(
    type="lineage",
    schema=Schema(
        (
            Boolean("require_commit", True),
            Boolean("require_clean", True),
            Boolean("verify_artifacts", True),
            Strings("require_data", (), choices=("train", "eval")),
        )
    ),
    check=check,
    needs=lambda spec: Needs(artifact_digest=bool(spec.get("verify_artifacts", True))),
)
