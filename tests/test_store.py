"""The store on real databases, each test on a SQLite file and on a PostgreSQL server: schema migrations,
datasets, runs, the queue and its claim race, recovery of stale runs, and waiting out a busy database."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import event, inspect, text

from tests.conftest import writes_held
from workbench import datasets, jobs
from workbench.errors import UserError
from workbench.store import EpochMetrics, Run, RunResult, RunStatus, Store, schema

pytestmark = pytest.mark.usefixtures("database")
ROOT = Path(__file__).resolve().parents[1]
PRE_MIGRATIONS_DUMP = Path(__file__).with_name("data") / "store-pre-alembic.sql"


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, WORKBENCH_HOME=str(home), **env))


def add_dataset(store):
    return datasets.add_dataset(store, b"a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n", "tiny.csv").dataset


def queue_run(store, dataset_id, model="mlp"):
    config = {"dataset_id": dataset_id, "target": "label", "model": model}
    return store.create_run(config, model=model, target="label", task="binary", params={})


# -- schema migrations --------------------------------------------------------------------------------


BASELINE_TABLES = ("datasets", "runs", "epochs", "workers")


def table_columns(db: Path) -> dict[str, list[str]]:
    with sqlite3.connect(db) as connection:
        return {table: [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
                for table in BASELINE_TABLES}


def table_rows(db: Path, columns: dict[str, list[str]]) -> dict[str, list[tuple]]:
    """The rows of the baseline tables, in the given columns (later revisions add columns; these must not change)."""
    with sqlite3.connect(db) as connection:
        return {table: sorted(connection.execute(  # noqa: S608 (fixed names)
                    f"SELECT {', '.join(columns[table])} FROM {table}")) for table in BASELINE_TABLES}


@pytest.mark.backend("sqlite")
def test_a_database_made_before_migrations_is_upgraded_with_everything_intact(home):
    """tests/data/store-pre-alembic.sql was dumped from a workbench.db made by the store before it had
    migrations: a dataset, runs in six states with params, metrics, curves and details, epochs, a worker."""
    from streamlit.testing.v1 import AppTest

    home.mkdir()
    db = home / "workbench.db"
    with sqlite3.connect(db) as connection:
        connection.executescript(PRE_MIGRATIONS_DUMP.read_text(encoding="utf-8"))
    columns_before = table_columns(db)
    before = table_rows(db, columns_before)
    assert len(before["runs"]) == 6 and before["epochs"] and before["workers"]

    store = Store.from_settings()
    assert store.schema_revision() == schema.head_revision()
    assert table_rows(db, columns_before) == before, "the upgrade changed or lost rows"
    assert table_rows(home / "workbench.db.bak-unversioned", columns_before) == before, \
        "the backup is the database as it was"

    runs = store.get_runs([r.id for r in store.list_runs()])
    assert sorted(r.status for r in runs) == sorted(RunStatus(row[2]) for row in before["runs"])
    columns = columns_before["runs"]
    for row in before["runs"]:
        stored = dict(zip(columns, row, strict=True))
        run = next(r for r in runs if r.id == stored["id"])
        for field in ("params", "metrics", "baseline", "curves", "details", "config"):
            assert getattr(run, field) == json.loads(stored[field]), (run.id, field)
        assert (run.primary_value, run.error, run.epochs_done) == (
            stored["primary_value"], stored["error"], stored["epochs_done"])
        assert [tuple(vars(e).values()) for e in run.epochs] == [
            e[1:] for e in before["epochs"] if e[0] == run.id]
    succeeded = [r for r in runs if r.status == RunStatus.SUCCEEDED]
    assert len(succeeded) == 2 and all(r.metrics["test"] and r.primary_value is not None for r in succeeded)
    [dataset] = store.list_datasets()
    assert dataset.name == "Leads — 2024 ünïcode.csv" and dataset.profile["columns"]
    assert [w.id for w in store.list_workers()] == [row[0] for row in before["workers"]]

    at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=60).run()
    assert not at.exception
    assert sorted(at.dataframe[0].value["Run"]) == sorted(row[0] for row in before["runs"])
    store.close()


def test_a_fresh_database_is_made_at_the_head_revision_under_our_own_version_table(store, home):
    head = schema.head_revision()
    assert store.schema_revision() == head
    tables = inspect(store.engine).get_table_names()
    assert schema.VERSION_TABLE in tables and "alembic_version" not in tables  # Optuna's name stays free
    current = cli(home, "db", "current")
    assert current.returncode == 0 and current.stdout.strip() == head, current.stderr
    history = cli(home, "db", "history")
    assert history.returncode == 0 and history.stdout.startswith(head)
    upgrade = cli(home, "db", "upgrade")
    assert upgrade.returncode == 0 and head in upgrade.stdout


def test_a_database_from_a_newer_workbench_is_refused_in_one_sentence(store):
    with store.engine.begin() as connection:
        connection.execute(text(f"UPDATE {schema.VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(UserError, match="newer version of the workbench"):
        Store.from_settings()


def test_processes_opening_a_fresh_database_at_once_all_get_it(home, database):
    """Six processes open the store of a fresh home at the same instant: the migration lock lets one create
    the tables; the others wait and find them (not 'table datasets already exists')."""
    start_at = time.time() + 4  # after every process has imported the workbench
    script = ("import sys, time; from workbench.store import Store; time.sleep(max(0, float(sys.argv[1]) - "
              "time.time())); print(Store.from_settings().schema_revision())")
    env = dict(os.environ, WORKBENCH_HOME=str(home))
    processes = [subprocess.Popen([sys.executable, "-c", script, str(start_at)], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    assert [(code, out.strip()) for code, out, _ in results] == [(0, schema.head_revision())] * 6, results


def test_a_database_at_revision_0001_with_data_is_upgraded_to_groups_and_intervals(home, database):
    """A store at 0001 (before run groups) holding a dataset, a finished run with its epochs and a queued run:
    the upgrade keeps every row, older runs read without intervals or a group, and groups can then be made."""
    from alembic import command

    engine = Store.from_settings(migrate=False).engine
    with engine.begin() as connection:
        config = schema._config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        now = "2025-01-02 03:04:05"
        connection.execute(text(
            "INSERT INTO datasets VALUES ('d1', 'Leads ünï', 'h1', 4, 3, 10, 'd1.parquet', '[]', '{}', '[]', :now)"),
            {"now": now})
        for run_id, status in (("r1", "succeeded"), ("r2", "queued")):
            connection.execute(text(
                "INSERT INTO runs (id, dataset_id, status, model, target, task, config, params, created_at, "
                "cancel_requested, epochs_done, batches_done, primary_metric, primary_value, metrics, baseline, "
                "curves, details) VALUES (:id, 'd1', :status, 'mlp', 'label', 'binary', '{\"dataset_id\": \"d1\"}', "
                "'{\"lr\": 0.01}', :now, false, 2, 0, 'accuracy', 0.75, '{\"test\": {\"accuracy\": 0.75}}', "
                "'{}', '{}', '{}')"), {"id": run_id, "status": status, "now": now})
        connection.execute(text("INSERT INTO epochs VALUES ('r1', 1, 0.7, 0.6, 0.5, 0.001, 1.5)"))
    engine.dispose()
    assert Store.from_settings(migrate=False).schema_revision() == "0001"

    store = Store.from_settings()
    assert store.schema_revision() == schema.head_revision() == "0005"
    old, queued = store.get_runs(["r1", "r2"])
    assert (old.status, old.primary_value, old.metrics, old.params) == (
        RunStatus.SUCCEEDED, 0.75, {"test": {"accuracy": 0.75}}, {"lr": 0.01})
    assert [(e.epoch, e.train_loss, e.seconds) for e in old.epochs] == [(1, 0.7, 1.5)]
    assert (old.intervals, old.group_id, old.member) == ({}, None, None) and queued.status == RunStatus.QUEUED
    assert store.claim_next_run("w1").id == "r2"  # the queue still works on the upgraded table
    group, members = store.create_group({"dataset_id": "d1", "repeats": 2}, "mlp", "label", "binary",
                                        [("r0f0", {"dataset_id": "d1"}, {"seed": 0})], {"key": "k1", "folds": [[0]]},
                                        0.25)
    assert store.group_runs(group.id)[0].id == members[0].id
    store.close()


def test_a_group_and_its_members_are_stored_together_and_go_with_their_dataset(store):
    d = add_dataset(store)
    scheme = {"scheme": "repeated_kfold", "key": "abc123", "folds": [[0, 1, 0, 1]]}
    members = [(f"r0f{f}", {"dataset_id": d.id, "target": "label", "model": "mlp", "repeats": 1},
                {"seed": f, "epochs": 2}) for f in range(3)]
    group, runs = store.create_group({"dataset_id": d.id, "target": "label", "model": "mlp", "repeats": 3}, "mlp",
                                     "label", "binary", members, scheme, 0.25)
    assert (group.n_members, group.scheme_key, group.test_share, group.scheme) == (3, "abc123", 0.25, None)
    assert store.get_group(group.id, with_scheme=True).scheme == scheme
    assert [g.id for g in store.list_groups(d.id)] == [group.id] and store.list_groups("other") == []
    assert [(r.member, r.group_id, r.params["seed"]) for r in store.group_runs(group.id)] == [
        ("r0f0", group.id, 0), ("r0f1", group.id, 1), ("r0f2", group.id, 2)]
    # Members queue in member order, after a run queued before the group.
    claimed = [store.claim_next_run("w").id for _ in range(3)]
    assert claimed == [r.id for r in runs]
    store.finish_run(runs[0].id, RunResult(RunStatus.SUCCEEDED, intervals={"test": {"accuracy": [0.5, 0.9]}}))
    assert store.get_run(runs[0].id).intervals == {"test": {"accuracy": [0.5, 0.9]}}
    with pytest.raises(UserError, match="no run group with id 'nope'"):
        store.get_group("nope")
    for run in runs:
        store.finish_run(run.id, RunResult(RunStatus.SUCCEEDED))
    store.delete_dataset(d.id)
    assert store.list_groups() == [] and store.list_runs() == []


# -- datasets, runs and the queue ---------------------------------------------------------------------


@pytest.mark.backend("sqlite")
def test_sqlite_file_under_home_with_wal_and_foreign_keys(store, home):
    assert (home / "workbench.db").is_file()
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000


@pytest.mark.backend("sqlite")
def test_database_url_overrides_the_file(tmp_path, monkeypatch, home):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", url)
    s = Store.from_settings()
    s.list_datasets()
    s.close()
    assert (tmp_path / "elsewhere.db").is_file()
    assert not (home / "workbench.db").exists()


def test_another_kind_of_database_url_is_refused_in_one_sentence(monkeypatch, home):
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", "mysql://somewhere/db")
    with pytest.raises(UserError, match="must be a SQLite or PostgreSQL URL"):
        Store.from_settings()


def test_dataset_round_trip_returns_dataclasses(store):
    d = add_dataset(store)
    got = store.get_dataset(d.id)
    assert got == d
    assert [x.id for x in store.list_datasets()] == [d.id]
    with pytest.raises(UserError, match="There is no dataset with id 'nope'"):
        store.get_dataset("nope")


def test_claim_is_compare_and_set(store):
    d = add_dataset(store)
    run = queue_run(store, d.id)
    first = store.start_run(run.id, "w1")
    second = store.start_run(run.id, "w2")
    assert first is not None and first.status == RunStatus.RUNNING and first.worker_id == "w1"
    assert second is None


def test_queue_is_first_in_first_out(store):
    d = add_dataset(store)
    ids = [queue_run(store, d.id).id for _ in range(3)]
    worker = store.register_worker()
    claimed = [store.claim_next_run(worker.id).id for _ in range(3)]
    assert claimed == ids
    assert store.claim_next_run(worker.id) is None


@pytest.mark.backend("postgresql")
def test_claim_skips_a_run_another_worker_is_claiming(store):
    """Another worker has locked the oldest queued run (SELECT ... FOR UPDATE, mid-claim): our claim neither
    takes that run too nor waits for it, but takes the next one."""
    import psycopg

    d = add_dataset(store)
    first, second = queue_run(store, d.id), queue_run(store, d.id)
    url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as other_worker:
        other_worker.execute("SELECT id FROM runs WHERE id = %s FOR UPDATE", (first.id,))
        claimed = []
        claim = threading.Thread(target=lambda: claimed.append(store.claim_next_run("w2")), daemon=True)
        claim.start()
        claim.join(timeout=3)
        blocked = claim.is_alive()
        other_worker.rollback()
    claim.join(timeout=30)
    assert not blocked, "the claim waited for the run another worker was claiming"
    assert claimed[0] is not None and claimed[0].id == second.id
    assert store.get_run(first.id).status == RunStatus.QUEUED


def test_epochs_and_progress(store):
    d = add_dataset(store)
    run = queue_run(store, d.id)
    worker = store.register_worker()
    store.start_run(run.id, worker.id)
    store.record_plan(run.id, epochs_planned=10, batches_per_epoch=4)
    assert store.record_epoch(run.id, EpochMetrics(1, 0.9, 0.8, 0.6, 1e-3, 0.1)) is False
    store.heartbeat_run(run.id, batches_done=2)
    got = store.get_run(run.id)
    assert [e.epoch for e in got.epochs] == [1]
    progress = got.progress()
    assert progress["epoch"] == 1 and progress["batch"] == 2 and progress["epochs_planned"] == 10
    assert 0 < progress["fraction"] < 1
    store.request_cancel(run.id)
    assert store.record_epoch(run.id, EpochMetrics(2, 0.8, 0.7, 0.6, 1e-3, 0.1)) is True  # the trainer stops


def _training_run(store, task: str, metrics: list[float], seconds: float = 2.0, planned: int = 200,
                  patience: int = 16, batches_done: int = 0):
    """A running run with one stored row per epoch: validation metric as given, loss falling, `seconds` each."""
    d = add_dataset(store)
    run = store.create_run({"dataset_id": d.id, "target": "label", "model": "mlp"}, model="mlp", target="label",
                           task=task, params={"epochs": planned, "patience": patience})
    store.start_run(run.id, "w1")
    store.record_plan(run.id, epochs_planned=planned, batches_per_epoch=10)
    for epoch, metric in enumerate(metrics, start=1):
        store.record_epoch(run.id, EpochMetrics(epoch, 1.0, 1.0 / epoch, metric, 1e-3, seconds))
    store.heartbeat_run(run.id, batches_done=batches_done)
    return store.get_run(run.id)


def test_eta_counts_on_early_stopping_from_the_best_epoch_and_bounds_it_by_every_planned_epoch(store):
    # Accuracy best at epoch 20 of 30 done: patience 16 runs out at epoch 36, six epochs of 2 s from now.
    accuracy = [0.5 + 0.01 * e for e in range(1, 21)] + [0.6] * 10
    progress = _training_run(store, "binary", accuracy).progress()
    assert progress["epoch"] == 30
    assert progress["eta_likely_s"] == pytest.approx(12.0)
    assert progress["eta_s"] == pytest.approx(340.0)  # all 200 planned epochs
    # RMSE: lower is better; best at epoch 25, and half of epoch 31 done.
    rmse = [10.0 - 0.1 * e for e in range(1, 26)] + [9.0] * 5
    progress = _training_run(store, "regression", rmse, batches_done=5).progress()
    assert progress["eta_likely_s"] == pytest.approx((41 - 30 - 0.5) * 2.0)
    assert progress["eta_s"] == pytest.approx((200 - 30.5) * 2.0)


def test_eta_never_promises_hours_for_a_run_that_stops_in_seconds(store):
    """Issue 20: '3 h 58 min left' for a run that ended in 28 s. A run improving nothing since its 3rd epoch, 0.1 s
    an epoch, of 100,000 planned: the likely time left is about a second, the longest hours."""
    progress = _training_run(store, "multiclass", [0.7, 0.8, 0.9] + [0.85] * 5, seconds=0.1,
                             planned=100_000).progress()
    assert progress["eta_likely_s"] == pytest.approx((19 - 8) * 0.1)
    assert progress["eta_s"] > 3600


def test_eta_ties_go_to_the_lower_validation_loss_and_no_patience_means_every_epoch(store):
    # Epochs 2 and 5 tie on accuracy; epoch 5 has the lower loss (1 / epoch), so patience counts from epoch 5.
    progress = _training_run(store, "binary", [0.5, 0.9, 0.6, 0.6, 0.9, 0.6], patience=4).progress()
    assert progress["eta_likely_s"] == pytest.approx((9 - 6) * 2.0)
    progress = _training_run(store, "binary", [0.5, 0.9], patience=0).progress()
    assert progress["eta_likely_s"] == progress["eta_s"] == pytest.approx(198 * 2.0)


def test_eta_metric_direction_matches_the_tasks_primary_metric():
    from workbench.tasks import Task, higher_is_better, primary_metric

    for task in Task:
        run = Run(**{f.name: None for f in dataclasses.fields(Run) if f.name != "epochs"})
        run.task = task
        rows = [EpochMetrics(1, 1.0, 1.0, 1.0, 0.0, 1.0), EpochMetrics(2, 1.0, 1.0, 2.0, 0.0, 1.0)]
        assert (run._best_epoch(rows) == 2) == higher_is_better(primary_metric(task)), task


def test_finish_run_writes_the_result_and_keeps_what_it_leaves_out(store):
    d = add_dataset(store)
    run = store.create_run({"dataset_id": d.id, "target": "label", "model": "mlp"}, model="mlp", target="label",
                           task="binary", params={"lr": 0.01, "epochs": 3})
    store.start_run(run.id, "w1")
    store.finish_run(run.id, RunResult(RunStatus.FAILED, error="Training failed: ☃ <b>boom</b>"))
    failed = store.get_run(run.id)
    assert failed.status == RunStatus.FAILED and failed.error == "Training failed: ☃ <b>boom</b>"
    assert failed.params == {"lr": 0.01, "epochs": 3} and failed.finished_at is not None
    with pytest.raises(ValueError, match="not a final status"):
        store.finish_run(run.id, RunResult(RunStatus.RUNNING))


def test_reads_never_write(store):
    """The live panel reads several times a second per tab: reading must not write, nor decide staleness."""
    d = add_dataset(store)
    run = queue_run(store, d.id)
    store.start_run(run.id, "a-worker-that-is-gone")  # stale: no such worker
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql))
    store.get_run(run.id)
    store.get_runs([run.id])
    store.list_runs()
    store.list_runs(dataset_id=d.id, statuses=(RunStatus.RUNNING,), limit=5)
    store.epochs(run.id)
    store.count_runs()
    store.list_datasets()
    store.get_dataset(d.id)
    store.live_workers()
    writes = [sql for sql in statements if sql.split()[0].upper() not in ("SELECT", "BEGIN")]
    assert statements and writes == []
    assert store.get_run(run.id).status == RunStatus.RUNNING  # until someone recovers stale runs
    assert jobs.recover_stale_runs(store) == [run.id]
    assert store.get_run(run.id).status == RunStatus.INTERRUPTED


def test_stale_heartbeat_becomes_interrupted(store):
    d = add_dataset(store)
    run = queue_run(store, d.id)
    worker = store.register_worker()  # this process: alive, so only the heartbeat can make the run stale
    store.start_run(run.id, worker.id)
    assert jobs.recover_stale_runs(store) == []
    impatient = Store(store.settings.database_url, replace(store.settings, heartbeat_timeout_s=0.05))
    time.sleep(0.1)
    assert jobs.recover_stale_runs(impatient) == [run.id]
    impatient.close()
    got = store.get_run(run.id)
    assert got.status == RunStatus.INTERRUPTED
    assert "stopped unexpectedly" in got.error


def test_dead_worker_process_interrupts_its_run_at_once(store):
    d = add_dataset(store)
    run, other = queue_run(store, d.id), queue_run(store, d.id)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = store.register_worker(pid=child.pid)
    alive = store.register_worker()
    store.start_run(run.id, dead.id)
    store.start_run(other.id, alive.id)
    assert jobs.recover_stale_runs(store) == [run.id]
    assert store.get_run(run.id).status == RunStatus.INTERRUPTED
    assert store.get_run(other.id).status == RunStatus.RUNNING
    assert [w.id for w in store.list_workers()] == [alive.id]


def test_cancel_of_queued_run_is_immediate(store):
    d = add_dataset(store)
    run = queue_run(store, d.id)
    assert store.request_cancel(run.id).status == RunStatus.CANCELLED


def test_deleting_a_dataset_deletes_its_finished_runs(store):
    d = add_dataset(store)
    run = queue_run(store, d.id)
    store.request_cancel(run.id)
    _, run_ids = store.delete_dataset(d.id)
    assert run_ids == [run.id]
    assert store.list_runs() == []


def test_deleting_a_dataset_with_a_queued_or_running_run_is_refused(store, home):
    """A dataset deleted under a training run took the run with it: now the store refuses, in one transaction."""
    d = add_dataset(store)
    run = queue_run(store, d.id)
    with pytest.raises(UserError, match="1 queued or running run"):
        datasets.delete_dataset(store, d.id)
    store.start_run(run.id, store.register_worker().id)
    refused = cli(home, "delete-dataset", d.id)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "queued or running" in refused.stderr
    assert store.get_run(run.id).status == RunStatus.RUNNING
    assert datasets.load_table(store, d.id).shape == (4, 3)
    store.finish_run(run.id, RunResult(RunStatus.SUCCEEDED))
    datasets.delete_dataset(store, d.id)
    assert store.list_datasets() == [] and store.list_runs() == []


# -- a busy database: wait and retry, then one plain sentence -------------------------------------------


def test_busy_database_waits_instead_of_failing(home, monkeypatch):
    """Another connection holds the database for longer than one attempt waits: the write is retried and
    succeeds once the database is free."""
    monkeypatch.setenv("WORKBENCH_DB_BUSY_TIMEOUT_S", "0.2")
    store = Store.from_settings()
    release = threading.Event()

    def hold() -> None:
        with writes_held(store.settings.database_url):
            held.set()
            release.wait(2.0)

    held = threading.Event()
    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    held.wait(30)
    started = time.monotonic()
    worker = store.register_worker()
    waited = time.monotonic() - started
    holder.join(30)
    assert worker.id in {w.id for w in store.live_workers()}
    assert waited > 1.0, "the write should have waited for the lock"
    store.close()


def test_a_write_that_outlives_the_retry_budget_is_one_plain_sentence(store, home, tmp_path):
    csv = tmp_path / "leads.csv"
    csv.write_text("a,b,label\n1,2,x\n3,4,y\n")
    with writes_held(store.settings.database_url):
        started = time.monotonic()
        refused = cli(home, "ingest", str(csv), WORKBENCH_DB_BUSY_TIMEOUT_S="0.2", WORKBENCH_DB_RETRY_S="2")
        waited = time.monotonic() - started
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("error: The database stayed busy")
    for leak in ("INSERT", "SELECT", "SQL", "sqlite3", "psycopg", "Traceback"):
        assert leak not in refused.stderr
    assert waited >= 2
    assert store.list_datasets() == []
    assert not list((home / "datasets").iterdir())


@pytest.mark.backend("sqlite")
def test_read_only_database_gives_a_plain_error(store, home):
    add_dataset(store)
    read_only = Store(f"sqlite:///file:{home / 'workbench.db'}?mode=ro&uri=true")
    assert len(read_only.list_datasets()) == 1  # reads still work
    with pytest.raises(UserError, match="read-only; nothing was saved"):
        read_only.register_worker()
    read_only.close()


def test_prediction_batches_are_listed_newest_first_counted_per_run_and_go_with_their_run(store):
    """Both backends: the JSON summary round-trips (unicode keys too), activity is one grouped query, and deleting
    a run, or its dataset, deletes its batches in the database (ON DELETE CASCADE)."""
    d = add_dataset(store)
    first, second = (queue_run(store, d.id) for _ in range(2))
    for run in (first, second):
        store.request_cancel(run.id)
    summary = {"reference": "abc", "columns": {"prix €": {"counts": [1, 2, 0], "mean": None}}, "prediction": None}
    older = store.add_prediction_batch(first.id, "cli", 3, summary)
    newer = store.add_prediction_batch(first.id, "api", 1, {}, rows_file="rows/x.parquet")
    store.add_prediction_batch(second.id, "page", 7, {})
    assert [b.id for b in store.list_prediction_batches(first.id)] == [newer.id, older.id]
    assert store.list_prediction_batches(first.id, limit=1)[0].rows_file == "rows/x.parquet"
    assert store.list_prediction_batches(first.id)[1].summary == summary
    assert store.list_prediction_batches(first.id, with_summary=False)[1].summary == {}
    activity = {a.run_id: (a.batches, a.rows) for a in store.prediction_activity()}
    assert activity == {first.id: (2, 4), second.id: (1, 7)}
    with pytest.raises(UserError, match="no run with id 'nope'"):
        store.add_prediction_batch("nope", "api", 1, {})
    store.delete_run(first.id)
    assert store.list_prediction_batches(first.id) == [] and len(store.list_prediction_batches(second.id)) == 1
    store.delete_dataset(d.id)
    assert store.prediction_activity() == []
