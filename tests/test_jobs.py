"""Background training with real worker processes, on a SQLite file and on a PostgreSQL server (the workers
reach it through WORKBENCH_DATABASE_URL)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import writes_held
from workbench import datasets, jobs
from workbench.errors import UserError
from workbench.models.registry import get_model
from workbench.runconfig import RunConfig
from workbench.store import RunResult, RunStatus, Store

pytestmark = pytest.mark.usefixtures("database")
ROOT = Path(__file__).resolve().parents[1]
FAST = {"epochs": 3, "batch_size": 64}


def start_worker(home: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workbench", "worker", *args], cwd=ROOT,
                            env=dict(os.environ, WORKBENCH_HOME=str(home), **env),
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
    assert run.status == RunStatus.QUEUED and run.config["model"] == "mlp"


def test_five_queued_runs_all_complete(store, home, dataset_id):
    ids = [queue(store, dataset_id, model) for model in
           ("mlp", "linear", "logistic_regression", "random_forest", "gradient_boosting")]
    worker = start_worker(home, "--once")
    out, _ = worker.communicate(timeout=300)
    assert worker.returncode == 0, out
    runs = store.get_runs(ids)
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 5, [(r.status, r.error) for r in runs]
    assert all(r.metrics["test"] for r in runs)
    mlp = runs[0]
    assert [e.epoch for e in mlp.epochs] == list(range(1, mlp.epochs_done + 1))


def test_twenty_runs_two_workers_each_run_exactly_once(store, home, dataset_id):
    """Both workers are made to go for the same run at the same moment: they are idle when all twenty runs
    are queued at once, and another connection then holds the database while both select the oldest run, so
    both updates wait and then race. Every claim a worker makes is in its log: each run is claimed once."""
    ids = [queue(store, dataset_id, "logistic_regression") for _ in range(20)]
    for run_id in ids:  # parked until both workers are idle; queued again below, in one transaction
        store.request_cancel(run_id)
    workers = [start_worker(home) for _ in range(2)]
    try:
        wait_for(lambda: len(store.live_workers()) == 2, timeout=120)
        requeue = (f"UPDATE runs SET status = '{RunStatus.QUEUED.value}', finished_at = NULL, error = NULL "
                   f"WHERE status = '{RunStatus.CANCELLED.value}'")
        with writes_held(store.settings.database_url, first=requeue):
            time.sleep(2.0)  # > the idle poll: both workers have selected the oldest run and wait to update it
        wait_for(lambda: all(r.is_final for r in store.get_runs(ids)), timeout=300)
    finally:
        for worker in workers:
            worker.terminate()
    outputs = [w.communicate(timeout=60)[0] for w in workers]
    claims = Counter(run_id for out in outputs for run_id in re.findall(r"claimed run (\w+)", out))
    assert claims == Counter(ids), outputs  # each run claimed exactly once, by one worker
    runs = store.get_runs(ids)
    assert all(r.status == RunStatus.SUCCEEDED for r in runs), [(r.status, r.error) for r in runs]
    assert len({r.worker_id for r in runs}) == 2


def test_cancel_stops_a_long_run_in_seconds(store, home, big_dataset_id):
    run_id = queue(store, big_dataset_id, "mlp", epochs=10_000, batch_size=32, patience=10_000)
    worker = start_worker(home)
    try:
        wait_for(lambda: store.get_run(run_id, with_epochs=False).epochs_done >= 1, timeout=120)
        asked = time.monotonic()
        jobs.cancel_run(store, run_id)
        run = wait_for(lambda: (r := store.get_run(run_id)).status == RunStatus.CANCELLED and r, timeout=30)
        elapsed = time.monotonic() - asked
        assert elapsed < 10, f"cancel took {elapsed:.1f}s"
        assert run.epochs, "history so far is kept"
    finally:
        worker.terminate()
        # communicate, not wait: a worker blocked writing to a full stdout pipe would never exit.
        out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 128 + signal.SIGTERM, out


def test_killed_worker_leaves_run_interrupted(store, home, big_dataset_id, dataset_id):
    long_run = queue(store, big_dataset_id, "mlp", epochs=10_000, batch_size=32, patience=10_000)
    worker = start_worker(home)
    wait_for(lambda: store.get_run(long_run, with_epochs=False).status == RunStatus.RUNNING, timeout=120)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    assert store.get_run(long_run).status == RunStatus.RUNNING  # reads never decide that: recovery does
    at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=60).run()  # a page load recovers
    assert not at.exception
    assert list(at.dataframe[0].value["Status"]) == [RunStatus.INTERRUPTED]
    run = store.get_run(long_run)
    assert run.status == RunStatus.INTERRUPTED
    assert "stopped unexpectedly" in run.error
    # A new worker goes on with the queue.
    next_run = queue(store, dataset_id, "logistic_regression")
    again = start_worker(home, "--once")
    again.communicate(timeout=120)
    assert store.get_run(next_run).status == RunStatus.SUCCEEDED
    assert store.get_run(long_run).status == RunStatus.INTERRUPTED


def test_a_worker_that_dies_is_found_by_the_cli_and_by_the_other_worker(store, home, big_dataset_id):
    """No page open: `show` recovers the run of a killed worker; so does a live worker's heartbeat."""
    first = queue(store, big_dataset_id, "mlp", epochs=10_000, batch_size=32, patience=10_000)
    doomed = start_worker(home)
    wait_for(lambda: store.get_run(first, with_epochs=False).status == RunStatus.RUNNING, timeout=120)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    shown = subprocess.run([sys.executable, "-m", "workbench", "show", first, "--json"], cwd=ROOT, text=True,
                           capture_output=True, timeout=60, env=dict(os.environ, WORKBENCH_HOME=str(home)))
    assert json.loads(shown.stdout)["status"] == RunStatus.INTERRUPTED, shown.stderr
    second = queue(store, big_dataset_id, "mlp", epochs=10_000, batch_size=32, patience=10_000)
    survivor, doomed = start_worker(home), start_worker(home)
    try:
        wait_for(lambda: store.get_run(second, with_epochs=False).status == RunStatus.RUNNING, timeout=120)
        trainer = store.get_run(second, with_epochs=False).worker_id
        pid = next(w.pid for w in store.live_workers() if w.id == trainer)
        os.kill(pid, signal.SIGKILL)
        # The other worker's heartbeat finds it within a beat or two.
        wait_for(lambda: store.get_run(second, with_epochs=False).status == RunStatus.INTERRUPTED, timeout=30)
    finally:
        for process in (survivor, doomed):
            process.terminate()
            process.wait(timeout=30)


def test_failing_run_is_recorded_and_next_run_completes(store, home, dataset_id, binary_frame):
    broken = datasets.add_dataset(store, binary_frame.head(300).to_csv(index=False).encode(), "broken.csv").dataset
    bad_run = queue(store, broken.id, "logistic_regression")
    (store.settings.datasets_dir / broken.file_name).write_bytes(b"this is not parquet")
    good_run = queue(store, dataset_id, "logistic_regression")
    worker = start_worker(home, "--once")
    worker.communicate(timeout=120)
    bad, good = store.get_run(bad_run), store.get_run(good_run)
    assert bad.status == RunStatus.FAILED and bad.error
    assert good.status == RunStatus.SUCCEEDED


def test_reading_progress_while_the_worker_writes(store, home, big_dataset_id):
    run_id = queue(store, big_dataset_id, "mlp", epochs=4, batch_size=64)
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
            if data["status"] == RunStatus.RUNNING:
                assert "progress" in data and data["progress"]["epochs_planned"] == 4
        store.list_runs()
        reads += 1
    assert errors == []
    assert reads > 0
    assert store.get_run(run_id).status == RunStatus.SUCCEEDED


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
        wait_for(lambda: store.get_run(run_id, with_epochs=False).status == RunStatus.RUNNING, timeout=60)
        shown = json.loads(cli("show", run_id, "--json").stdout)
        assert shown["status"] == RunStatus.RUNNING and "progress" in shown
        assert cli("cancel", run_id).returncode == 0
        wait_for(lambda: store.get_run(run_id, with_epochs=False).status == RunStatus.CANCELLED, timeout=30)
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
        wait_for(lambda: store.get_run(run_id, with_epochs=False).status == RunStatus.SUCCEEDED, timeout=60)
    finally:
        for worker in store.live_workers():
            os.kill(worker.pid, signal.SIGTERM)
    wait_for(lambda: not store.live_workers(), timeout=30)


def test_a_run_survives_the_database_being_held_longer_than_the_busy_timeout(store, home, big_dataset_id):
    """Another program holds the database for 3 s while a run trains, 15 times one attempt's wait: the worker's
    heartbeats and epoch rows wait and retry, and the run still succeeds with every epoch recorded."""
    run_id = queue(store, big_dataset_id, "mlp", epochs=4, batch_size=64, patience=10_000)
    worker = start_worker(home, "--once", WORKBENCH_DB_BUSY_TIMEOUT_S="0.2", WORKBENCH_DB_RETRY_S="60")
    wait_for(lambda: store.get_run(run_id, with_epochs=False).epochs_done >= 1, timeout=120)
    with writes_held(store.settings.database_url):
        time.sleep(3.0)
    out, _ = worker.communicate(timeout=300)
    run = store.get_run(run_id)
    assert run.status == RunStatus.SUCCEEDED, (run.error, out)
    assert [e.epoch for e in run.epochs] == list(range(1, run.epochs_done + 1))


def test_worker_start_sweeps_half_written_models_of_runs_that_are_not_running(store, home, dataset_id):
    """A worker killed while saving leaves `runs/.RUNID-xxxx`: the next worker removes those of runs that are not
    running, and leaves a running run's (another worker may be saving it right now) and everything else."""
    ended, running = queue(store, dataset_id, "logistic_regression"), queue(store, dataset_id, "logistic_regression")
    store.start_run(ended, "w-gone")
    store.finish_run(ended, RunResult(RunStatus.INTERRUPTED, error="killed while saving"))
    store.start_run(running, store.register_worker().id)  # this test process: a live worker
    runs_dir = home / "runs"
    leftovers = [runs_dir / f".{ended}-k1ll3d", runs_dir / f".{'ab' * 6}-0rphan"]  # an ended run, a deleted one
    kept = [runs_dir / f".{running}-sav1ng", runs_dir / ended, runs_dir / "notes"]
    for folder in leftovers + kept:
        folder.mkdir(parents=True)
        (folder / "weights.safetensors").write_bytes(b"half")
    worker = start_worker(home, "--once")
    out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, out
    assert [f for f in leftovers if f.exists()] == []
    assert all(f.is_dir() for f in kept)


def test_deleting_a_run_removes_its_half_written_model_too(store, home, dataset_id):
    run_id, neighbour = queue(store, dataset_id, "logistic_regression"), queue(store, dataset_id, "logistic_regression")
    for r in (run_id, neighbour):
        store.request_cancel(r)
    folders = [home / "runs" / run_id, home / "runs" / f".{run_id}-k1ll3d", home / "runs" / f".{neighbour}-s4v1ng"]
    for folder in folders:
        folder.mkdir(parents=True)
    jobs.delete_run(store, run_id)
    assert [f.exists() for f in folders] == [False, False, True]


def test_a_worker_reads_an_unchanged_table_once_and_a_changed_file_again(store, dataset_id, binary_frame):
    first = jobs.read_table(store, dataset_id)
    assert jobs.read_table(store, dataset_id) is first
    path = store.settings.datasets_dir / store.get_dataset(dataset_id).file_name
    binary_frame.head(100).to_parquet(path)  # the file replaced behind the store's back
    again = jobs.read_table(store, dataset_id)
    assert again is not first and len(again) == 100
    path.unlink()
    with pytest.raises(UserError, match="missing"):
        jobs.read_table(store, dataset_id)
