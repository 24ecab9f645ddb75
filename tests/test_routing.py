"""Routing is a small pure object: weights, stickiness and shadowing, without sockets."""

from __future__ import annotations

import random

import pytest

from mlgate.serving.routing import RoutingTable, Traffic, key_point


def shares(table: RoutingTable, n: int = 20_000) -> float:
    rng = random.Random(0)
    return sum(table.route(None, rng.random()).role == "challenger" for _ in range(n)) / n


@pytest.mark.parametrize("weight", [0, 5, 25, 50, 100])
def test_weighted_split(weight):
    """The challenger answers its weight's share of keyless requests."""
    table = RoutingTable("1", "2", Traffic("split", weight))
    assert abs(shares(table) - weight / 100) < 0.015


def test_sticky_keys_are_stable_and_monotonic():
    """A key always reaches the same version; raising the weight only moves keys to the
    challenger."""
    keys = [f"user-{i}" for i in range(2000)]
    low = RoutingTable("1", "2", Traffic("split", 20))
    high = RoutingTable("1", "2", Traffic("split", 60))
    for k in keys:
        assert low.route(k, 0.0) == low.route(k, 0.99)
        if low.route(k, 0.5).role == "challenger":
            assert high.route(k, 0.5).role == "challenger"
    assert abs(sum(low.route(k, 0.5).role == "challenger" for k in keys) / 2000 - 0.2) < 0.03
    assert key_point("user-1") == key_point("user-1")


def test_shadow_and_degenerate_tables():
    """Shadow answers from the champion; no challenger or the same version means champion only."""
    shadow = RoutingTable("1", "2", Traffic("shadow", 0))
    assert shadow.route(None, 0.0).version == "1" and shadow.route(None, 0.0).shadow == "2"
    assert RoutingTable("1", None, Traffic("split", 100)).route(None, 0.0).version == "1"
    assert RoutingTable("1", "1", Traffic("split", 100)).route(None, 0.0).role == "champion"
    with pytest.raises(LookupError):
        RoutingTable(None, "2").route(None, 0.0)


def test_traffic_validation():
    """Weights outside 0..100 and unknown modes are refused."""
    with pytest.raises(ValueError, match="weight"):
        Traffic("split", 101)
    with pytest.raises(ValueError, match="mode"):
        Traffic("canary", 1)
