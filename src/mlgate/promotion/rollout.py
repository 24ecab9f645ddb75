"""Progressive rollout: shift traffic to the challenger step by step on live metrics.

Each step sets the challenger's weight in the registry (every ``mlgate serve`` follows), then
reads ``/metrics`` from the serving endpoints until the challenger has answered enough requests
for long enough, and compares the step's window: the challenger's error rate may exceed the
champion's by at most ``max_error_rate_delta``, and its mean latency may be at most
``max_latency_ratio`` times the champion's. A breach rolls back (weight 0, the numbers on the
challenger version and in the ledger). After the last step the champion alias moves to the
challenger through the guarded promotion path, so the policy's gates and the ledger apply.

The rollout's progress lives in the registry (the ``mlgate.rollout`` model tag), so a rollout
interrupted half-way is resumed or aborted from the registry state alone. What it is doing is
logged to the ``mlgate.rollout`` logger at INFO (the CLI prints those lines).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

from mlgate.errors import GateRejected, MlgateError, UsageError
from mlgate.keys import Tags
from mlgate.lineage import compact_json
from mlgate.promotion.ledger import Event, Ledger, RolloutEvent, rollout_event
from mlgate.promotion.policy import Policy
from mlgate.promotion.traffic import set_traffic
from mlgate.registry.store import Store
from mlgate.serving.telemetry import parse_prometheus

ROLLOUT_TAG = Tags.ROLLOUT
FAILED_TAG = Tags.ROLLOUT_FAILED

Fetch = Callable[[str], str]

#: Progress of a rollout, at INFO (``mlgate rollout`` prints it on stderr).
log = logging.getLogger("mlgate.rollout")


@dataclass(frozen=True)
class Bounds:
    """What a step must show before the rollout advances."""

    min_requests: int = 200
    min_seconds: float = 30.0
    max_seconds: float = 900.0
    max_error_rate_delta: float = 0.01
    max_latency_ratio: float = 1.5


@dataclass
class RolloutState:
    """Progress of one rollout, stored as JSON in the model's ``mlgate.rollout`` tag."""

    champion: str
    challenger: str
    steps: list[float]
    step: int = 0
    status: str = "running"  # running | completed | rolled_back | aborted
    started_at: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        data = asdict(self)
        data["results"] = data["results"][-6:]
        return compact_json(data)

    @classmethod
    def from_json(cls, text: str) -> RolloutState | None:
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class Window:
    """Requests, errors and mean latency of one version over one step."""

    requests: float
    errors: float
    latency: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def http_fetch(url: str) -> str:
    import requests

    resp = requests.get(f"{url.rstrip('/')}/metrics", timeout=10)
    resp.raise_for_status()
    return resp.text


def _totals(
    endpoints: Sequence[str], fetch: Fetch
) -> tuple[dict[str, dict[str, float]], list[str]]:
    total: dict[str, dict[str, float]] = {}
    failures = []
    for url in endpoints:
        try:
            parsed = parse_prometheus(fetch(url))
        except Exception as exc:  # noqa: BLE001 - an unreachable endpoint is reported, not fatal
            failures.append(f"{url}: {type(exc).__name__}")
            continue
        for version, row in parsed.items():
            acc = total.setdefault(version, {})
            for key, value in row.items():
                acc[key] = acc.get(key, 0.0) + value
    return total, failures


def _window(
    now: Mapping[str, Mapping[str, float]], base: Mapping[str, Mapping[str, float]], v: str
) -> Window:
    a, b = now.get(v, {}), base.get(v, {})

    def d(key: str) -> float:
        return max(0.0, a.get(key, 0.0) - b.get(key, 0.0))

    count = d("latency_count")
    return Window(
        requests=d("requests"),
        errors=d("errors"),
        latency=d("latency_sum") / count if count else None,
    )


def judge(challenger: Window, champion: Window, bounds: Bounds) -> tuple[bool, str]:
    """Pure: does the challenger's window stay within bounds relative to the champion's?"""
    problems = []
    delta = challenger.error_rate - champion.error_rate
    if delta > bounds.max_error_rate_delta:
        problems.append(
            f"error rate {challenger.error_rate:.2%} vs champion {champion.error_rate:.2%} "
            f"(+{delta:.2%} > {bounds.max_error_rate_delta:.2%})"
        )
    if challenger.latency is not None and champion.latency:
        ratio = challenger.latency / champion.latency
        if ratio > bounds.max_latency_ratio:
            problems.append(
                f"mean latency {challenger.latency * 1000:.1f} ms is {ratio:.2f}x the champion's "
                f"{champion.latency * 1000:.1f} ms (> {bounds.max_latency_ratio:g}x)"
            )
    if problems:
        return False, "; ".join(problems)
    lat = f", latency {challenger.latency * 1000:.1f} ms" if challenger.latency is not None else ""
    return True, f"{challenger.requests:.0f} requests, error rate {challenger.error_rate:.2%}{lat}"


@dataclass(frozen=True)
class RolloutResult:
    """How a rollout ended, and every ledger event it recorded, oldest first."""

    state: RolloutState
    events: tuple[Event, ...]
    message: str


def read_state(store: Store, model: str) -> RolloutState | None:
    raw = store.get_model(model).tags.get(ROLLOUT_TAG)
    return RolloutState.from_json(raw) if raw else None


def _save(store: Store, model: str, state: RolloutState) -> None:
    store.set_model_tag(model, ROLLOUT_TAG, state.to_json())


@dataclass
class _Run:
    """One rollout in progress: where it reads its numbers, how it judges, what it recorded."""

    store: Store
    model: str
    endpoints: Sequence[str]
    bounds: Bounds
    fetch: Fetch
    poll: float
    sleep: Callable[[float], None]
    ledger_experiment: str
    champion_alias: str
    challenger_alias: str
    events: list[Event] = field(default_factory=list)

    def traffic(self, weight: float, reason: str, step: tuple[int, int] | None = None) -> None:
        """Set the challenger's weight (recorded, and kept in ``events``)."""
        self.events.append(
            set_traffic(
                self.store,
                self.model,
                weight=weight,
                reason=reason,
                ledger_experiment=self.ledger_experiment,
                alias=self.challenger_alias,
                step=step,
            )
        )

    def record(self, event: RolloutEvent) -> RolloutEvent:
        stored = Ledger(self.store, self.ledger_experiment).append(event)
        self.events.append(stored)
        return stored


def _check_plan(steps: Sequence[float]) -> list[float]:
    plan = [float(s) for s in steps]
    if not plan or any(not 0 < s <= 100 for s in plan) or plan != sorted(plan) or plan[-1] != 100:
        raise UsageError("steps must be increasing percentages in (0, 100] ending at 100")
    return plan


def rollout(
    model: str,
    endpoints: Sequence[str],
    *,
    steps: Sequence[float] = (5, 25, 50, 100),
    bounds: Bounds | None = None,
    policy: Any = None,
    store: Store | None = None,
    fetch: Fetch = http_fetch,
    poll: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> RolloutResult:
    """Run (or resume) the rollout of ``model``'s challenger. Blocks until it ends.

    Progress is logged (logger ``mlgate.rollout``, INFO): ``mlgate rollout`` prints it.

    Returns:
        The completed rollout, with every event it recorded: a
        :class:`~mlgate.promotion.ledger.RolloutStepEvent` per step, the promotion, and the
        traffic reset.

    Raises:
        GateRejected: a step breached its bounds (the rollout was rolled back; ``.event`` is
            the :class:`~mlgate.promotion.ledger.RolloutEvent`), or the final promotion's
            gates refused.
        UsageError: no challenger, no endpoints, or bad steps.
    """
    from mlgate.promotion.workflow import resolve_policy

    store = store or Store()
    if not endpoints:
        raise UsageError("rollout needs at least one serving endpoint (--endpoint URL)")
    plan = _check_plan(steps)
    pol = resolve_policy(policy, required=False)
    mp = pol.for_model(model)
    run = _Run(
        store=store,
        model=model,
        endpoints=endpoints,
        bounds=bounds or Bounds(),
        fetch=fetch,
        poll=poll,
        sleep=sleep,
        ledger_experiment=pol.ledger_experiment,
        champion_alias=mp.champion_alias,
        challenger_alias=mp.challenger_alias,
    )
    state = _start(run, plan)
    reference = Window(0, 0, None)  # champion's numbers from earlier steps, for the 100% step
    while state.step < len(state.steps):
        reference = _step(run, state, reference)
    return _finish(run, state, pol)


def _start(run: _Run, plan: list[float]) -> RolloutState:
    """The rollout to run: the one in the registry if it is for this challenger, else new."""
    info = run.store.get_model(run.model)
    champion = info.aliases.get(run.champion_alias)
    challenger = info.aliases.get(run.challenger_alias)
    if challenger is None:
        raise UsageError(f"{run.model}@{run.challenger_alias} is not set: nothing to roll out")
    if champion is None:
        raise UsageError(
            f"{run.model}@{run.champion_alias} is not set: promote a first champion directly"
        )
    state = read_state(run.store, run.model)
    if state is None or state.status != "running" or state.challenger != challenger:
        state = RolloutState(
            champion=champion, challenger=challenger, steps=plan, started_at=_now()
        )
        log.info(
            "rollout of %s version %s over champion %s: steps %s",
            run.model,
            challenger,
            champion,
            plan,
        )
    else:
        log.info(
            "resuming rollout of version %s at step %d/%d",
            challenger,
            state.step + 1,
            len(state.steps),
        )
    _save(run.store, run.model, state)
    return state


def _step(run: _Run, state: RolloutState, reference: Window) -> Window:
    """Run step ``state.step``: set the weight, watch, judge; returns the champion's window."""
    weight = state.steps[state.step]
    number, total = state.step + 1, len(state.steps)
    run.traffic(weight, f"rollout step {number}", step=(number, total))
    log.info("step %d/%d: challenger at %g%%", number, total, weight)
    ch, cm = _observe(run, state)
    compare = cm if cm.requests >= max(10, run.bounds.min_requests // 10) else reference
    ok, detail = judge(ch, compare, run.bounds)
    state.results.append(
        {
            "step": number,
            "weight": weight,
            "ok": ok,
            "detail": detail,
            "challenger": asdict(ch),
            "champion": asdict(compare),
        }
    )
    if not ok:
        _roll_back(run, state, f"step {number} at {weight:g}%: {detail}")
    log.info("step %d passed: %s", number, detail)
    state.step += 1
    _save(run.store, run.model, state)
    return cm if cm.requests else reference


def _observe(run: _Run, state: RolloutState) -> tuple[Window, Window]:
    """Read the endpoints until the challenger has answered enough for long enough; returns
    the (challenger, champion) windows. Too little traffic by ``max_seconds`` rolls back."""
    base, _ = _totals(run.endpoints, run.fetch)
    started = time.monotonic()
    while True:
        run.sleep(run.poll)
        now, failures = _totals(run.endpoints, run.fetch)
        if failures and len(failures) == len(run.endpoints):
            log.warning("no serving endpoint answered: %s", ", ".join(failures))
        ch = _window(now, base, state.challenger)
        cm = _window(now, base, state.champion)
        elapsed = time.monotonic() - started
        if ch.requests >= run.bounds.min_requests and elapsed >= run.bounds.min_seconds:
            return ch, cm
        if elapsed > run.bounds.max_seconds:
            _roll_back(
                run,
                state,
                f"step {state.step + 1} saw only {ch.requests:.0f} challenger requests in "
                f"{elapsed:.0f} s (needs {run.bounds.min_requests})",
            )


def _finish(run: _Run, state: RolloutState, pol: Policy) -> RolloutResult:
    """Every step passed: promote the challenger to champion, reset the weight to 0."""
    from mlgate.promotion.workflow import promote

    try:
        run.events.append(
            promote(
                run.model,
                state.challenger,
                to=run.champion_alias,
                expected=state.champion,
                reason="rollout completed",
                policy=pol,
                store=run.store,
            )
        )
    except MlgateError:
        run.traffic(0, "rollout: final promotion refused")
        state.status = "rolled_back"
        _save(run.store, run.model, state)
        raise
    run.traffic(0, "rollout completed: reset for the next challenger")
    state.status = "completed"
    _save(run.store, run.model, state)
    msg = f"rollout completed: version {state.challenger} is now {run.champion_alias}"
    log.info("%s", msg)
    return RolloutResult(state=state, events=tuple(run.events), message=msg)


def _roll_back(run: _Run, state: RolloutState, reason: str) -> NoReturn:
    """Weight to 0, the numbers on the challenger version and in the ledger; GateRejected."""
    run.traffic(0, f"rollout rolled back: {reason}")
    run.store.set_version_tags(
        run.model,
        state.challenger,
        {FAILED_TAG: compact_json({"at": _now(), "reason": reason, "results": state.results[-3:]})},
    )
    state.status = "rolled_back"
    _save(run.store, run.model, state)
    event = run.record(
        rollout_event(
            run.model,
            run.challenger_alias,
            status="rolled_back",
            champion=state.champion,
            challenger=state.challenger,
            message=reason,
            results=tuple(state.results[-3:]),
        )
    )
    log.info("rolled back: %s", reason)
    raise GateRejected(f"rollout of version {state.challenger} rolled back: {reason}", event=event)


def abort(
    model: str, *, reason: str = "", policy: Any = None, store: Store | None = None
) -> RolloutResult:
    """Stop a running rollout: challenger weight to 0, state ``aborted``, recorded.

    Returns:
        The aborted rollout, with its events: the traffic reset and the
        :class:`~mlgate.promotion.ledger.RolloutEvent`.
    """
    from mlgate.promotion.workflow import resolve_policy

    store = store or Store()
    pol = resolve_policy(policy, required=False)
    mp = pol.for_model(model)
    state = read_state(store, model)
    if state is None or state.status != "running":
        raise UsageError(f"{model} has no running rollout")
    events: list[Event] = [
        set_traffic(
            store,
            model,
            weight=0,
            reason=f"rollout aborted: {reason}".rstrip(": "),
            ledger_experiment=pol.ledger_experiment,
            alias=mp.challenger_alias,
        )
    ]
    state.status = "aborted"
    _save(store, model, state)
    event = rollout_event(
        model,
        mp.challenger_alias,
        status="aborted",
        champion=state.champion,
        challenger=state.challenger,
        reason=reason,
        message="rollout aborted",
    )
    events.append(Ledger(store, pol.ledger_experiment).append(event))
    msg = f"rollout of {model} version {state.challenger} aborted; challenger traffic 0%"
    return RolloutResult(state=state, events=tuple(events), message=msg)
