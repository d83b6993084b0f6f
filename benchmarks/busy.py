"""Training on a busy machine (issue 21): the default MLP's training step on this machine otherwise idle, and with
one other CPU-bound process running beside it (a spinning Python process, as another user's job would be). Target:
a step takes at most 2.5x its idle time. Each side is measured in a fresh child process started as a worker is
(`python -m`, which sets the OpenMP waiting policy: workbench.hugepages.passive_openmp_threads), as the best of a few
one-epoch fits.

    python -m benchmarks.busy [--rows N]
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

from benchmarks.common import child_process_main, run_in_child

ROWS = 20_000
REPEATS = 3
TARGET_RATIO = 2.5


def child(rows: int) -> dict:
    import torch

    from benchmarks.common import make_data, mlp_params, ours

    data = make_data(rows)
    params = mlp_params(epochs=1, patience=0)
    best = math.inf
    for _ in range(REPEATS):
        _, result, seconds = ours(data, params, "cpu")
        best = min(best, seconds / math.ceil(len(data.x_train) / result.batch_size))
    return {"step_ms": round(best * 1000, 3), "batch_size": result.batch_size, "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}


def measure(rows: int = ROWS) -> dict:
    from workbench.hugepages import passive_openmp_threads

    passive_openmp_threads()  # the children inherit it, as a worker started by `python -m workbench` has it
    load = round(os.getloadavg()[0], 2)
    idle = run_in_child("benchmarks.busy", ["--rows", str(rows)])
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = run_in_child("benchmarks.busy", ["--rows", str(rows)])
    finally:
        spinner.kill()
        spinner.wait()
    ratio = busy["step_ms"] / idle["step_ms"]
    return {"rows": rows, "load_avg_1m_before": load, "idle": idle, "busy": busy, "ratio": round(ratio, 2),
            "target_ratio": TARGET_RATIO, "met": bool(ratio <= TARGET_RATIO)}


if __name__ == "__main__":
    child_process_main("rows", ROWS, child, measure)
