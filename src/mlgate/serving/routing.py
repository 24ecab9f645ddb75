"""Routing policy: which version answers a request. Pure and deterministic given its inputs.

Modes:

* ``split``: the challenger answers ``challenger_weight`` percent of requests. With a request key
  (the ``X-Mlgate-Key`` header, e.g. a user id) the choice is *sticky*: the key hashes to a fixed
  point in [0, 1), so the same key reaches the same version while the weight stands, and
  raising the weight only moves keys from champion to challenger, never back.
* ``shadow``: the champion answers every request; the challenger scores a copy and only its
  disagreement with the champion is counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import blake3

from mlgate.keys import Tags

if TYPE_CHECKING:
    from mlgate.registry.store import Store

MODES = ("split", "shadow")


@dataclass(frozen=True)
class Traffic:
    """How traffic is shared between champion and challenger."""

    mode: str = "split"
    challenger_weight: float = 0.0  # percent, 0..100

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"traffic mode must be one of {MODES}, got {self.mode!r}")
        if not 0.0 <= float(self.challenger_weight) <= 100.0:
            raise ValueError(
                f"challenger weight must be within 0..100, got {self.challenger_weight}"
            )

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "challenger_weight": self.challenger_weight}


@dataclass(frozen=True)
class Route:
    """The version that answers, its role, and the version that shadows it (if any)."""

    version: str
    role: str
    shadow: str | None = None


def key_point(key: str) -> float:
    """A stable point in [0, 1) for a request key (same on every replica and every run)."""
    digest = blake3.blake3(key.encode("utf-8", "surrogatepass")).digest(length=8)
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(frozen=True)
class RoutingTable:
    """A snapshot of what serves: champion and challenger versions and the traffic setting."""

    champion: str | None
    challenger: str | None
    traffic: Traffic = Traffic()

    def route(self, key: str | None, draw: float) -> Route:
        """Choose for one request. ``draw`` is a uniform [0, 1) number used when there is no key.

        Raises:
            LookupError: there is no champion to serve.
        """
        champion, challenger = self._routes
        if challenger is None:
            return champion
        point = key_point(key) if key else draw
        return challenger if point * 100.0 < self.traffic.challenger_weight else champion

    @cached_property
    def _routes(self) -> tuple[Route, Route | None]:
        """The champion's route, and the challenger's when a split can choose it (built once per
        table, not per request)."""
        if self.champion is None:
            raise LookupError("no champion version to serve")
        challenger = self.challenger if self.challenger != self.champion else None
        if challenger is None:
            return Route(self.champion, "champion"), None
        if self.traffic.mode == "shadow":
            return Route(self.champion, "champion", shadow=challenger), None
        return Route(self.champion, "champion"), Route(challenger, "challenger")

    def versions(self) -> tuple[str, ...]:
        return tuple(v for v in (self.champion, self.challenger) if v is not None)


TRAFFIC_TAG = Tags.TRAFFIC


def parse_traffic(raw: str | None) -> Traffic:
    """The traffic setting from its tag; a missing or unreadable tag means 'champion only'."""
    if not raw:
        return Traffic()
    try:
        data = json.loads(raw)
        return Traffic(
            mode=str(data.get("mode", "split")),
            challenger_weight=float(data.get("challenger_weight", 0.0)),
        )
    except (ValueError, TypeError, AttributeError):
        return Traffic()


def read_table(
    store: Store,
    model: str,
    *,
    champion_alias: str = "champion",
    challenger_alias: str = "challenger",
) -> RoutingTable:
    """One registry read: where the aliases point and the traffic setting."""
    info = store.get_model(model)
    return RoutingTable(
        champion=info.aliases.get(champion_alias),
        challenger=info.aliases.get(challenger_alias),
        traffic=parse_traffic(info.tags.get(TRAFFIC_TAG)),
    )
