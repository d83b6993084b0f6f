"""4(b) Peak RSS of a training run (runner.execute, MLP, 1 epoch) on a 1M-row table vs the table's in-memory size.

Run in a fresh process so the peak is that of this run alone:
    python -m benchmarks.train_memory [--rows N]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_table(rows: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    columns = {f"num_{i}": rng.normal(size=rows).round(4) for i in range(12)}
    for i in range(4):
        columns[f"int_{i}"] = rng.integers(0, 1000, rows)
    for i in range(3):
        cats = np.array([f"cat_{k}" for k in range(5 + 10 * i)])
        columns[f"cat_{i}"] = pd.Categorical(cats[rng.integers(0, len(cats), rows)])
    columns["label"] = np.where(columns["num_0"] + rng.normal(size=rows) > 0, "yes", "no")
    return pd.DataFrame(columns)


def child(rows: int) -> dict:
    from benchmarks.common import peak_rss_mb, rss_mb
    from workbench.runconfig import RunConfig
    from workbench.runner import execute

    config = RunConfig(dataset_id="bench", target="label", model="mlp", params={"epochs": 1})
    with tempfile.TemporaryDirectory() as tmp:
        # A first, tiny run loads what any run needs (library code, thread pools, allocator arenas: ~100-200 MB
        # whatever the table's size), so the figures below are what this table's size costs.
        execute(config, make_table(5_000), Path(tmp) / "warm-up")
        warm = rss_mb()
        table = make_table(rows)
        table_mb = table.memory_usage(deep=True).sum() / 2**20
        with_table = rss_mb()
        started = time.perf_counter()
        outcome = execute(config, table, Path(tmp) / "run")
        seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    return {"rows": rows, "columns": table.shape[1], "status": outcome.status, "table_mb": round(table_mb, 1),
            "rss_after_warm_up_mb": warm, "rss_with_table_mb": with_table, "peak_rss_mb": peak,
            "training_overhead_mb": round(peak - with_table, 1),
            "overhead_over_table": round((peak - with_table) / table_mb, 2), "seconds": round(seconds, 1)}


def measure(rows: int = 1_000_000) -> dict:
    from benchmarks.common import run_in_child

    return run_in_child("benchmarks.train_memory", ["--rows", str(rows)])


def main() -> None:
    from benchmarks.common import child_process_main

    child_process_main("rows", 1_000_000, child, measure)


if __name__ == "__main__":
    main()
