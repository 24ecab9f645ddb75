"""The example's data: 25,000 synthetic rows from scikit-learn (nothing is downloaded).

`python data.py` writes data/train.csv (20,000 rows) and data/eval.csv (5,000 rows), the same
bytes on every machine. `altered_copy()` makes the silent change the demo catches: one value in
row 15,000, past the first 10,000 rows that MLflow's own dataset digest looks at.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.datasets import make_classification

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
TRAIN = DATA / "train.csv"
EVAL = DATA / "eval.csv"
ALTERED = DATA / "train_altered.csv"
FEATURES = [f"x{i}" for i in range(8)]


def make() -> tuple[Path, Path]:
    """Write the train and eval CSV files (idempotent)."""
    x, y = make_classification(n_samples=25_000, n_features=8, n_informative=5, n_redundant=1,
                               n_clusters_per_class=2, class_sep=1.0, flip_y=0.03, random_state=7)  # fmt: skip
    frame = pd.DataFrame(x.round(6), columns=FEATURES)
    frame["label"] = y
    DATA.mkdir(exist_ok=True)
    frame.iloc[:20_000].to_csv(TRAIN, index=False)
    frame.iloc[20_000:].to_csv(EVAL, index=False)
    return TRAIN, EVAL


def altered_copy(row: int = 15_000) -> Path:
    """The training file with one cell changed at ``row``: the kind of edit nobody notices."""
    frame = pd.read_csv(TRAIN)
    frame.loc[row, "x3"] = round(frame.loc[row, "x3"] + 0.25, 6)
    frame.to_csv(ALTERED, index=False)
    return ALTERED


if __name__ == "__main__":
    for path in make():
        print(path.relative_to(HERE))
