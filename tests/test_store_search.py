"""Store.search_runs reads the REST answer itself: the same records MLflow's client gives."""

from __future__ import annotations

import math
import uuid

import pytest

from mlgate.registry.store import _run_record


def _same(a, b) -> bool:
    def metric(x, y) -> bool:
        return (math.isnan(x) and math.isnan(y)) or x == y

    return (
        (a.run_id, a.experiment_id, a.start_ms, a.params, a.tags)
        == (b.run_id, b.experiment_id, b.start_ms, b.params, b.tags)
        and a.metrics.keys() == b.metrics.keys()
        and all(metric(a.metrics[k], b.metrics[k]) for k in a.metrics)
    )


@pytest.mark.slow
def test_search_runs_gives_what_mlflows_client_gives(store):
    """Empty tag and param values, NaN/inf/zero metrics, order and pages across 1,000 runs are
    what MLflow's client returns for the same search (the REST path is taken)."""
    client = store.client
    assert store._rest_search() is not None
    exp = client.create_experiment(f"search-{uuid.uuid4().hex[:8]}")
    edge = client.create_run(exp, tags={"kind": "edge", "empty": "", "u": "é✓"})
    client.log_param(edge.info.run_id, "p", "")
    for key, value in (("nan", math.nan), ("inf", math.inf), ("zero", 0.0), ("neg", -1.5)):
        client.log_metric(edge.info.run_id, key, value)
    for i in range(1001):
        client.create_run(exp, tags={"kind": "bulk", "i": str(i)})
    for flt, limit in (("tags.kind = 'edge'", None), ("tags.kind = 'bulk'", None),
                       ("tags.kind = 'bulk'", 7)):  # fmt: skip
        order = ["attributes.start_time DESC"]
        fast = store.search_runs(exp, flt, order_by=order, limit=limit)
        slow = [
            _run_record(r)
            for r in client.search_runs([exp], flt, order_by=order, max_results=50_000)
        ][:limit]
        assert len(fast) == len(slow) and all(map(_same, fast, slow))
    assert len(store.search_runs(exp, "tags.kind = 'bulk'")) == 1001
