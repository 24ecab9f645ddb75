"""The registry as control plane: aliases say which versions serve, a model tag how much traffic.

Servers only read this; ``mlgate traffic`` and ``mlgate rollout`` write it (under the model's
promotion lease, and recorded in the ledger), so every replica converges on the same state.
"""

from __future__ import annotations

from mlgate.errors import UsageError
from mlgate.keys import DEFAULT_LEDGER
from mlgate.lineage import compact_json
from mlgate.promotion.ledger import Ledger, TrafficEvent, traffic_event
from mlgate.registry.lease import leased
from mlgate.registry.store import Store
from mlgate.serving.routing import MODES, TRAFFIC_TAG, Traffic, parse_traffic


def set_traffic(
    store: Store,
    model: str,
    *,
    weight: float,
    mode: str = "split",
    reason: str = "",
    ledger_experiment: str = DEFAULT_LEDGER,
    alias: str = "challenger",
    force: bool = False,
    step: tuple[int, int] | None = None,
) -> TrafficEvent:
    """Set the challenger's share of traffic (percent) and the mode; recorded in the ledger.

    A weight above 0 while ``alias`` is not set would route that share nowhere (the champion
    answers it), so it is refused unless ``force`` (e.g. to stage the weight before a
    challenger is promoted). ``step`` (number, of how many) says a rollout step makes the
    change: the event is then a :class:`~mlgate.promotion.ledger.RolloutStepEvent`.

    Returns:
        The recorded :class:`~mlgate.promotion.ledger.TrafficEvent`, with the mode and weight
        before and after.
    """
    if mode not in MODES:
        raise UsageError(f"traffic mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not 0.0 <= weight <= 100.0:
        raise UsageError(f"challenger weight must be within 0..100, got {weight}")
    new = Traffic(mode=mode, challenger_weight=float(weight))
    ledger = Ledger(store, ledger_experiment)
    with leased(store, model):
        info = store.get_model(model)
        if weight > 0 and alias not in info.aliases and not force:
            raise UsageError(
                f"{model}@{alias} is not set, so no challenger would get the {weight:g}%: "
                f"promote a challenger first, or pass --force to set the weight anyway"
            )
        old = parse_traffic(info.tags.get(TRAFFIC_TAG))
        store.set_model_tag(model, TRAFFIC_TAG, compact_json(new.to_dict()))
    event = traffic_event(
        model,
        alias,
        before=(old.mode, old.challenger_weight),
        after=(new.mode, new.challenger_weight),
        reason=reason,
        step=step,
    )
    return ledger.append(event)
