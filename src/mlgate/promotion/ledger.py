"""The ledger: an append-only history of every promotion, refusal, rollback and conflict.

MLflow keeps no history of alias moves, so mlgate records each attempt as a typed
:class:`Event`, stored in MLflow itself (no second database): one finished run per event in
the ledger experiment (``mlgate-ledger`` by default), its fields as ``mlgate.event.*`` run tags
and the whole event as compact JSON. Anyone with access to the tracking server can read the
history, with mlgate (``mlgate history``) or without it (the MLflow UI, ``search_runs``).

A move is recorded in two steps so that no move is ever missing from the ledger: the event is
written as ``pending`` before the alias moves and marked ``moved`` (or ``conflict``, ...) after.
An event left ``pending`` means the process died mid-move; ``mlgate status`` shows it.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mlgate.lineage import actor, ci_run_url, compact_json
from mlgate.registry.store import RunRecord, Store

PREFIX = "mlgate.event."
_JSON = PREFIX + "json"
_MAX_JSON = 7900  # MLflow run tags hold 8,000 characters

OUTCOMES = (
    "pending",
    "moved",
    "unchanged",
    "rejected",
    "conflict",
    "not_permitted",
    "failed",
    "attached",
)


@dataclass(frozen=True)
class Event:
    """One entry of the ledger. Every mutating call returns the event it recorded.

    Attributes:
        kind: ``promote``, ``rollback`` or ``attach`` (lineage added to an existing version;
            ``alias`` is empty and ``to_version`` is the version).
        outcome: ``moved``, ``unchanged`` (already there), ``rejected`` (a gate said no),
            ``conflict`` (alias moved / lease held), ``not_permitted``, ``failed``, or
            ``pending`` (being moved, or the mover died), or ``dry_run`` (never stored).
        model, alias: what was (to be) moved.
        from_version: where the alias pointed before (None: unset).
        to_version: the version it was to point at.
        actor: who did it (CI user or OS user). at: ISO-8601 UTC time.
        reason: the reason the person gave. message: what mlgate concluded.
        gates: the gate results (name, passed, observed, expected, reason).
        ci_run_url: the CI run, when there is one. cleared: aliases removed as part of the move.
        record_id: the MLflow run that stores the event.
    """

    kind: str
    outcome: str
    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    at: str
    at_ms: int
    reason: str = ""
    message: str = ""
    gates: tuple[dict[str, Any], ...] = ()
    ci_run_url: str | None = None
    cleared: tuple[str, ...] = ()
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    record_id: str | None = None

    @property
    def moved(self) -> bool:
        return self.outcome == "moved"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gates"] = list(self.gates)
        data["cleared"] = list(self.cleared)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        known = {f for f in cls.__dataclass_fields__}
        clean = {k: v for k, v in data.items() if k in known}
        clean["gates"] = tuple(clean.get("gates") or ())
        clean["cleared"] = tuple(clean.get("cleared") or ())
        return cls(**clean)

    def line(self) -> str:
        """One human line: ``2026-… promote moved churn@champion 2 -> 3 by alice: reason``."""
        why = f": {self.reason}" if self.reason else ""
        if not self.alias:  # an event about a version, not an alias move
            what = f"{self.model}/{self.to_version or '-'}"
            return f"{self.at} {self.kind} {self.outcome} {what} by {self.actor}{why}"
        arrow = f"{self.from_version or '-'} -> {self.to_version or '-'}"
        return f"{self.at} {self.kind} {self.outcome} {self.model}@{self.alias} {arrow} by {self.actor}{why}"


def new_event(
    kind: str,
    outcome: str,
    model: str,
    alias: str,
    *,
    from_version: str | None,
    to_version: str | None,
    reason: str = "",
    message: str = "",
    gates: tuple[dict[str, Any], ...] = (),
) -> Event:
    now = time.time()
    return Event(
        kind=kind,
        outcome=outcome,
        model=model,
        alias=alias,
        from_version=from_version,
        to_version=to_version,
        actor=actor(),
        at=_dt.datetime.fromtimestamp(now, _dt.timezone.utc).isoformat(timespec="milliseconds"),
        at_ms=int(now * 1000),
        reason=reason,
        message=message,
        gates=gates,
        ci_run_url=ci_run_url(),
    )


def _compact_gates(gates: tuple[dict[str, Any], ...], level: int) -> list[dict[str, Any]]:
    if level == 0:
        return list(gates)
    keep = ("name", "passed", "reason") if level == 1 else ("name", "passed")
    return [{k: g.get(k) for k in keep} for g in gates]


def _encode(event: Event) -> str:
    data = event.to_dict()
    for level in (0, 1, 2):
        data["gates"] = _compact_gates(event.gates, level)
        text = compact_json(data)
        if len(text) <= _MAX_JSON:
            return text
    data["gates"] = []
    data["message"] = data["message"][:1000]
    data["reason"] = data["reason"][:1000]
    data["gates_truncated"] = True
    return compact_json(data)[:_MAX_JSON]


def _tags(event: Event) -> dict[str, str]:
    tags = {
        PREFIX + "id": event.event_id,
        PREFIX + "kind": event.kind,
        PREFIX + "outcome": event.outcome,
        PREFIX + "model": event.model,
        PREFIX + "alias": event.alias,
        PREFIX + "from": event.from_version or "",
        PREFIX + "to": event.to_version or "",
        PREFIX + "actor": event.actor,
        PREFIX + "at": event.at,
        _JSON: _encode(event),
    }
    return tags


class Ledger:
    """Reads and appends events in one experiment of one tracking server."""

    def __init__(self, store: Store, experiment: str = "mlgate-ledger") -> None:
        self.store = store
        self.experiment = experiment
        self._experiment_id: str | None = None

    def _exp(self, create: bool = True) -> str | None:
        if self._experiment_id is None:
            self._experiment_id = self.store.experiment_id(self.experiment, create=create)
        return self._experiment_id

    def append(self, event: Event) -> Event:
        """Store a new event; returns it with its ``record_id``."""
        if event.outcome == "dry_run":
            return event
        exp = self._exp()
        assert exp is not None
        record = self.store.create_record_run(exp, _run_name(event), _tags(event), event.at_ms)
        return replace(event, record_id=record)

    def settle(self, event: Event, outcome: str, message: str | None = None) -> Event:
        """Give a ``pending`` event its final outcome (the only change an event ever gets)."""
        final = replace(
            event, outcome=outcome, message=message if message is not None else event.message
        )
        if event.record_id is None:
            return self.append(final)
        # The run's name says the outcome too (MLflow keeps it in the mlflow.runName tag), so
        # the MLflow UI never shows a settled event as "pending".
        self.store.set_run_tags(
            event.record_id,
            {
                PREFIX + "outcome": outcome,
                _JSON: _encode(final),
                "mlflow.runName": _run_name(final),
            },
        )
        return final

    def events(
        self,
        model: str,
        *,
        alias: str | None = None,
        outcome: str | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events for ``model``, newest first."""
        exp = self._exp(create=False)
        if exp is None:
            return []
        clauses = [f"tags.`{PREFIX}model` = '{_q(model)}'"]
        if alias:
            clauses.append(f"tags.`{PREFIX}alias` = '{_q(alias)}'")
        if outcome:
            clauses.append(f"tags.`{PREFIX}outcome` = '{_q(outcome)}'")
        runs = self.store.search_runs(
            exp, " and ".join(clauses), order_by=["attributes.start_time DESC"], limit=limit
        )
        return [_decode(r) for r in runs]


def _run_name(event: Event) -> str:
    target = f"{event.model}@{event.alias}" if event.alias else event.model
    return f"{event.kind} {event.outcome} {target} -> {event.to_version}"[:250]


def _q(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _decode(run: RunRecord) -> Event:
    raw = run.tags.get(_JSON)
    data: dict[str, Any] = {}
    if raw:
        try:
            data = json.loads(raw)
        except ValueError:
            data = {}
    if not data:  # a hand-made or damaged record: rebuild what the plain tags say
        t = run.tags
        data = {
            "kind": t.get(PREFIX + "kind", "?"),
            "outcome": t.get(PREFIX + "outcome", "?"),
            "model": t.get(PREFIX + "model", "?"),
            "alias": t.get(PREFIX + "alias", "?"),
            "from_version": t.get(PREFIX + "from") or None,
            "to_version": t.get(PREFIX + "to") or None,
            "actor": t.get(PREFIX + "actor", "?"),
            "at": t.get(PREFIX + "at", ""),
            "at_ms": run.start_ms,
        }
    # The outcome tag is authoritative: settle() updates it together with the JSON.
    data["outcome"] = run.tags.get(PREFIX + "outcome", data.get("outcome", "?"))
    data["record_id"] = run.run_id
    return Event.from_dict(data)
