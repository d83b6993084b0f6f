"""Background training with real worker processes on a real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import datasets, jobs
from workbench.models.registry import get_model
from workbench.runconfig import RunConfig
from workbench.store import Store

ROOT = Path(__file__).resolve().parents[1]
FAST = {"epochs": 3, "batch_size": 64}


def start_worker(home: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, WORKBENCH_HOME=str(home))
    return subprocess.Popen([sys.executable, "-m", "workbench", "worker", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture
def dataset_id(store, binary_frame):
    return datasets.add_dataset(store, binary_frame.to_csv(index=False).encode(), "binary.csv").dataset.id


@pytest.fixture
def big_dataset_id(store):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20_000, 10)), columns=[f"x{i}" for i in range(10)])
    frame["label"] = np.where(frame["x0"] + rng.normal(size=len(frame)) > 0, "a", "b")
    return datasets.add_dataset(store, frame.to_csv(index=False).encode(), "big.csv").dataset.id


def queue(store: Store, dataset_id: str, model: str = "mlp", **params) -> str:
    if not params and get_model(model).family == "neural":
        params = dict(FAST)
    config = RunConfig(dataset_id=dataset_id, target="label", model=model, params=params)
    return jobs.submit_run(store, config).id


def test_submit_returns_queued_at_once(store, dataset_id):
    run = store.get_run(queue(store, dataset_id))
    assert run.status == "queued" and run.config["model"] == "mlp"


def test_five_queued_runs_all_complete(store, home, dataset_id):
    ids = [queue(store, dataset_id, model) for model in
           ("mlp", "linear", "logistic_regression", "random_forest", "gradient_boosting")]
    worker = start_worker(home, "--once")
    out, _ = worker.communicate(timeout=300)
    assert worker.returncode == 0, out
    runs = store.get_runs(ids)
    assert [r.status for r in runs] == ["succeeded"] * 5, [(r.status, r.error) for r in runs]
    assert all(r.metrics["test"] for r in runs)
    mlp = runs[0]
    assert [e.epoch for e in mlp.epochs] == list(range(1, mlp.epochs_done + 1))


def test_twenty_runs_two_workers_each_run_exactly_once(store, home, dataset_id):
    ids = [queue(store, dataset_id, "logistic_regression") for _ in range(20)]
    workers = [start_worker(home, "--once") for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    processed = [int(o.strip().splitlines()[-1].split()[2]) for o in outputs]
    assert sum(processed) == 20, outputs  # each run exactly once
    runs = store.get_runs(ids)
    assert all(r.status == "succeeded" for r in runs)
    assert len({r.worker_id for r in runs}) <= 2


def test_cancel_stops_a_long_run_in_seconds(store, home, big_dataset_id):
    run_id = queue(store, big_dataset_id, "mlp", epochs=10_000, batch_size=32, patience=10_000)
    worker = start_worker(home)
    try:
        wait_for(lambda: store.get_run(run_id, with_epochs=False).epochs_done >= 1, timeout=120)
        asked = time.monotonic()
        jobs.cancel_run(store, run_id)
        run = wait_for(lambda: (r := store.get_run(run_id)).status == "cancelled" and r, timeout=30)
        elapsed = time.monotonic() - asked
        assert elapsed < 10, f"cancel took {elapsed:.1f}s"
        assert run.epochs, "history so far is kept"
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_killed_worker_leaves_run_interrupted(store, home, big_dataset_id, dataset_id):
    long_run = queue(store, big_dataset_id, "mlp", epochs=10_000, batch_size=32, patience=10_000)
    worker = start_worker(home)
    wait_for(lambda: store.get_run(long_run, with_epochs=False).status == "running", timeout=120)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    run = store.get_run(long_run)
    assert run.status == "interrupted"
    assert "stopped unexpectedly" in run.error
    # A new worker goes on with the queue.
    next_run = queue(store, dataset_id, "logistic_regression")
    again = start_worker(home, "--once")
    again.communicate(timeout=120)
    assert store.get_run(next_run).status == "succeeded"
    assert store.get_run(long_run).status == "interrupted"


def test_failing_run_is_recorded_and_next_run_completes(store, home, dataset_id, binary_frame):
    broken = datasets.add_dataset(store, binary_frame.head(300).to_csv(index=False).encode(), "broken.csv").dataset
    bad_run = queue(store, broken.id, "logistic_regression")
    (store.settings.datasets_dir / broken.file_name).write_bytes(b"this is not parquet")
    good_run = queue(store, dataset_id, "logistic_regression")
    worker = start_worker(home, "--once")
    worker.communicate(timeout=120)
    bad, good = store.get_run(bad_run), store.get_run(good_run)
    assert bad.status == "failed" and bad.error
    assert good.status == "succeeded"


def test_reading_progress_while_the_worker_writes(store, home, big_dataset_id):
    run_id = queue(store, big_dataset_id, "mlp", epochs=6, batch_size=32)
    env = dict(os.environ, WORKBENCH_HOME=str(home))
    worker = start_worker(home, "--once")
    errors, reads = [], 0
    while worker.poll() is None:
        shown = subprocess.run([sys.executable, "-m", "workbench", "show", run_id, "--json"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=60)
        if shown.returncode != 0:
            errors.append(shown.stderr)
        else:
            data = json.loads(shown.stdout)
            if data["status"] == "running":
                assert "progress" in data and data["progress"]["epochs_planned"] == 6
        store.list_runs()
        reads += 1
    assert errors == []
    assert reads > 0
    assert store.get_run(run_id).status == "succeeded"


def test_cli_background_train_show_and_cancel(home, dataset_id, store):
    env = dict(os.environ, WORKBENCH_HOME=str(home))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)

    queued = cli("train", "--dataset", dataset_id, "--target", "label", "--model", "mlp",
                 "--set", "epochs=10000", "--set", "patience=10000", "--background", "--json")
    assert queued.returncode == 0, queued.stderr
    run_id = json.loads(queued.stdout)["run_id"]
    try:
        wait_for(lambda: store.get_run(run_id, with_epochs=False).status == "running", timeout=60)
        shown = json.loads(cli("show", run_id, "--json").stdout)
        assert shown["status"] == "running" and "progress" in shown
        assert cli("cancel", run_id).returncode == 0
        wait_for(lambda: store.get_run(run_id, with_epochs=False).status == "cancelled", timeout=30)
        assert cli("cancel", run_id).returncode == 2  # already ended: a user error
    finally:
        for worker in store.live_workers():
            os.kill(worker.pid, signal.SIGTERM)


def test_the_app_starts_one_worker_per_home(store, home, dataset_id):
    executor = jobs.LocalExecutor(store)
    try:
        assert executor.ensure_running() is True
        assert executor.ensure_running() is False  # found by its heartbeat, not started twice
        assert len(store.live_workers()) == 1
        run_id = queue(store, dataset_id, "logistic_regression")
        wait_for(lambda: store.get_run(run_id, with_epochs=False).status == "succeeded", timeout=60)
    finally:
        for worker in store.live_workers():
            os.kill(worker.pid, signal.SIGTERM)
    wait_for(lambda: not store.live_workers(), timeout=30)
