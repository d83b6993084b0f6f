"""12. Sweeps (issue 17): on the benchmark task (benchmarks.common.make_data, 50,000 rows), a 30-trial MLP sweep
against the MLP's defaults (validation accuracy of both; the best trial retrained with 5 repeats for a test score
with its interval); the same sampler and seed with and without pruning (wall time saved, best score of each); and
the sweep's overhead: the share of its wall time spent outside the trials' epochs (ask, tell, storage, reading and
preparing the table, scoring, saving), and outside the runs altogether (ask, tell, storage only).

One worker, in a fresh process with its own WORKBENCH_HOME:
    python -m benchmarks.sweeps [--rows N] [--trials N] [--epochs N] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

TRIALS = 30
PRUNING_SAVES = 0.40  # at least this share of the unpruned sweep's wall time
OVERHEAD_SHARE = 0.05  # at most this share of the sweep's wall time outside training


def table(rows: int) -> bytes:
    from benchmarks.common import make_data

    data = make_data(rows)
    x = pd.DataFrame(data.x_train, columns=[f"x{i}" for i in range(data.x_train.shape[1])])
    return x.assign(label=data.y_train).to_csv(index=False).encode()


def child(rows: int, trials: int, epochs: int | None, repeats: int) -> dict:
    from workbench import datasets, groups, jobs, sweeps
    from workbench.runconfig import RunConfig
    from workbench.store import Store

    store = Store.from_settings()
    dataset_id = datasets.add_dataset(store, table(rows), "sweeps.csv").dataset.id
    worker = store.register_worker()
    fixed = {"epochs": epochs} if epochs else {}
    defaults = jobs.run_in_foreground(store, jobs.submit_run(store, RunConfig(dataset_id, "label", "mlp",
                                                                              params=dict(fixed))))

    def timed_sweep(prune: bool) -> dict:
        config = sweeps.SweepConfig(RunConfig(dataset_id, "label", "mlp", params=dict(fixed)), n_trials=trials,
                                    prune=prune, seed=0)
        started = time.perf_counter()
        sweep = sweeps.run_sweep(store, sweeps.submit_sweep(store, config).id, worker.id, poll_s=0.05)
        wall = time.perf_counter() - started
        summary = sweeps.sweep_summary(store, sweep.id)
        runs = store.get_runs([t.run_id for t in summary.trials if t.run_id])
        epochs_s = sum(e.seconds or 0 for r in runs for e in r.epochs)
        runs_s = sum(r.duration_s or 0 for r in runs)
        return {"sweep_id": sweep.id, "wall_s": round(wall, 2), "best_val": summary.best.value if summary.best else None,
                "best_params": summary.best.params if summary.best else None, "n_complete": summary.n_complete,
                "n_pruned": summary.n_pruned, "n_failed": summary.n_failed,
                "outside_epochs_share": round(1 - epochs_s / wall, 4),
                "outside_runs_share": round(1 - runs_s / wall, 4)}

    pruned, unpruned = timed_sweep(True), timed_sweep(False)
    group, _ = sweeps.retrain_best(store, pruned["sweep_id"], repeats=repeats)
    jobs.run_worker(store, once=True)
    summary = groups.summarize(store.get_group(group.id), store.group_runs(group.id))
    test = summary.metrics.get("accuracy")
    saved = 1 - pruned["wall_s"] / unpruned["wall_s"]
    return {
        "rows": rows, "trials": trials, "epochs": epochs or "default", "metric": "accuracy",
        "defaults": {"val": defaults.metrics.get("val", {}).get("accuracy"),
                     "test": defaults.metrics.get("test", {}).get("accuracy"), "seconds": defaults.duration_s},
        "pruned": pruned, "unpruned": unpruned,
        "best_retrained": {"repeats": repeats, "test_mean": test.mean if test else None,
                           "test_ci": [test.ci_low, test.ci_high] if test else None},
        "pruning_saved": round(saved, 3), "target_pruning_saved": PRUNING_SAVES,
        "overhead_share": pruned["outside_epochs_share"], "target_overhead_share": OVERHEAD_SHARE,
        "met": bool(saved >= PRUNING_SAVES and pruned["outside_epochs_share"] <= OVERHEAD_SHARE
                    and (pruned["best_val"] or 0) > (defaults.metrics.get("val", {}).get("accuracy") or 1)),
    }


def measure(rows: int = 50_000, trials: int = TRIALS, epochs: int | None = None, repeats: int = 5) -> dict:
    from benchmarks.common import run_in_child

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, WORKBENCH_HOME=str(Path(tmp) / "home"), WORKBENCH_WORKERS="1")
        env.pop("WORKBENCH_DATABASE_URL", None)
        args = ["--rows", str(rows), "--trials", str(trials), "--repeats", str(repeats)]
        return run_in_child("benchmarks.sweeps", args + (["--epochs", str(epochs)] if epochs else []), env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--epochs", type=int, help="fix the most epochs (default: the MLP's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    run = child if args.child else measure
    print(json.dumps(run(args.rows, args.trials, args.epochs, args.repeats)))


if __name__ == "__main__":
    main()
