"""The outputs cache: a repeated check loads no model, and gives what loading it would give."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import mlgate
from conftest import write_policy
from mlgate.promotion import outputs
from mlgate.promotion.evaluation import evaluate

CHECK_POLICY = """
[default.evaluation]
data = "eval.csv"
target = "label"
[[default.gates.champion]]
type = "no_regression"
metric = "accuracy"
tolerance = 0.5
[[default.gates.champion]]
type = "bootstrap"
metric = "accuracy"
samples = 200
"""

AGAIN = """
import json, sys
import mlgate
d = mlgate.check(sys.argv[1], sys.argv[2], to="champion", policy=sys.argv[3])
loaded = sorted(m for m in ("sklearn", "skops", "mlflow.pyfunc") if m in sys.modules)
print(json.dumps({"loaded": loaded, "evaluation": d.evaluation,
                  "results": [[r.name, r.passed, r.reason] for r in d.results]}))
"""


def _cached_files() -> list[Path]:
    root = Path(os.environ["MLGATE_CACHE_DIR"]) / "outputs"
    return sorted(root.rglob("*.npz")) if root.exists() else []


def test_repeated_check_loads_no_model_and_decides_the_same(
    tracking_uri, model_name, make_version, classifier, tmp_path
):
    """A check whose versions' outputs are cached imports neither scikit-learn nor a model
    loader, and its evaluation and gate results equal the first check's."""
    _, _, test = classifier
    test.to_csv(tmp_path / "eval.csv", index=False)
    policy = write_policy(tmp_path, CHECK_POLICY)
    store = mlgate.Store(tracking_uri)
    v1 = make_version()
    mlgate.promote(model_name, v1, to="champion", policy=policy, store=store)
    v2 = make_version()
    first = mlgate.check(model_name, v2, to="champion", policy=policy, store=store)
    again = subprocess.run(
        [sys.executable, "-c", AGAIN, model_name, v2, str(policy)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONWARNINGS": "ignore"},
    )
    second = json.loads(again.stdout.strip().splitlines()[-1])
    assert second["loaded"] == []
    assert second["evaluation"] == json.loads(json.dumps(first.evaluation))
    assert second["results"] == [[r.name, r.passed, r.reason] for r in first.results]


def test_cached_outputs_score_as_the_model_does(
    store, model_name, make_version, classifier, monkeypatch, tmp_path
):
    """Label, probability and custom metrics and predictions are equal with the cache off, on
    a miss, on a hit, and after the entry is corrupted (a miss again); off writes nothing."""
    _, _, test = classifier
    (tmp_path / "proba_metric.py").write_text(
        "def mean_proba(y, pred, proba):\n    return float(proba.mean())\n"
    )
    v = store.get_version(model_name, make_version())

    def run() -> tuple[dict, np.ndarray]:
        metrics = {"mean_proba": "proba_metric:mean_proba"}
        ev = evaluate(store, [v], test, target="label", metrics=metrics, base_dir=str(tmp_path))
        return ev.summary(), ev.predictions[v.version]

    monkeypatch.setenv(outputs.ENV, "0")
    before = set(_cached_files())
    off = run()
    assert set(_cached_files()) == before
    monkeypatch.delenv(outputs.ENV)
    miss = run()
    added = set(_cached_files()) - before
    assert len(added) == 1
    hit = run()
    for path in added:
        path.write_bytes(b"not an npz file")
    corrupted = run()
    for got in (miss, hit, corrupted):
        assert got[0] == off[0]
        assert np.array_equal(got[1], off[1]) and got[1].dtype == off[1].dtype
    assert {"roc_auc", "log_loss", "mean_proba"} <= set(off[0]["metrics"][v.version])


def test_key_holds_artifacts_rows_target_and_the_models_packages(tmp_path):
    """The key changes with the artifacts, the evaluation frame, the target and the packages
    the model's requirements name (their installed versions)."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "requirements.txt").write_text("mlflow==3.0\n")
    base = outputs.key("blake3:a", "blake3:d", "label", str(model))
    assert base == outputs.key("blake3:a", "blake3:d", "label", str(model))
    assert base != outputs.key("blake3:b", "blake3:d", "label", str(model))
    assert base != outputs.key("blake3:a", "blake3:e", "label", str(model))
    assert base != outputs.key("blake3:a", "blake3:d", "y", str(model))
    (model / "requirements.txt").write_text("mlflow==3.0\nmsgspec>=0.1\n")
    assert base != outputs.key("blake3:a", "blake3:d", "label", str(model))
    env = outputs.environment(model)
    assert env["packages"]["msgspec"] == md.version("msgspec")
    assert env["packages"]["scikit-learn"] == md.version("scikit-learn")
