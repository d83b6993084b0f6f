"""Made these run folders with the code at commit 85a5395 (before the engine refactor), so that the tests can check
that folders saved by that code still load and predict identically:

    git worktree add /tmp/wb-85a5395 85a5395 && cd /tmp/wb-85a5395 && \
        PYTHONPATH=. python /path/to/tests/data/saved_runs_v1/make_saved_runs.py /path/to/tests/data/saved_runs_v1
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from workbench.predict import load_model
from workbench.runconfig import RunConfig
from workbench.runner import execute

RUNS = {  # name: (model, target, params)
    "mlp-binary": ("mlp", "label", {"epochs": 3, "hidden_sizes": "8,8"}),
    "mlp-regression": ("mlp", "y", {"epochs": 3, "hidden_sizes": "8", "batch_norm": True}),
    "linear-multiclass": ("linear", "grade", {"epochs": 3}),
    "cnn-binary": ("cnn", "label", {"epochs": 2, "d_token": 4, "channels": 4}),
    "rnn-multiclass": ("rnn", "grade", {"epochs": 2, "d_token": 4, "hidden_size": 4, "cell": "lstm"}),
    "transformer-multiclass": ("transformer", "grade", {"epochs": 2, "d_model": 8, "n_heads": 2, "n_layers": 1}),
    "gradient_boosting-binary": ("gradient_boosting", "label", {"max_iter": 5}),
    "random_forest-regression": ("random_forest", "y", {"n_estimators": 3, "max_depth": 3}),
    "logistic_regression-multiclass": ("logistic_regression", "grade", {}),
    "ridge-regression": ("ridge", "y", {}),
}


def table(n: int = 160, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.uniform(-2, 2, size=n)
    colour = rng.choice(["red", "green", "blue", "grün"], size=n)
    flag = rng.random(n) < 0.5
    day = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D")
    score = 2 * x1 - x2 + (colour == "red") + rng.normal(scale=0.3, size=n)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "flag": flag, "day": day.strftime("%Y-%m-%d"),
                          "label": np.where(score > 0, "yes", "no"),
                          "grade": np.array(["low", "mid", "high"])[np.digitize(score, [-1, 1])],
                          "y": 3 * x1 + x2**2 + rng.normal(scale=0.2, size=n)})
    frame.loc[frame.index[::7], "x2"] = np.nan
    frame.loc[frame.index[::11], "colour"] = None
    return frame


def main(out: Path) -> None:
    torch.manual_seed(0)
    frame = table()
    rows = frame.drop(columns=["label", "grade", "y"]).head(40)
    rows.to_csv(out / "rows.csv", index=False)
    for name, (model, target, params) in RUNS.items():
        others = [c for c in ("label", "grade", "y") if c != target]
        config = RunConfig("saved-v1", target, model, exclude=others, params=params)
        outcome = execute(config, frame, out / name)
        assert outcome.status == "succeeded", (name, outcome.error)
        predicted = load_model(out / name).predict(pd.read_csv(out / "rows.csv"))
        predicted.to_parquet(out / f"{name}.predictions.parquet")  # exact values and dtypes


if __name__ == "__main__":
    main(Path(sys.argv[1]))
