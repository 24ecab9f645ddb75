"""Train a model on the example data and register it with mlgate (lineage and all).

    python train.py --model logreg            # v1: a linear baseline
    python train.py --model forest            # v2: a random forest, better
    python train.py --model forest --altered-data     # trained on silently altered data

Prints the new version number on the last line; in GitHub Actions also writes `version=N` to
$GITHUB_OUTPUT so later steps can use it.
"""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import data
import mlgate

MODEL_NAME = os.environ.get("MLGATE_EXAMPLE_MODEL", "example-classifier")


def build(kind: str):
    if kind == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    if kind == "forest":
        return RandomForestClassifier(n_estimators=60, min_samples_leaf=2, random_state=0, n_jobs=2)
    raise SystemExit(f"unknown model {kind!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", choices=["logreg", "forest"], default="logreg")
    ap.add_argument(
        "--altered-data", action="store_true", help="train on the copy altered at row 15,000"
    )
    ap.add_argument("--name", default=MODEL_NAME, help="registered model name")
    args = ap.parse_args(argv)

    data.make()
    train_path = data.altered_copy() if args.altered_data else data.TRAIN
    train = pd.read_csv(train_path)
    test = pd.read_csv(data.EVAL)
    model = build(args.model).fit(train[data.FEATURES], train["label"])
    if "n_jobs" in model.get_params():
        # Trained on 2 cores; served one small batch at a time, where a joblib pool per call
        # costs more than it saves (one row: ~18 ms with n_jobs=2, ~3 ms with 1). Same trees.
        model.set_params(n_jobs=1)
    pred = model.predict(test[data.FEATURES])
    metrics = {
        "accuracy": accuracy_score(test["label"], pred),
        "f1_macro": f1_score(test["label"], pred, average="macro"),
    }
    try:
        reg = register(args, model, train_path, metrics, test)
    except mlgate.MlgateError as exc:
        print(f"train.py: {exc}", file=sys.stderr)
        return exc.exit_code
    print(
        f"registered {reg.name} version {reg.number}: accuracy {metrics['accuracy']:.4f}",
        file=sys.stderr,
    )
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as fh:
            fh.write(f"version={reg.number}\nmodel={reg.name}\n")
    print(reg.number)
    return 0


def register(args, model, train_path, metrics, test):
    return mlgate.register(
        model,
        name=args.name,
        train_data=train_path,
        eval_data=data.EVAL,
        params={"model": args.model, "altered_data": args.altered_data},
        metrics=metrics,
        input_example=test[data.FEATURES].head(3),
        experiment="mlgate-example",
    )


if __name__ == "__main__":
    sys.exit(main())
