"""Use cases: check, promote, rollback, history, status.

One function per use case, the same code path from Python, the CLI and CI. Each mutating call
returns the typed ledger event it recorded (:class:`~mlgate.promotion.ledger.PromotionEvent`,
:class:`~mlgate.promotion.ledger.RollbackEvent`); a refusal raises an error constructed with its
recorded event (and, for a gate, the :class:`~mlgate.promotion.gates.Decision`).

A promotion:

1. resolves the candidate and looks at where the alias points now (the *expected* target,
   unless the caller names one);
2. collects evidence and runs the policy's gates for the target alias (nothing changes yet);
3. on rejection writes the evidence on the version and a ``rejected`` event, and raises;
4. otherwise takes the model's lease, writes the evidence on the version, appends a
   ``pending`` event, moves the alias only if it still points at the expected version, and
   settles the event as ``moved`` (or ``conflict``/``not_permitted``/``failed``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from mlgate.config import find_policy
from mlgate.errors import (
    ConflictError,
    GateRejected,
    MlgateError,
    NotFoundError,
    NotPermittedError,
    PolicyError,
    UsageError,
)
from mlgate.keys import Tags
from mlgate.lineage import compact_json
from mlgate.promotion.evidence import collect
from mlgate.promotion.gates import Decision, run_gates
from mlgate.promotion.ledger import (
    AliasMoveEvent,
    Event,
    Ledger,
    PromotionEvent,
    RollbackEvent,
    promotion_event,
    rollback_event,
)
from mlgate.promotion.policy import ModelPolicy, Policy, load_policy, quote_key
from mlgate.registry.lease import Lease, guarded_move, leased
from mlgate.registry.refs import parse_ref, resolve, validate_alias
from mlgate.registry.store import Store, VersionRecord


class _Current:
    """Sentinel: expect the alias to point where it did when the check started."""

    def __repr__(self) -> str:
        return "CURRENT"


CURRENT: Any = _Current()
_EVIDENCE_LIMIT = 5000

PolicyLike = Policy | str | os.PathLike[str] | None


def resolve_policy(policy: PolicyLike, *, required: bool) -> Policy:
    """A Policy object, a path to load, or None to search upward (required: fail if none)."""
    if isinstance(policy, Policy):
        return policy
    if policy is not None:
        return load_policy(policy)
    if required:
        return load_policy(None)
    found = find_policy(Path.cwd())
    if found is None:
        return Policy(path=None, models={}, default=None)
    return load_policy(found)


def ledger_for(store: Store, policy: PolicyLike = None) -> Ledger:
    """The ledger ``policy`` names (a Policy, a path, or None: the policy found upward, else
    the default ``mlgate-ledger``), for use cases that take no policy of their own."""
    return Ledger(store, resolve_policy(policy, required=False).ledger_experiment)


def _candidate(store: Store, model: str, version: str | int | None) -> VersionRecord:
    if version is None:
        ref = parse_ref(model)
        if ref.version is None and ref.alias is None:
            raise UsageError(
                f"say which version of {model!r} (MODEL/VERSION, MODEL@ALIAS or --version)"
            )
        return resolve(store, ref)
    ref = parse_ref(model)
    if ref.version is not None or ref.alias is not None:
        raise UsageError(
            f"{model!r} already names a version; drop --version or use the bare model name"
        )
    text = str(version).strip()
    if text.isdigit():
        return store.get_version(ref.name, text)
    return resolve(store, f"{ref.name}@{validate_alias(text)}")


def _model_name(model: str) -> str:
    return parse_ref(model).name


def _specs(pol: Policy, mp: ModelPolicy, alias: str) -> tuple[Any, ...]:
    specs = mp.gates_for(alias)
    if specs is None:
        section = f"models.{quote_key(mp.name)}" if mp.name in pol.models else "default"
        section = f"{pol.prefix}.{section}" if pol.prefix else section
        others = _near_alias(alias, [*mp.gates, mp.champion_alias, mp.challenger_alias])
        if mp.name not in pol.models and pol.default is None and pol.models:
            # Likely a typo or another model's policy: say which model has no section.
            listed = ", ".join(f"[models.{quote_key(n)}]" for n in sorted(pol.models))
            others += (
                f" (the policy has {listed} but no [models.{quote_key(mp.name)}] and no [default])"
            )
        raise PolicyError(
            pol.path or "policy",
            f"{section}.gates.{alias}",
            f"no gates are defined for promotion of {mp.name!r} to {alias!r}{others}, so it is "
            f"refused (fail closed); declare gates, or `{alias} = []` under [{section}.gates] to "
            "allow ungated moves",
        )
    return specs


def _near_alias(alias: str, known: list[str]) -> str:
    """`` (did you mean 'champion'?)`` for a case variant or a near miss of a known alias."""
    import difflib

    same = [k for k in known if k.lower() == alias.lower() and k != alias]
    near = same or difflib.get_close_matches(alias, list(dict.fromkeys(known)), n=1, cutoff=0.75)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _decide(
    store: Store,
    pol: Policy,
    mp: ModelPolicy,
    candidate: VersionRecord,
    alias: str,
    eval_data: Any,
    target: str | None = None,
) -> Decision:
    specs = _specs(pol, mp, alias)
    champion = store.version_by_alias(candidate.name, mp.champion_alias)
    base = str(Path(pol.path).parent) if pol.path else None
    evidence, summary = collect(
        store,
        mp,
        alias,
        candidate,
        specs,
        champion=champion,
        eval_data=eval_data,
        target=target,
        base_dir=base,
    )
    return Decision(
        model=candidate.name,
        version=candidate.version,
        alias=alias,
        champion_version=champion.version if champion else None,
        first_promotion=champion is None,
        results=run_gates(specs, evidence),
        checked_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        policy_path=pol.path,
        evaluation=summary,
    )


def check(
    model: str,
    version: str | int | None = None,
    *,
    to: str,
    policy: PolicyLike = None,
    eval_data: Any = None,
    target: str | None = None,
    store: Store | None = None,
) -> Decision:
    """Run the policy's gates for promoting ``model`` ``version`` to alias ``to``. Changes nothing.

    Args:
        model: registered model name (or ``NAME/VERSION`` / ``NAME@ALIAS`` with no ``version``).
        version: a version number or an alias naming the candidate.
        to: the target alias (``champion``, ``challenger``, ...).
        policy: a :class:`~mlgate.promotion.policy.Policy`, a path, or None to search upward.
        eval_data: a DataFrame or path to score candidate and champion on (overrides the
            policy's ``evaluation.data``).
        target: the evaluation data's target column (overrides the policy's
            ``evaluation.target``).
        store: the tracking server (default: see :class:`mlgate.Store`).
    """
    store = store or Store()
    validate_alias(to)
    pol = resolve_policy(policy, required=True)
    candidate = _candidate(store, model, version)
    current = store.version_by_alias(candidate.name, to)
    if current is not None and current.version == candidate.version:
        return _already_there(pol, pol.for_model(candidate.name), candidate, to, store)
    return _decide(store, pol, pol.for_model(candidate.name), candidate, to, eval_data, target)


def _already_there(
    pol: Policy, mp: ModelPolicy, candidate: VersionRecord, alias: str, store: Store
) -> Decision:
    """What check says when the version already holds the alias: as promote, unchanged (a
    version compared with itself would only show a zero improvement)."""
    champion = store.version_by_alias(candidate.name, mp.champion_alias)
    return Decision(
        model=candidate.name,
        version=candidate.version,
        alias=alias,
        champion_version=champion.version if champion else None,
        first_promotion=champion is None,
        results=(),
        checked_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        policy_path=pol.path,
        already_there=True,
    )


def _evidence_tag(decision: Decision) -> str:
    failed_first = sorted(decision.results, key=lambda r: r.passed)
    payload: dict[str, Any] = {
        "passed": decision.passed,
        "checked_at": decision.checked_at,
        "champion": decision.champion_version,
        "first_promotion": decision.first_promotion,
        "policy": decision.policy_path,
        "eval": (decision.evaluation or {}).get("fingerprint"),
        "gates": [[r.name, r.passed, r.reason[:300]] for r in failed_first],
    }
    text = compact_json(payload)
    while len(text) > _EVIDENCE_LIMIT and payload["gates"]:
        payload["gates"] = [[g[0], g[1], ""] for g in payload["gates"]]
        text = compact_json(payload)
        if len(text) > _EVIDENCE_LIMIT:
            payload["gates"] = payload["gates"][: len(payload["gates"]) // 2]
            payload["truncated"] = True
            text = compact_json(payload)
    return text


_Carrier = TypeVar("_Carrier", ConflictError, NotPermittedError)


def _carrying(exc: _Carrier, event: Event | None) -> _Carrier:
    """The same refusal raised anew, now carrying the ledger event written for it.

    The registry raises ``ConflictError``/``NotPermittedError`` knowing nothing of the ledger;
    the use case records the event first and then constructs the error it raises with it.
    """
    return type(exc)(exc.message, hint=exc.hint, event=event)


def _gates(decision: Decision | None) -> tuple[dict[str, Any], ...]:
    return tuple(r.to_dict() for r in decision.results) if decision else ()


Move = TypeVar("Move", PromotionEvent, RollbackEvent)


def _move(
    store: Store,
    ledger: Ledger,
    pol: Policy,
    event: Move,
    *,
    expected: str | None,
    ttl: float | None,
    before_move: Callable[[], None] | None = None,
    clear_alias: str | None = None,
) -> Move:
    """Take the lease, record a pending event, move if still expected, settle the event."""
    try:
        with leased(store, event.model, ttl=ttl or pol.lease_ttl) as lease:
            if before_move is not None:
                before_move()
            pending = ledger.append(event)
            return _move_held(store, ledger, lease, pending, expected, clear_alias)
    except ConflictError as exc:
        if exc.event is not None:  # raised by _move_held, event settled
            raise
        # The lease was held: nothing was written yet.
        refused = ledger.append_if_permitted(
            replace(event, outcome="conflict", message=exc.message)
        )
        raise _carrying(exc, refused) from exc


def _move_held(
    store: Store,
    ledger: Ledger,
    lease: Lease,
    pending: Move,
    expected: str | None,
    clear_alias: str | None,
) -> Move:
    """Holding the lease: move the alias if it still points at ``expected``, settle ``pending``."""
    model, alias, version = pending.model, pending.alias, pending.to_version
    try:
        previous = guarded_move(store, lease, model, alias, version, expected=expected)
        cleared: tuple[str, ...] = ()
        if clear_alias:
            other = store.version_by_alias(model, clear_alias)
            if other is not None and other.version == version:
                store.delete_alias(model, clear_alias)
                cleared = (clear_alias,)
    except ConflictError as exc:
        raise _carrying(exc, ledger.settle(pending, "conflict", exc.message)) from exc
    except NotPermittedError as exc:
        settled = _settle_quietly(ledger, pending, "not_permitted", exc.message)
        raise _carrying(exc, settled) from exc
    except MlgateError as exc:
        _settle_quietly(ledger, pending, "failed", exc.message)
        raise
    return ledger.settle(replace(pending, from_version=previous, cleared=cleared), "moved")


def _settle_quietly(ledger: Ledger, event: Move, outcome: str, message: str) -> Move | None:
    try:
        return ledger.settle(event, outcome, message)
    except MlgateError:
        return None


@dataclass(frozen=True)
class _Attempt:
    """One promotion being decided: the candidate, the target alias and where it points now."""

    store: Store
    pol: Policy
    ledger: Ledger
    candidate: VersionRecord
    alias: str
    observed: str | None
    reason: str

    def event(self, outcome: str, message: str, decision: Decision | None = None) -> PromotionEvent:
        return promotion_event(
            outcome,
            self.candidate.name,
            self.alias,
            from_version=self.observed,
            to_version=self.candidate.version,
            reason=self.reason,
            message=message,
            gates=_gates(decision),
        )


def _refuse_unexpected(attempt: _Attempt, want: str | None, dry_run: bool) -> NoReturn:
    """The alias is not where the caller expected: a recorded conflict."""
    msg = (
        f"{attempt.candidate.name}@{attempt.alias} points at {attempt.observed or 'nothing'}, "
        f"the caller expected {want or 'nothing'}"
    )
    event = attempt.event("conflict", msg)
    raise ConflictError(msg, event=event if dry_run else attempt.ledger.append_if_permitted(event))


def _refuse_gates(attempt: _Attempt, decision: Decision, dry_run: bool) -> NoReturn:
    """A gate said no: the evidence on the version, a ``rejected`` event, GateRejected."""
    summary = decision.summary() + (" (dry run: nothing recorded)" if dry_run else "")
    event = attempt.event("rejected", summary, decision)
    if not dry_run:
        # If the evidence cannot be written, the refusal still stands: the ledger or the
        # output carries it.
        with contextlib.suppress(NotPermittedError):
            _write_evidence(attempt, decision)
        event = attempt.ledger.append_if_permitted(event)
    raise GateRejected(summary, decision=decision, event=event)


def _write_evidence(attempt: _Attempt, decision: Decision) -> None:
    name, version = attempt.candidate.name, attempt.candidate.version
    attempt.store.set_version_tags(
        name, version, {Tags.gates(attempt.alias): _evidence_tag(decision)}
    )


def _move_passed(
    attempt: _Attempt, decision: Decision, want: str | None, lease_ttl: float | None
) -> PromotionEvent:
    """The gates passed: move under the lease (evidence first); a refusal is recorded."""
    mp = attempt.pol.for_model(attempt.candidate.name)
    try:
        return _move(
            attempt.store,
            attempt.ledger,
            attempt.pol,
            attempt.event("pending", decision.summary(), decision),
            expected=want,
            ttl=lease_ttl,
            before_move=lambda: _write_evidence(attempt, decision),
            clear_alias=mp.challenger_alias if attempt.alias == mp.champion_alias else None,
        )
    except NotPermittedError as exc:
        if exc.event is not None:
            raise
        refused = attempt.ledger.append_if_permitted(attempt.event("not_permitted", exc.message))
        raise _carrying(exc, refused) from exc


def promote(
    model: str,
    version: str | int | None = None,
    *,
    to: str,
    expected: Any = CURRENT,
    reason: str = "",
    policy: PolicyLike = None,
    eval_data: Any = None,
    target: str | None = None,
    dry_run: bool = False,
    lease_ttl: float | None = None,
    store: Store | None = None,
) -> PromotionEvent:
    """Check the gates, then move ``model@to`` to the candidate if it still points at ``expected``.

    Args:
        expected: the version the alias must point at for the move to happen: a version
            number, None for "must not be set", or (default) wherever it pointed when the
            check started.
        reason: why; stored in the ledger event.
        eval_data, target: as for :func:`check`.
        dry_run: run the gates and report, change nothing, record nothing.
        lease_ttl: seconds the lease may be held (default: the policy's ``lease_ttl``).

    Returns:
        The ledger event (``moved``, or ``unchanged`` when the version already holds the alias,
        or ``dry_run``).

    Raises:
        GateRejected: a gate said no (exit 3); ``.decision`` and ``.event`` carry the evidence.
        ConflictError / LeaseHeldError: the alias moved, or another promotion holds the lease
            (exit 4); ``.event`` is the recorded conflict.
        NotPermittedError: the server refused (exit 5); ``.event`` is the recorded refusal.
    """
    store = store or Store()
    validate_alias(to)
    pol = resolve_policy(policy, required=True)
    candidate = _candidate(store, model, version)
    current = store.version_by_alias(candidate.name, to)
    observed = current.version if current else None
    ledger = Ledger(store, pol.ledger_experiment)
    attempt = _Attempt(store, pol, ledger, candidate, to, observed, reason)
    want = observed if expected is CURRENT else (None if expected is None else str(expected))
    if want != observed:
        _refuse_unexpected(attempt, want, dry_run)
    if observed == candidate.version:
        ev = attempt.event("unchanged", f"version {candidate.version} already holds {to}")
        return ev if dry_run else ledger.append(ev)
    mp = pol.for_model(candidate.name)
    decision = _decide(store, pol, mp, candidate, to, eval_data, target)
    if not decision.passed:
        _refuse_gates(attempt, decision, dry_run)
    if dry_run:
        return attempt.event("dry_run", decision.summary(), decision)
    return _move_passed(attempt, decision, want, lease_ttl)


def _rollback_target(
    ledger: Ledger,
    name: str,
    alias: str,
    current: str,
    to_version: str | int | None,
    force: bool,
) -> str:
    """Where a rollback of ``name@alias`` (now at ``current``) goes, per the ledger."""
    moves = [
        e
        for e in ledger.events(name, alias=alias, outcome="moved")
        if isinstance(e, AliasMoveEvent)
    ]
    if to_version is not None:
        target = str(to_version).strip()
        held = {v for e in moves for v in (e.from_version, e.to_version)}
        if target not in held and not force:
            raise UsageError(
                f"version {target} never held {name}@{alias} according to the ledger: a rollback "
                "skips the gates, so it only returns to a version that already served there",
                hint=f"promote it instead (mlgate promote {name}/{target} --to {alias}), or pass "
                "--force to move it without gates",
            )
        return target
    promotions = [e for e in moves if isinstance(e, PromotionEvent)]
    origin = next((e for e in promotions if e.to_version == current), None)
    if origin is None:
        raise UsageError(
            f"the ledger has no promotion of version {current} to {name}@{alias}",
            hint="pass --version VERSION to say where to roll back to",
        )
    if origin.from_version is None:
        raise UsageError(
            f"version {current} was the first {alias} of {name}: there is nothing "
            "before it to roll back to"
        )
    return origin.from_version


def rollback(
    model: str,
    *,
    alias: str | None = None,
    to_version: str | int | None = None,
    reason: str = "",
    policy: PolicyLike = None,
    dry_run: bool = False,
    lease_ttl: float | None = None,
    force: bool = False,
    store: Store | None = None,
) -> RollbackEvent:
    """Move ``alias`` (default: the champion alias) back to the version it held before.

    "Before" comes from the ledger: the ``from_version`` of the promotion that put the current
    version there, so repeated rollbacks walk back through the promotions. ``to_version``
    overrides it, but only with a version the ledger shows holding the alias before: gates do
    not run (a rollback returns to a version that already served), so a version that never
    held it must be promoted, not rolled back to, unless ``force``. The move is guarded and
    recorded like any other.
    """
    if to_version is not None and not str(to_version).strip().isdigit():
        raise UsageError(
            f"a rollback goes to a version number, got {str(to_version)!r}",
            hint=f"mlgate history {model} lists the versions that held the alias",
        )
    store = store or Store()
    pol = resolve_policy(policy, required=False)
    name = _model_name(model)
    mp = pol.for_model(name)
    alias = validate_alias(alias or mp.champion_alias)
    ledger = Ledger(store, pol.ledger_experiment)
    current = store.version_by_alias(name, alias)
    if current is None:
        raise UsageError(f"{name}@{alias} is not set: nothing to roll back")
    target = _rollback_target(ledger, name, alias, current.version, to_version, force)
    store.get_version(name, target)  # NotFoundError if it is gone
    if target == current.version:
        raise UsageError(f"{name}@{alias} already points at version {target}")
    ev = rollback_event(name, alias, from_version=current.version, to_version=target, reason=reason)
    if dry_run:
        return replace(ev, outcome="dry_run")
    return _move(store, ledger, pol, ev, expected=current.version, ttl=lease_ttl)


def history(
    model: str,
    *,
    alias: str | None = None,
    kind: str | None = None,
    limit: int | None = None,
    policy: PolicyLike = None,
    store: Store | None = None,
) -> list[Event]:
    """The ledger events of ``model`` (optionally of one alias or one kind), newest first.

    Each is its kind's class (:class:`~mlgate.promotion.ledger.PromotionEvent`, ...), events
    written by mlgate 0.1 included.
    """
    store = store or Store()
    pol = resolve_policy(policy, required=False)
    name = _model_name(model)
    if not store.model_exists(name):
        raise NotFoundError(f"registered model {name!r}: not found")
    ledger = Ledger(store, pol.ledger_experiment)
    return ledger.events(name, alias=alias, kind=kind, limit=limit)


@dataclass(frozen=True)
class AliasStatus:
    """Where an alias points, and when, why and by whom it last moved."""

    alias: str
    version: str
    last_move: AliasMoveEvent | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "version": self.version,
            "last_move": self.last_move.to_dict() if self.last_move else None,
        }


@dataclass(frozen=True)
class Status:
    """The state of a model: its aliases, any pending moves, and the promotion lease."""

    model: str
    aliases: tuple[AliasStatus, ...]
    latest_version: str | None
    pending: tuple[Event, ...] = ()
    lease: dict[str, str] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: The registry's traffic setting (``mode``, ``challenger_weight``) every server follows.
    traffic: dict[str, Any] | None = None
    challenger_alias: str = "challenger"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "latest_version": self.latest_version,
            "aliases": [a.to_dict() for a in self.aliases],
            "pending": [e.to_dict() for e in self.pending],
            "lease": self.lease,
            "notes": list(self.notes),
            "traffic": self.traffic,
        }


#: Event kinds that move an alias (the kinds of :class:`~mlgate.promotion.ledger.AliasMoveEvent`).
#: Traffic and rollout events name the challenger alias too, but move no alias.
ALIAS_MOVES = ("promote", "rollback")


def _last_alias_move(ledger: Ledger, model: str, alias: str) -> AliasMoveEvent | None:
    """The newest ``moved`` event that moved ``alias`` (traffic changes are not alias moves)."""

    def first(events: list[Event]) -> AliasMoveEvent | None:
        return next((e for e in events if isinstance(e, AliasMoveEvent)), None)

    page = 20
    moves = ledger.events(model, alias=alias, outcome="moved", limit=page)
    last = first(moves)
    if last is None and len(moves) == page:  # a long run of traffic changes: read them all
        last = first(ledger.events(model, alias=alias, outcome="moved"))
    return last


def status(model: str, *, policy: PolicyLike = None, store: Store | None = None) -> Status:
    """Aliases and their versions, and when and why each last moved."""
    from mlgate.registry.lease import lease_name

    store = store or Store()
    pol = resolve_policy(policy, required=False)
    name = _model_name(model)
    info = store.get_model(name)
    ledger = Ledger(store, pol.ledger_experiment)
    aliases = []
    notes = []
    for alias, version in sorted(info.aliases.items()):
        last = _last_alias_move(ledger, name, alias)
        if last is None:
            notes.append(f"{alias} was set outside mlgate (no ledger event)")
        elif last.to_version != version:
            notes.append(
                f"{alias} points at {version} but the ledger's last move says "
                f"{last.to_version}: it was moved outside mlgate"
            )
        aliases.append(AliasStatus(alias=alias, version=version, last_move=last))
    pending = tuple(ledger.events(name, outcome="pending", limit=50))
    for e in pending:
        if not e.alias:  # about one version (attach, register, build): no alias to look at
            article = "an" if e.kind[:1] in "aeiou" else "a"
            notes.append(
                f"{article} {e.kind} of version {e.after} by {e.actor} at {e.at} was "
                f"interrupted; run it again to finish it"
            )
            continue
        where = info.aliases.get(e.alias)
        done = "did move" if where == e.after else "did not move"
        notes.append(
            f"a {e.kind} of {e.alias} to {e.after} by {e.actor} at {e.at} was "
            f"interrupted; the alias {done}"
        )
    lease = None
    with contextlib.suppress(NotFoundError):
        lease = dict(store.get_model(lease_name(name)).tags)
    latest = store.latest_version(name)
    from mlgate.serving.routing import TRAFFIC_TAG, parse_traffic

    return Status(
        model=name,
        aliases=tuple(aliases),
        latest_version=latest.version if latest else None,
        pending=pending,
        lease=lease,
        notes=tuple(notes),
        traffic=parse_traffic(info.tags.get(TRAFFIC_TAG)).to_dict(),
        challenger_alias=pol.for_model(name).challenger_alias,
    )
