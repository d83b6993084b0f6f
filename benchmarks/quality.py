"""5. Test accuracy / rmse of every catalog model with default hyperparameters, through `runner.execute`, on the
bundled samples (mean over at least three splits, more where the test set is small) and a generated 100,000-row task
(one split), next to gradient_boosting."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.models.registry import MODELS
from workbench.runconfig import RunConfig, SplitConfig
from workbench.runner import execute
from workbench.samples import SAMPLES, load_sample
from workbench.store import RunStatus

SAMPLE_NAMES = ("breast_cancer", "wine", "digits", "diabetes")
BIG_MODELS = ("cnn", "rnn", "transformer")  # skipped by --quick, and on the 100k task (hours on 2 cores)
GAP_POINTS = 2.0
# Test rows each model is scored on per sample, over its splits. With three splits wine gave 81 (27 per split), so one
# row moved its mean by 1.2 points, more than half the 2-point margin to gradient boosting being checked.
MIN_TEST_ROWS = 200


def split_seeds_for(rows: int, min_splits: int = 3) -> tuple[int, ...]:
    """Split seeds 0, 1, ...: at least `min_splits`, and enough for MIN_TEST_ROWS test rows."""
    test_rows = max(1, round(rows * SplitConfig().test))
    return tuple(range(max(min_splits, math.ceil(MIN_TEST_ROWS / test_rows))))


def generated_table(rows: int = 100_000, seed: int = 1) -> pd.DataFrame:
    """A binary task with numeric features, one informative category and some missing values."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 16))
    segment = rng.choice(["north", "south", "east", "west", "online"], size=rows)
    effect = pd.Series(segment).map({"north": 0.8, "south": -0.5, "east": 0.2, "west": -0.2, "online": 0.0}).to_numpy()
    w = rng.normal(size=(16, 8)) / 4
    signal = np.tanh(x @ w * 2).sum(1) + 0.6 * x[:, 0] * x[:, 1] + effect + 0.3 * np.abs(x[:, 2])
    noisy = signal - np.median(signal) + rng.normal(scale=0.6, size=rows)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(16)])
    frame.loc[rng.random(rows) < 0.02, "x3"] = np.nan
    frame["segment"] = segment
    frame["label"] = np.where(noisy > 0, "good", "bad")
    return frame


def run_one(table: pd.DataFrame, target: str, model: str, split_seeds: tuple[int, ...]) -> dict:
    """Default hyperparameters, one run per split seed: the samples' test sets are small (27 to 270 rows; one row
    of wine is 3.7 points), so one split says little; the mean over splits is the figure."""
    scores, epochs, seconds, status = [], [], 0.0, RunStatus.SUCCEEDED
    for seed in split_seeds:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            outcome = execute(RunConfig(dataset_id="bench", target=target, model=model, split=SplitConfig(seed=seed)),
                              table, Path(tmp) / "run")
            seconds += time.perf_counter() - started
        test = outcome.metrics.get("test", {})
        if outcome.status != RunStatus.SUCCEEDED or outcome.primary_metric not in test:
            status = outcome.status
            continue
        scores.append(round(float(test[outcome.primary_metric]), 4))
        epochs.append(outcome.epochs_run)
    return {"status": status, "metric": outcome.primary_metric, "task": outcome.task,
            "test": round(float(np.mean(scores)), 4) if scores else None, "test_by_split": scores,
            "epochs": epochs, "seconds": round(seconds, 2)}


def measure(quick: bool = False, generated_rows: int = 100_000, datasets: tuple[str, ...] = SAMPLE_NAMES,
            models: tuple[str, ...] | None = None, min_splits: int = 3) -> dict:
    tables = {name: (load_sample(name), SAMPLES[name].target) for name in datasets}
    if not quick and generated_rows:
        tables[f"generated_{generated_rows // 1000}k"] = (generated_table(generated_rows), "label")
    out: dict = {"datasets": {}, "mlp_vs_gradient_boosting": {}, "skipped": []}
    for name, (table, target) in tables.items():
        rows = {}
        for model, spec in MODELS.items():
            if (models and model not in models) or spec.family == "ensemble":  # made of runs: benchmarks/collection.py
                continue
            big_table = len(table) > 20_000
            if model in BIG_MODELS and (quick or big_table):
                out["skipped"].append(f"{model} on {name}")
                continue
            regression = name == "diabetes"
            if ("regression" in spec.tasks) != regression and len(spec.tasks) < 3:
                continue  # ridge does regression only, logistic_regression classification only
            seeds = (0,) if quick or big_table else split_seeds_for(len(table), min_splits)
            rows[model] = run_one(table, target, model, seeds)
        out["datasets"][name] = {"rows": len(table), "models": rows}
        mlp, gb = rows.get("mlp"), rows.get("gradient_boosting")
        if mlp and gb and mlp["metric"] == "accuracy" and mlp["test"] is not None and gb["test"] is not None:
            gap = round(100 * (gb["test"] - mlp["test"]), 2)
            out["mlp_vs_gradient_boosting"][name] = {"mlp": mlp["test"], "gradient_boosting": gb["test"],
                                                     "gap_points": gap, "within_2_points": gap <= GAP_POINTS}
    return out
