"""8. Repeats: 5 repeats of the default MLP on a 10,000-row table against one run, with one worker (issue 16: at
most 5.5x one run's time; no set-up repeated per member beyond reading the table), and the same on two workers
(issue 16: less than with one).

Both are timed end to end as the worker does them (claim, read the table, prepare, train, score with intervals,
save), in a fresh process with its own WORKBENCH_HOME:
    python -m benchmarks.repeats [--rows N]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TARGET_RATIO = 5.5
REPEATS = 5


def table(rows: int, seed: int = 0) -> bytes:
    """Numeric and categorical features with a non-linear binary target."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 8))
    colour = rng.choice(["red", "green", "blue", "grey"], size=rows)
    score = x[:, 0] * x[:, 1] + np.sin(2 * x[:, 2]) + np.where(colour == "red", 0.8, 0) + rng.normal(0, 0.5, rows)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(8)]).assign(colour=colour, label=np.where(score > 0, "a", "b"))
    return frame.to_csv(index=False).encode()


def child(rows: int) -> dict:
    from workbench import datasets, jobs
    from workbench.runconfig import RunConfig
    from workbench.store import RunStatus, Store

    store = Store.from_settings()
    dataset_id = datasets.add_dataset(store, table(rows), "repeats.csv").dataset.id

    def timed(config: RunConfig) -> float:
        jobs.submit_run(store, config)
        started = time.perf_counter()
        jobs.run_worker(store, once=True)
        return time.perf_counter() - started

    def timed_on_two_workers(config: RunConfig) -> float:
        """Two worker processes, as the app starts with WORKBENCH_WORKERS=2, each on its share of the cores."""
        jobs.submit_run(store, config)
        env = dict(os.environ, WORKBENCH_WORKERS="2")
        started = time.perf_counter()
        workers = [subprocess.Popen([sys.executable, "-m", "workbench", "worker", "--once"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        for worker in workers:
            worker.wait()
        return time.perf_counter() - started

    single_s = timed(RunConfig(dataset_id, "label", "mlp"))
    group_s = timed(RunConfig(dataset_id, "label", "mlp", repeats=REPEATS))
    two_workers_s = timed_on_two_workers(RunConfig(dataset_id, "label", "mlp", repeats=REPEATS,
                                                   params={"seed": 1}))
    runs = store.list_runs()
    assert all(r.status == RunStatus.SUCCEEDED for r in runs), [r.error for r in runs]
    first_group = min((r for r in runs if r.group_id), key=lambda r: r.created_at).group_id
    members = [r for r in runs if r.group_id == first_group]
    single = next(r for r in runs if not r.group_id)
    ratio = group_s / single_s
    return {"rows": rows, "repeats": REPEATS, "members": len(members), "workers": 1, "single_s": round(single_s, 2),
            "group_s": round(group_s, 2), "ratio": round(ratio, 2), "target_ratio": TARGET_RATIO,
            "met": ratio <= TARGET_RATIO, "two_workers_group_s": round(two_workers_s, 2),
            "two_workers_ratio": round(two_workers_s / single_s, 2), "two_workers_faster": two_workers_s < group_s,
            "single_epochs": single.epochs_done,
            "member_epochs": [r.epochs_done for r in members],
            "member_train_s": [round(r.duration_s or 0, 2) for r in members],
            "single_train_s": round(single.duration_s or 0, 2)}


def measure(rows: int = 10_000) -> dict:
    from benchmarks.common import run_in_child

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, WORKBENCH_HOME=str(Path(tmp) / "home"), WORKBENCH_WORKERS="1")
        env.pop("WORKBENCH_DATABASE_URL", None)
        return run_in_child("benchmarks.repeats", ["--rows", str(rows)], env)


def main() -> None:
    from benchmarks.common import child_process_main

    child_process_main("rows", 10_000, child, measure)


if __name__ == "__main__":
    main()
