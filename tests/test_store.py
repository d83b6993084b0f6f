"""The store on a real SQLite file: settings, pragmas, datasets, runs, the queue and recovery."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import text

from workbench.store import Store
from workbench.store.api import utcnow


def test_sqlite_file_under_home_with_wal_and_foreign_keys(store, home):
    assert (home / "workbench.db").is_file()
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000


def test_database_url_overrides_the_file(tmp_path, monkeypatch, home):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", url)
    s = Store.from_settings()
    s.list_datasets()
    s.close()
    assert (tmp_path / "elsewhere.db").is_file()
    assert not (home / "workbench.db").exists()


def add_dataset(store):
    from workbench.datasets import add_dataset

    return add_dataset(store, b"a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n", "tiny.csv").dataset


def queue_run(store, dataset_id, model="mlp"):
    config = {"dataset_id": dataset_id, "target": "label", "model": model}
    return store.create_run(config, model=model, target="label", task="binary", params={})


def test_dataset_round_trip_returns_dataclasses(store):
    d = add_dataset(store)
    got = store.get_dataset(d.id)
    assert got == d
    assert [x.id for x in store.list_datasets()] == [d.id]


def test_claim_is_compare_and_set(store):
    d = add_dataset(store)
    run = queue_run(store, d.id)
    first = store.start_run(run.id, "w1")
    second = store.start_run(run.id, "w2")
    assert first is not None and first.status == "running" and first.worker_id == "w1"
    assert second is None


def test_queue_is_first_in_first_out(store):
    d = add_dataset(store)
    ids = [queue_run(store, d.id).id for _ in range(3)]
    worker = store.register_worker()
    claimed = [store.claim_next_run(worker.id).id for _ in range(3)]
    assert claimed == ids
    assert store.claim_next_run(worker.id) is None


def test_epochs_and_progress(store):
    from workbench.store import EpochMetrics

    d = add_dataset(store)
    run = queue_run(store, d.id)
    worker = store.register_worker()
    store.start_run(run.id, worker.id)
    store._update(run.id, epochs_planned=10, batches_per_epoch=4)
    store.record_epoch(run.id, EpochMetrics(1, 0.9, 0.8, 0.6, 1e-3, 0.1))
    store.heartbeat_run(run.id, batches_done=2)
    got = store.get_run(run.id)
    assert [e.epoch for e in got.epochs] == [1]
    progress = got.progress()
    assert progress["epoch"] == 1 and progress["batch"] == 2 and progress["epochs_planned"] == 10
    assert 0 < progress["fraction"] < 1


def test_stale_heartbeat_becomes_interrupted(store, monkeypatch):
    d = add_dataset(store)
    run = queue_run(store, d.id)
    worker = store.register_worker()
    store.start_run(run.id, worker.id)
    assert store.get_run(run.id).status == "running"
    long_ago = utcnow().replace(year=2000)
    store._update(run.id, heartbeat_at=long_ago)
    got = store.get_run(run.id)
    assert got.status == "interrupted"
    assert "stopped unexpectedly" in got.error


def test_dead_worker_process_interrupts_its_run_at_once(store):
    d = add_dataset(store)
    run = queue_run(store, d.id)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    worker = store.register_worker(pid=child.pid)
    store.start_run(run.id, worker.id)
    assert store.get_run(run.id).status == "interrupted"


def test_cancel_of_queued_run_is_immediate(store):
    d = add_dataset(store)
    run = queue_run(store, d.id)
    assert store.request_cancel(run.id).status == "cancelled"


def test_deleting_a_dataset_deletes_its_runs(store):
    d = add_dataset(store)
    run = queue_run(store, d.id)
    _, run_ids = store.delete_dataset(d.id)
    assert run_ids == [run.id]
    assert store.list_runs() == []


def test_busy_database_waits_instead_of_failing(store, home):
    """Another process holds the write lock for a few seconds: our write waits and succeeds."""
    import time

    db = home / "workbench.db"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
        "c.execute('BEGIN IMMEDIATE'); c.execute(\"UPDATE workers SET pid = pid\");"
        "print('locked', flush=True); time.sleep(3); c.execute('COMMIT')"), str(db)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    worker = store.register_worker()
    waited = time.monotonic() - started
    holder.wait(timeout=30)
    assert worker.id in {w.id for w in store.live_workers()}
    assert waited > 1.0, "the write should have waited for the lock"


def test_read_only_database_gives_a_plain_error(store, home):
    import pytest

    from workbench.errors import UserError

    add_dataset(store)
    read_only = Store(f"sqlite:///file:{home / 'workbench.db'}?mode=ro&uri=true")
    assert len(read_only.list_datasets()) == 1  # reads still work
    with pytest.raises(UserError, match="read-only; nothing was saved"):
        read_only.register_worker()
    read_only.close()
