"""Promotion gates: one module per gate type, each a pure function from evidence to a verdict.

A gate type (:class:`Gate`) declares, in its own module, the policy keys it takes (a
:class:`~mlgate.promotion.schema.Schema`), the evidence it needs (:class:`Needs`) and its check,
a pure function of its :class:`GateSpec` and the :class:`Evidence` collected for a candidate
(by :mod:`mlgate.promotion.evidence`, which does all the I/O) returning a :class:`GateResult`
with what it saw, what it expected and why it passed or failed. Policy validation
(:mod:`mlgate.promotion.policy`), evidence collection and :func:`run_gates` all derive from
:mod:`~mlgate.promotion.gates.registry`: mlgate's own types and the plug-ins registered under
the ``mlgate.gates`` entry-point group.

Gates fail closed: a missing or NaN metric, an unreadable champion, an unknown gate type, or an
exception inside a gate is a failure with a reason, never a pass.

Built-in types: ``metric`` (:mod:`.threshold`), ``no_regression``, ``improvement``,
``bootstrap``, ``data``, ``signature``, ``lineage``; :mod:`.common` holds what the metric gates
share. Adding one is a module here defining ``GATE`` (see :mod:`.threshold` for the smallest)
plus its module name in ``registry.BUILTIN``; a third-party type is the same module in its own
package, registered under the entry-point group instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlgate.errors import PolicyError
from mlgate.promotion.gates.base import (
    Column,
    Decision,
    EvaluationEvidence,
    Evidence,
    Gate,
    GateResult,
    GateSpec,
    Needs,
    VersionEvidence,
    fmt,
    result,
    usable,
)
from mlgate.promotion.gates.common import metric_value
from mlgate.promotion.gates.registry import GROUP, resolve
from mlgate.promotion.schema import (
    Boolean,
    Integer,
    Number,
    Schema,
    String,
    Strings,
    problem,
)


def run_gates(specs: Sequence[GateSpec], evidence: Evidence) -> tuple[GateResult, ...]:
    """Run every gate; an unknown type, a bad option or an exception inside a gate is that
    gate's failure, not a crash."""
    return tuple(_run(spec, evidence) for spec in specs)


def _run(spec: GateSpec, evidence: Evidence) -> GateResult:
    try:
        gate, spec = resolve(spec)
    except PolicyError as exc:
        if exc.key == "type":
            return result(spec, False, None, "a known gate type", exc.problem)
        return result(spec, False, None, "the gate to run", f"gate error: {exc.key}: {exc.problem}")
    try:
        gate.needs(spec)  # a gate whose needs cannot be told was not given its evidence
        verdict = gate.check(spec, evidence)
    except Exception as exc:  # noqa: BLE001 - fail closed: a broken gate must not pass
        why = f"gate error: {type(exc).__name__}: {exc}"
        return result(spec, False, None, "the gate to run", why)
    if not isinstance(verdict, GateResult) or not isinstance(verdict.passed, bool):
        what = type(verdict.passed if isinstance(verdict, GateResult) else verdict).__name__
        why = f"gate error: its check returned a {what}, not a GateResult with passed true/false"
        return result(spec, False, None, "the gate to run", why)
    return verdict


#: What a gate type's module, built-in or plug-in, imports from here.
__all__ = [
    "GROUP",
    "Boolean",
    "Column",
    "Decision",
    "EvaluationEvidence",
    "Evidence",
    "Gate",
    "GateResult",
    "GateSpec",
    "Integer",
    "Needs",
    "Number",
    "Schema",
    "String",
    "Strings",
    "VersionEvidence",
    "fmt",
    "metric_value",
    "problem",
    "result",
    "run_gates",
    "usable",
]
