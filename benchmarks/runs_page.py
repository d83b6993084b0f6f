"""6. Render time of the Runs & Compare page with 500 finished runs in the store, in 100 run groups of 5 repeats
(streamlit AppTest): the runs table, the groups table with each group's mean and interval, and the leaderboard.

Run in a fresh process (its own WORKBENCH_HOME and Streamlit caches):
    python -m benchmarks.runs_page [--runs N]
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("mlp", "linear", "gradient_boosting", "random_forest", "transformer")


def fill(store, n_runs: int, epochs: int = 20, seed: int = 0, group_size: int = 5) -> float:
    """n_runs finished runs with epochs, metrics, intervals and curves as a worker leaves them, in run groups of
    `group_size` repeats on the dataset's real fold assignments; returns seconds taken."""
    from workbench import datasets
    from workbench.evaluation import assignment_seed, fold_assignments
    from workbench.runconfig import RunConfig
    from workbench.store import EpochMetrics, RunResult, RunStatus

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    points = rng.normal(size=(300, 2))
    csv = "".join(f"{a:.3f},{b:.3f},{'yes' if a + b > 0 else 'no'}\n" for a, b in points)
    dataset = datasets.add_dataset(store, ("x1,x2,label\n" + csv).encode(), "bench.csv").dataset
    labels = np.where(points.round(3).sum(axis=1) > 0, "yes", "no")
    assignment = fold_assignments(labels, group_size, assignment_seed(dataset.id, "label"), "binary")
    members = [assignment.member_name(*m) for m in assignment.members]
    queued = []
    for g in range(n_runs // group_size):
        model = MODELS[g % len(MODELS)]
        params = {"lr": float(10 ** rng.uniform(-4, -2)), "batch_size": int(rng.choice([128, 256, 512]))}
        config = RunConfig(dataset_id=dataset.id, target="label", model=model, params=params)
        _, runs = store.create_group({**config.to_dict(), "repeats": group_size}, model, "label", "binary",
                                     [(m, config.to_dict(), params) for m in members], assignment.to_dict(),
                                     assignment.test_share())
        queued += runs
    for run in queued:
        accuracy = float(rng.uniform(0.7, 0.95))
        for epoch in range(1, epochs + 1):
            store.record_epoch(run.id, EpochMetrics(epoch, 0.7 / epoch ** 0.5, 0.75 / epoch ** 0.4,
                                                    accuracy - 0.2 / epoch, 1e-3, 0.05))
        grid = np.linspace(0, 1, 50)
        tpr = grid ** 0.3
        curves = {"labels": ["no", "yes"], "confusion_matrix": [[40, 5], [6, 39]],
                  "roc": [{"label": "yes", "fpr": grid.round(4).tolist(), "tpr": tpr.round(4).tolist(), "auc": 0.9}],
                  "pr": [{"label": "yes", "recall": grid.round(4).tolist(), "precision": (1 - 0.3 * grid).round(4).tolist(),
                          "average_precision": 0.88}]}
        test = {"accuracy": accuracy, "balanced_accuracy": accuracy - 0.01, "f1": accuracy - 0.02,
                "roc_auc": min(accuracy + 0.04, 1.0), "log_loss": float(rng.uniform(0.2, 0.5))}
        store.finish_run(run.id, RunResult(RunStatus.SUCCEEDED, primary_metric="accuracy", primary_value=accuracy,
                                           split_fingerprint=f"fp-bench-{run.member}",
                                           metrics={"val": test, "test": test},
                                           intervals={"test": {k: [v - 0.05, min(v + 0.05, 1.0)] for k, v in
                                                               test.items()}},
                                           baseline={"test": {"accuracy": 0.5, "log_loss": 0.69}}, curves=curves,
                                           duration_s=float(rng.uniform(1, 60)), epochs_done=epochs))
    return time.perf_counter() - started


def render(repeats: int = 3) -> list[float]:
    from streamlit.testing.v1 import AppTest

    times = []
    for _ in range(repeats):
        at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=120)
        started = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - started)
        if at.exception:
            raise RuntimeError(f"the runs page raised: {at.exception[0].value}")
    return times


def child(n_runs: int) -> dict:
    from workbench.store import Store

    store = Store.from_settings()
    fill_s = fill(store, n_runs)
    times = render()
    return {"runs": store.count_runs(), "groups": len(store.list_groups()), "fill_s": round(fill_s, 1), "first_render_s": round(times[0], 3),
            "warm_render_s": round(min(times[1:]), 3), "renders_s": [round(t, 3) for t in times], "target_s": 2.0,
            "met": times[0] < 2.0}


def measure(runs: int = 500) -> dict:
    from benchmarks.common import run_in_child

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, WORKBENCH_HOME=str(Path(tmp) / "home"))
        env.pop("WORKBENCH_DATABASE_URL", None)
        return run_in_child("benchmarks.runs_page", ["--runs", str(runs)], env)


def main() -> None:
    from benchmarks.common import child_process_main

    child_process_main("runs", 500, child, measure)


if __name__ == "__main__":
    main()
