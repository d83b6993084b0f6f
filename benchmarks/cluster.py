"""Cluster (issue 19): a sweep of a small MLP through the Ray executor on a local two-node cluster (one CPU core
each, tests/ray_cluster.py) against the same sweep on its head node alone: the wall-time ratio (target at least
1.6x); and the dispatch overhead of a run (from submit to its first epoch, less that epoch's own time) through the
Ray executor against a local worker that is already running. Both executors warm (their processes started and
imports done) before anything is timed: what is measured is dispatch, not start-up.

The store is SQLite on a temporary WORKBENCH_HOME that both nodes see (one machine). Standalone:
    python -m benchmarks.cluster [--trials N] [--rows N] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import tempfile
import time
from contextlib import contextmanager

TARGET_RATIO = 1.6
DISPATCH_SAMPLES = 3
QUICK = {"epochs": 1, "batch_size": 64}


@contextmanager
def environment(**values: str | None):
    """These environment variables (None: unset) for the block."""
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def wait_until(predicate, timeout_s: float = 600.0, poll_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError("the cluster benchmark waited too long")


def timed_sweep(store, dataset_id: str, trials: int, params: dict) -> dict:
    from workbench import jobs, sweeps
    from workbench.ray_executor import worker_node
    from workbench.runconfig import RunConfig
    from workbench.store import RunStatus

    config = sweeps.SweepConfig(RunConfig(dataset_id, "label", "mlp", params=params), n_trials=trials, prune=False)
    started = time.perf_counter()
    sweep = sweeps.submit_sweep(store, config)
    jobs.executor_for(store).ensure_running()
    sweep = wait_until(lambda: (s := store.get_sweep(sweep.id)).is_final and s)
    wall = time.perf_counter() - started
    runs = store.sweep_runs(sweep.id)
    return {"wall_s": round(wall, 2), "succeeded": sum(r.status == RunStatus.SUCCEEDED for r in runs),
            "nodes": len({worker_node(r.worker_id) for r in runs})}


def warm(store, dataset_id: str, runs: int) -> None:
    """Start the executor (the dispatcher, or a local worker) and a worker process on each node, imports done."""
    from workbench import jobs
    from workbench.runconfig import RunConfig

    ids = [jobs.submit_run(store, RunConfig(dataset_id, "label", "mlp", params=QUICK)).id for _ in range(runs)]
    jobs.executor_for(store).ensure_running()
    wait_until(lambda: all(r.is_final for r in store.get_runs(ids)))


def dispatch_overhead(store, dataset_id: str, params: dict) -> float:
    """Median over DISPATCH_SAMPLES runs of the seconds from submit to the first epoch's row, less that epoch."""
    from workbench import jobs
    from workbench.runconfig import RunConfig

    samples = []
    for _ in range(DISPATCH_SAMPLES):
        started = time.perf_counter()
        run_id = jobs.submit_run(store, RunConfig(dataset_id, "label", "mlp", params=params)).id
        jobs.executor_for(store).ensure_running()
        first = wait_until(lambda: store.epochs(run_id))[0]  # noqa: B023 (waited for before the next loop)
        samples.append(time.perf_counter() - started - (first.seconds or 0.0))
        wait_until(lambda: store.get_run(run_id, with_epochs=False).is_final)  # noqa: B023
    return round(statistics.median(samples), 3)


def measure(trials: int = 12, rows: int = 3000, epochs: int = 15) -> dict:
    from tests.conftest import make_classification_frame
    from tests.ray_cluster import LocalRayCluster
    from workbench import datasets
    from workbench.ray_executor import RayExecutor
    from workbench.store import Store

    params = {"epochs": epochs, "patience": 0, "batch_size": 64}
    cluster = LocalRayCluster()
    home = tempfile.mkdtemp(prefix="wb-cluster-bench-")
    common = {"WORKBENCH_HOME": home, "WORKBENCH_WORKERS": "1", "WORKBENCH_DATABASE_URL": None}
    try:
        cluster.add_node()
        with environment(**common, WORKBENCH_EXECUTOR="ray", RAY_ADDRESS=cluster.address):
            store = Store.from_settings()
            csv = make_classification_frame(n=rows).to_csv(index=False).encode()
            dataset_id = datasets.add_dataset(store, csv, "cluster.csv").dataset.id
            warm(store, dataset_id, 1)
            ray_dispatch = dispatch_overhead(store, dataset_id, QUICK)
            one_node = timed_sweep(store, dataset_id, trials, params)
            cluster.add_node()
            warm(store, dataset_id, 2)
            two_nodes = timed_sweep(store, dataset_id, trials, params)
            RayExecutor(store).stop()
        with environment(**common, WORKBENCH_EXECUTOR="local"):
            store = Store.from_settings()
            warm(store, dataset_id, 1)
            local_dispatch = dispatch_overhead(store, dataset_id, QUICK)
            for worker in store.live_workers():
                os.kill(worker.pid, signal.SIGTERM)
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
    ratio = round(one_node["wall_s"] / two_nodes["wall_s"], 2)
    return {"trials": trials, "rows": rows, "epochs": epochs, "one_node": one_node, "two_nodes": two_nodes,
            "ratio": ratio, "target_ratio": TARGET_RATIO, "met": ratio >= TARGET_RATIO,
            "dispatch_s": {"ray": ray_dispatch, "local": local_dispatch}, "load_avg_1m": round(os.getloadavg()[0], 2)}


def lines(result: dict) -> list[str]:
    one, two, dispatch = result["one_node"], result["two_nodes"], result["dispatch_s"]
    return [f"cluster: {result['trials']}-trial MLP sweep ({result['rows']:,} rows, {result['epochs']} epochs) on Ray: "
            f"1 node {one['wall_s']} s, 2 nodes {two['wall_s']} s -> {result['ratio']}x; dispatch (submit to first "
            f"epoch) ray {dispatch['ray']} s, local worker {dispatch['local']} s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    print(json.dumps(measure(args.trials, args.rows, args.epochs), indent=2))


if __name__ == "__main__":
    main()
