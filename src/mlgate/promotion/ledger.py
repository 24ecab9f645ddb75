"""The ledger: an append-only history of every promotion, refusal, rollback and conflict.

MLflow keeps no history of alias moves, so mlgate records each attempt as a typed event, stored
in MLflow itself (no second database): one finished run per event in the ledger experiment
(``mlgate-ledger`` by default), its fields as ``mlgate.event.*`` run tags and the whole event as
compact JSON. Anyone with access to the tracking server can read the history, with mlgate
(``mlgate history``) or without it (the MLflow UI, ``search_runs``).

One dataclass per kind of event, all built here and sharing the fields of :class:`Event`:

============================  ============  ====================================================
class                         ``kind``      what happened
============================  ============  ====================================================
:class:`PromotionEvent`       ``promote``   an alias moved (or was refused) to a version
:class:`RollbackEvent`        ``rollback``  an alias moved back to a version it held before
:class:`TrafficEvent`         ``traffic``   the challenger's traffic share or mode changed
:class:`RolloutStepEvent`     ``traffic``   the same, made by step N of a rollout
:class:`RolloutEvent`         ``rollout``   a rollout was rolled back or aborted
:class:`RegistrationEvent`    ``register``  a version was registered with its lineage
:class:`AttachEvent`          ``attach``    lineage was added to an existing version
:class:`BuildEvent`           ``build``     a serving image of a version was built
:class:`UnknownEvent`         any other     written by another release or by hand: kept as read
============================  ============  ====================================================

``to_dict()`` (and so ``mlgate history --json`` and the stored JSON) keeps every key the first
release wrote (``from_version``/``to_version`` hold a traffic change's ``split:5%`` there, as
before) and adds each kind's typed fields, so readers of either release read both.

A move is recorded in two steps so that no move is ever missing from the ledger: the event is
written as ``pending`` before the alias moves and marked ``moved`` (or ``conflict``, ...) after.
An event left ``pending`` means the process died mid-move; ``mlgate status`` shows it.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

from mlgate.errors import ConflictError, NotPermittedError
from mlgate.keys import DEFAULT_LEDGER, EVENT_TAG_PREFIX
from mlgate.lineage import actor, ci_run_url, compact_json
from mlgate.registry.store import RunRecord, Store

PREFIX = EVENT_TAG_PREFIX
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
    "registered",
    "built",
)

#: The keys of every stored event, in the first release's layout (readers rely on them).
_BASE_KEYS = (
    "kind",
    "outcome",
    "model",
    "alias",
    "from_version",
    "to_version",
    "actor",
    "at",
    "at_ms",
    "reason",
    "message",
    "gates",
    "ci_run_url",
    "cleared",
    "event_id",
    "record_id",
)

E = TypeVar("E", bound="Event")


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every ledger event has. Every mutating call returns the event it recorded.

    Attributes:
        outcome: ``moved``, ``unchanged`` (already there), ``rejected`` (a gate or a rollout's
            bounds said no), ``conflict`` (alias moved / lease held), ``not_permitted``,
            ``failed``, ``attached``, ``registered``, ``built``, or ``pending`` (being moved,
            or the mover died), or ``dry_run`` (never stored).
        model, alias: what the event is about (``alias`` is empty for an event about a version).
        actor: who did it (CI user or OS user). at: ISO-8601 UTC time; at_ms: the same in ms.
        reason: the reason the person gave. message: what mlgate concluded.
        gates: the gate results (name, passed, observed, expected, reason), or a rollout's
            step results.
        ci_run_url: the CI run, when there is one. event_id: the event's own id.
        record_id: the MLflow run that stores the event (None until it is stored).
    """

    kind: ClassVar[str] = ""

    outcome: str
    model: str
    alias: str = ""
    actor: str
    at: str
    at_ms: int
    reason: str = ""
    message: str = ""
    gates: tuple[dict[str, Any], ...] = ()
    ci_run_url: str | None = None
    event_id: str = field(default_factory=_new_id)
    record_id: str | None = None

    @property
    def moved(self) -> bool:
        return self.outcome == "moved"

    @property
    def before(self) -> str | None:
        """What the event's target was before, as text: a version, or ``split:5%``."""
        return None

    @property
    def after(self) -> str | None:
        """What the event's target is after, as text: a version, or ``split:25%``."""
        return None

    def _typed(self) -> dict[str, Any]:
        """The kind's own fields, as stored next to the common ones."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """Every key of the first release's layout, then the kind's typed fields."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "outcome": self.outcome,
            "model": self.model,
            "alias": self.alias,
            "from_version": self.before,
            "to_version": self.after,
            "actor": self.actor,
            "at": self.at,
            "at_ms": self.at_ms,
            "reason": self.reason,
            "message": self.message,
            "gates": list(self.gates),
            "ci_run_url": self.ci_run_url,
            "cleared": [],
            "event_id": self.event_id,
            "record_id": self.record_id,
        }
        data.update(self._typed())
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """The typed event a stored dict describes (any release's layout; see :func:`decode`)."""
        return decode(data)

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """The kind's own constructor arguments from a stored dict (KeyError/ValueError: bad)."""
        return {}

    def line(self) -> str:
        """One human line: ``2026-… promote moved churn@champion 2 -> 3 by alice: reason``."""
        why = f": {self.reason}" if self.reason else ""
        if not self.alias:  # an event about a version, not an alias move
            what = f"{self.model}/{self.after or '-'}"
            return f"{self.at} {self.kind} {self.outcome} {what} by {self.actor}{why}"
        arrow = f"{self.before or '-'} -> {self.after or '-'}"
        who = f"{self.model}@{self.alias}"
        return f"{self.at} {self.kind} {self.outcome} {who} {arrow} by {self.actor}{why}"


@dataclass(frozen=True, kw_only=True)
class AliasMoveEvent(Event):
    """An event that moves ``alias`` from one version to another (promotion or rollback).

    Attributes:
        from_version: where the alias pointed before (None: unset).
        to_version: the version it was to point at.
        cleared: aliases removed as part of the move (the challenger, when it became champion).
    """

    from_version: str | None
    to_version: str
    cleared: tuple[str, ...] = ()

    @property
    def before(self) -> str | None:
        return self.from_version

    @property
    def after(self) -> str | None:
        return self.to_version

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["cleared"] = list(self.cleared)
        return data

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        to = data["to_version"]
        if to is None:
            raise ValueError("an alias move names the version it moves to")
        return {
            "from_version": _opt_str(data.get("from_version")),
            "to_version": str(to),
            "cleared": tuple(str(a) for a in data.get("cleared") or ()),
        }


@dataclass(frozen=True, kw_only=True)
class PromotionEvent(AliasMoveEvent):
    """``mlgate promote``: the alias moved to the candidate, or why it did not."""

    kind: ClassVar[str] = "promote"


@dataclass(frozen=True, kw_only=True)
class RollbackEvent(AliasMoveEvent):
    """``mlgate rollback``: the alias moved back to a version it held before (no gates)."""

    kind: ClassVar[str] = "rollback"


@dataclass(frozen=True, kw_only=True)
class TrafficEvent(Event):
    """``mlgate traffic``: the challenger's share of traffic (percent) and the mode changed.

    Attributes:
        mode_before, weight_before: the setting before (``split``/``shadow``, 0..100).
        mode_after, weight_after: the setting after.
    """

    kind: ClassVar[str] = "traffic"

    mode_before: str
    weight_before: float
    mode_after: str
    weight_after: float

    @property
    def before(self) -> str | None:
        return f"{self.mode_before}:{self.weight_before:g}%"

    @property
    def after(self) -> str | None:
        return f"{self.mode_after}:{self.weight_after:g}%"

    def _typed(self) -> dict[str, Any]:
        return {
            "mode_before": self.mode_before,
            "weight_before": self.weight_before,
            "mode_after": self.mode_after,
            "weight_after": self.weight_after,
        }

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        if "weight_after" in data:
            return {
                "mode_before": str(data["mode_before"]),
                "weight_before": float(data["weight_before"]),
                "mode_after": str(data["mode_after"]),
                "weight_after": float(data["weight_after"]),
            }
        # mlgate 0.1 kept the settings as text in the version fields: "split:5%".
        mode_before, weight_before = parse_setting(data["from_version"])
        mode_after, weight_after = parse_setting(data["to_version"])
        return {
            "mode_before": mode_before,
            "weight_before": weight_before,
            "mode_after": mode_after,
            "weight_after": weight_after,
        }


@dataclass(frozen=True, kw_only=True)
class RolloutStepEvent(TrafficEvent):
    """A traffic change made by step ``step`` (of ``steps``) of ``mlgate rollout``.

    Its ``kind`` stays ``traffic`` (it is one); ``steps`` is None for events of mlgate 0.1,
    which recorded the step only in the reason (``rollout step 2``).
    """

    step: int
    steps: int | None = None

    def _typed(self) -> dict[str, Any]:
        return {**super()._typed(), "rollout_step": self.step, "rollout_steps": self.steps}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        parsed = super()._parse(data)
        if "rollout_step" in data:
            steps = data.get("rollout_steps")
            step = {
                "step": int(data["rollout_step"]),
                "steps": None if steps is None else int(steps),
            }
            return {**parsed, **step}
        # This release stores typed fields and says when a change is a step; mlgate 0.1 only
        # said so in the reason.
        found = None if "weight_after" in data else _STEP_REASON.match(str(data.get("reason")))
        if found is None:
            raise ValueError("not a rollout step")
        return {**parsed, "step": int(found.group(1)), "steps": None}


#: How mlgate 0.1 named a rollout step's traffic change (its only record of the step).
_STEP_REASON = re.compile(r"rollout step (\d+)\Z")


@dataclass(frozen=True, kw_only=True)
class RolloutEvent(Event):
    """``mlgate rollout`` ended without promoting: rolled back (outcome ``rejected``, the
    breached step's numbers in ``gates`` and ``message``) or aborted (outcome ``unchanged``).

    Attributes:
        status: ``rolled_back`` or ``aborted``.
        champion, challenger: the versions the rollout was between.
    """

    kind: ClassVar[str] = "rollout"

    status: str
    champion: str | None
    challenger: str

    @property
    def before(self) -> str | None:
        return self.champion

    @property
    def after(self) -> str | None:
        return self.challenger

    def _typed(self) -> dict[str, Any]:
        return {"rollout": self.status, "champion": self.champion, "challenger": self.challenger}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        status = data.get("rollout") or (
            "rolled_back" if data.get("outcome") == "rejected" else "aborted"
        )
        challenger = data["challenger"] if "challenger" in data else data["to_version"]
        if challenger is None:
            raise ValueError("a rollout names its challenger")
        return {
            "status": str(status),
            "champion": _opt_str(
                data["champion"] if "champion" in data else data.get("from_version")
            ),
            "challenger": str(challenger),
        }


@dataclass(frozen=True, kw_only=True)
class _VersionEvent(Event):
    """An event about one version rather than an alias (``alias`` is empty)."""

    version: str

    @property
    def after(self) -> str | None:
        return self.version

    def _typed(self) -> dict[str, Any]:
        return {"version": self.version}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        version = data["version"] if "version" in data else data["to_version"]
        if version is None:
            raise ValueError("an event about a version names it")
        return {"version": str(version)}


@dataclass(frozen=True, kw_only=True)
class RegistrationEvent(_VersionEvent):
    """``mlgate register``: ``version`` was created with its lineage.

    Attributes:
        run_id: the run that logged the model (None: none). model_uri: what was registered.
        artifact_digest: the digest of the model's files, as recorded on the version.
    """

    kind: ClassVar[str] = "register"

    run_id: str | None = None
    model_uri: str = ""
    artifact_digest: str | None = None

    def _typed(self) -> dict[str, Any]:
        return {
            **super()._typed(),
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "artifact_digest": self.artifact_digest,
        }

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **super()._parse(data),
            "run_id": _opt_str(data.get("run_id")),
            "model_uri": str(data.get("model_uri") or ""),
            "artifact_digest": _opt_str(data.get("artifact_digest")),
        }


@dataclass(frozen=True, kw_only=True)
class AttachEvent(_VersionEvent):
    """``mlgate attach``: lineage tags were added to an existing ``version``.

    Attributes:
        written: the tag keys written. forced: those that replaced a different recorded value
            (``--force``). Both are empty for events of mlgate 0.1, whose message says it.
    """

    kind: ClassVar[str] = "attach"

    written: tuple[str, ...] = ()
    forced: tuple[str, ...] = ()

    def _typed(self) -> dict[str, Any]:
        return {**super()._typed(), "written": list(self.written), "forced": list(self.forced)}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **super()._parse(data),
            "written": tuple(str(k) for k in data.get("written") or ()),
            "forced": tuple(str(k) for k in data.get("forced") or ()),
        }


@dataclass(frozen=True, kw_only=True)
class BuildEvent(_VersionEvent):
    """``mlgate build``: a serving image of ``version`` was built (and maybe pushed).

    Attributes:
        image: ``REPOSITORY:TAG``. image_id: the engine's image id.
        digest: the registry digest when the image was pushed (None: not pushed).
    """

    kind: ClassVar[str] = "build"

    image: str
    image_id: str
    digest: str | None = None

    def _typed(self) -> dict[str, Any]:
        return {
            **super()._typed(),
            "image": self.image,
            "image_id": self.image_id,
            "digest": self.digest,
        }

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **super()._parse(data),
            "image": str(data["image"]),
            "image_id": str(data["image_id"]),
            "digest": _opt_str(data.get("digest")),
        }


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(Event):
    """An event this release has no class for (a newer release's kind, or a hand-made or
    damaged record): every field it had is kept, and shown as it was stored."""

    recorded_kind: str
    from_version: str | None = None
    to_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.recorded_kind

    @property
    def before(self) -> str | None:
        return self.from_version

    @property
    def after(self) -> str | None:
        return self.to_version

    def to_dict(self) -> dict[str, Any]:
        return {**self.extra, **super().to_dict()}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "recorded_kind": str(data.get("kind") or "?"),
            "from_version": _opt_str(data.get("from_version")),
            "to_version": _opt_str(data.get("to_version")),
            "extra": {k: v for k, v in data.items() if k not in _BASE_KEYS},
        }


_KINDS: dict[str, tuple[type[Event], ...]] = {
    # Most specific first: a traffic change is a rollout step when it says so.
    "promote": (PromotionEvent,),
    "rollback": (RollbackEvent,),
    "traffic": (RolloutStepEvent, TrafficEvent),
    "rollout": (RolloutEvent,),
    "register": (RegistrationEvent,),
    "attach": (AttachEvent,),
    "build": (BuildEvent,),
}


def parse_setting(text: Any) -> tuple[str, float]:
    """``split:5%`` (how mlgate 0.1 stored a traffic setting) as ``("split", 5.0)``."""
    mode, sep, weight = str(text).partition(":")
    if not sep or not mode or not weight.endswith("%"):
        raise ValueError(f"not a traffic setting: {text!r}")
    return mode, float(weight[:-1])


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _common(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "outcome": str(data.get("outcome") or "?"),
        "model": str(data.get("model") or "?"),
        "alias": str(data.get("alias") or ""),
        "actor": str(data.get("actor") or "?"),
        "at": str(data.get("at") or ""),
        "at_ms": int(data.get("at_ms") or 0),
        "reason": str(data.get("reason") or ""),
        "message": str(data.get("message") or ""),
        "gates": tuple(data.get("gates") or ()),
        "ci_run_url": _opt_str(data.get("ci_run_url")),
        "event_id": str(data.get("event_id") or _new_id()),
        "record_id": _opt_str(data.get("record_id")),
    }


def decode(data: Mapping[str, Any]) -> Event:
    """The typed event a stored dict describes, in this release's layout or mlgate 0.1's.

    A dict no class of its kind can read (a damaged record, a newer release's kind) becomes an
    :class:`UnknownEvent` that keeps what it says.
    """
    common = _common(data)
    for cls in _KINDS.get(str(data.get("kind")), ()):
        try:
            return cls(**common, **cls._parse(data))
        except (KeyError, TypeError, ValueError):
            continue
    return UnknownEvent(**common, **UnknownEvent._parse(data))


# --------------------------------------------------------------------------- building events


def _stamp() -> dict[str, Any]:
    """Who, when and from which CI run: the fields every new event gets."""
    now = time.time()
    return {
        "actor": actor(),
        "at": _dt.datetime.fromtimestamp(now, _dt.timezone.utc).isoformat(timespec="milliseconds"),
        "at_ms": int(now * 1000),
        "ci_run_url": ci_run_url(),
    }


def promotion_event(
    outcome: str,
    model: str,
    alias: str,
    *,
    from_version: str | None,
    to_version: str,
    reason: str = "",
    message: str = "",
    gates: tuple[dict[str, Any], ...] = (),
) -> PromotionEvent:
    """A promotion of ``model`` ``to_version`` to ``alias`` (``pending`` until it moves)."""
    return PromotionEvent(
        outcome=outcome,
        model=model,
        alias=alias,
        from_version=from_version,
        to_version=to_version,
        reason=reason,
        message=message,
        gates=gates,
        **_stamp(),
    )


def rollback_event(
    model: str, alias: str, *, from_version: str, to_version: str, reason: str = ""
) -> RollbackEvent:
    """A pending rollback of ``model@alias`` from ``from_version`` to ``to_version``."""
    return RollbackEvent(
        outcome="pending",
        model=model,
        alias=alias,
        from_version=from_version,
        to_version=to_version,
        reason=reason,
        message=f"roll {alias} back from version {from_version} to {to_version}",
        **_stamp(),
    )


def traffic_event(
    model: str,
    alias: str,
    *,
    before: tuple[str, float],
    after: tuple[str, float],
    reason: str = "",
    step: tuple[int, int] | None = None,
) -> TrafficEvent:
    """A change of the challenger's traffic from ``before`` to ``after`` (mode, percent);
    a :class:`RolloutStepEvent` when ``step`` (number, of how many) says a rollout made it."""
    (mode_before, weight_before), (mode_after, weight_after) = before, after
    common: dict[str, Any] = {
        "outcome": "moved",
        "model": model,
        "alias": alias,
        "reason": reason,
        "message": f"challenger traffic {weight_before:g}% -> {weight_after:g}% ({mode_after})",
        "mode_before": mode_before,
        "weight_before": float(weight_before),
        "mode_after": mode_after,
        "weight_after": float(weight_after),
        **_stamp(),
    }
    if step is not None:
        return RolloutStepEvent(step=step[0], steps=step[1], **common)
    return TrafficEvent(**common)


def rollout_event(
    model: str,
    alias: str,
    *,
    status: str,
    champion: str | None,
    challenger: str,
    reason: str = "",
    message: str = "",
    results: tuple[dict[str, Any], ...] = (),
) -> RolloutEvent:
    """A rollout that was ``rolled_back`` (outcome ``rejected``) or ``aborted``."""
    if status not in ("rolled_back", "aborted"):
        raise ValueError(f"a rollout event is rolled_back or aborted, not {status!r}")
    return RolloutEvent(
        outcome="rejected" if status == "rolled_back" else "unchanged",
        model=model,
        alias=alias,
        status=status,
        champion=champion,
        challenger=challenger,
        reason=reason,
        message=message,
        gates=results,
        **_stamp(),
    )


def registration_event(
    model: str,
    version: str,
    *,
    run_id: str | None,
    model_uri: str,
    artifact_digest: str | None,
) -> RegistrationEvent:
    """The registration of ``model`` ``version``."""
    run = f" from run {run_id}" if run_id else ""
    return RegistrationEvent(
        outcome="registered",
        model=model,
        version=version,
        run_id=run_id,
        model_uri=model_uri,
        artifact_digest=artifact_digest,
        message=f"registered version {version}{run} with its lineage",
        **_stamp(),
    )


def attach_event(
    model: str,
    version: str,
    *,
    written: tuple[str, ...],
    forced: Mapping[str, tuple[str, str]],
    reason: str = "",
) -> AttachEvent:
    """A pending attach of lineage tags ``written`` to ``model`` ``version``; ``forced`` maps
    each replaced key to its (old, new) values."""
    changes = "; ".join(f"{k}: {old} -> {new}" for k, (old, new) in forced.items())
    message = f"attached lineage to version {version} ({len(written)} tags)" + (
        f"; forced: {changes}" if forced else ""
    )
    return AttachEvent(
        outcome="pending",
        model=model,
        version=version,
        written=tuple(sorted(written)),
        forced=tuple(forced),
        reason=reason,
        message=message,
        **_stamp(),
    )


def build_event(
    model: str, version: str, *, image: str, image_id: str, digest: str | None
) -> BuildEvent:
    """A serving image ``image`` built of ``model`` ``version`` (pushed when ``digest``)."""
    pushed = f", pushed {digest}" if digest else ""
    return BuildEvent(
        outcome="built",
        model=model,
        version=version,
        image=image,
        image_id=image_id,
        digest=digest,
        message=f"built {image} ({image_id[:19]}{pushed})",
        **_stamp(),
    )


# --------------------------------------------------------------------------- storing events


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
    return {
        PREFIX + "id": event.event_id,
        PREFIX + "kind": event.kind,
        PREFIX + "outcome": event.outcome,
        PREFIX + "model": event.model,
        PREFIX + "alias": event.alias,
        PREFIX + "from": event.before or "",
        PREFIX + "to": event.after or "",
        PREFIX + "actor": event.actor,
        PREFIX + "at": event.at,
        _JSON: _encode(event),
    }


class Ledger:
    """Reads and appends events in one experiment of one tracking server."""

    def __init__(self, store: Store, experiment: str = DEFAULT_LEDGER) -> None:
        self.store = store
        self.experiment = experiment
        self._experiment_id: str | None = None

    def _exp(self, create: bool = True) -> str | None:
        if self._experiment_id is None:
            self._experiment_id = self.store.experiment_id(self.experiment, create=create)
        return self._experiment_id

    def append(self, event: E) -> E:
        """Store a new event; returns it with its ``record_id``."""
        if event.outcome == "dry_run":
            return event
        exp = self._exp()
        assert exp is not None
        record = self.store.create_record_run(exp, _run_name(event), _tags(event), event.at_ms)
        return replace(event, record_id=record)

    def append_if_permitted(self, event: E) -> E:
        """Store ``event``; if the ledger itself refuses (no permission on its experiment, or
        it is being created concurrently), return it unrecorded (``record_id`` None).

        For events whose fact is already done or refused either way (a refusal, a finished
        registration or build): failing the call would report it wrongly.
        """
        try:
            return self.append(event)
        except (NotPermittedError, ConflictError):
            return event

    def settle(self, event: E, outcome: str, message: str | None = None) -> E:
        """Give a ``pending`` event its final outcome (the only change an event ever gets).

        ``event`` may carry what the move found (e.g. the version the alias pointed at).
        """
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
                PREFIX + "from": final.before or "",
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
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events for ``model``, newest first (optionally of one alias, outcome or kind)."""
        exp = self._exp(create=False)
        if exp is None:
            return []
        clauses = [f"tags.`{PREFIX}model` = '{_q(model)}'"]
        for key, value in (("alias", alias), ("outcome", outcome), ("kind", kind)):
            if value:
                clauses.append(f"tags.`{PREFIX}{key}` = '{_q(value)}'")
        runs = self.store.search_runs(
            exp, " and ".join(clauses), order_by=["attributes.start_time DESC"], limit=limit
        )
        return [_decode(r) for r in runs]


def _run_name(event: Event) -> str:
    target = f"{event.model}@{event.alias}" if event.alias else event.model
    return f"{event.kind} {event.outcome} {target} -> {event.after}"[:250]


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
    if not isinstance(data, dict) or not data:
        # A hand-made or damaged record: rebuild what the plain tags say.
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
            "event_id": t.get(PREFIX + "id"),
        }
    # The outcome tag is authoritative: settle() updates it together with the JSON.
    data["outcome"] = run.tags.get(PREFIX + "outcome", data.get("outcome", "?"))
    data["record_id"] = run.run_id
    return decode(data)


__all__ = [
    "OUTCOMES",
    "AliasMoveEvent",
    "AttachEvent",
    "BuildEvent",
    "Event",
    "Ledger",
    "PromotionEvent",
    "RegistrationEvent",
    "RollbackEvent",
    "RolloutEvent",
    "RolloutStepEvent",
    "TrafficEvent",
    "UnknownEvent",
    "attach_event",
    "build_event",
    "decode",
    "parse_setting",
    "promotion_event",
    "registration_event",
    "rollback_event",
    "rollout_event",
    "traffic_event",
]
