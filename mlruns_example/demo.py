"""The mlgate story on the embedded default store (SQLite in this directory; nothing started).

Run with `make demo` from the repository root.
"""

from __future__ import annotations

import sys

import pandas as pd
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlgate
from mlgate.report import render_lineage

MODEL = "wine-classifier"


def step(title: str) -> None:
    print(f"\n=== {title}")


def main() -> int:
    data = load_wine(as_frame=True).frame
    train, test = train_test_split(data, test_size=0.3, random_state=0, stratify=data["target"])
    features = [c for c in data.columns if c != "target"]

    step("1. fingerprint the data (every cell, not MLflow's first 10,000 rows)")
    for role, frame in (("train", train), ("eval", test)):
        fp = mlgate.fingerprint(frame)
        print(f"{role:5} {fp.digest}  {fp.rows} rows x {fp.columns} cols")

    step("2. train and register v1 with its lineage")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.05))
    model.fit(train[features], train["target"])
    acc = accuracy_score(test["target"], model.predict(test[features]))
    reg = mlgate.register(
        model,
        name=MODEL,
        train_data=train,
        eval_data=test,
        target="target",
        params={"C": 0.05},
        metrics={"accuracy": acc},
        input_example=test[features].head(3),
    )
    print(f"registered {reg.name} version {reg.number}")
    print(render_lineage(mlgate.show(f"{MODEL}/{reg.number}")))
    print(
        f"\nstore: {mlgate.Store().display_uri}  (open it with: mlflow ui --backend-store-uri ...)"
    )
    return 0


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    sys.exit(main())
