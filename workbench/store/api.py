"""The store API. SQLAlchemy stays in here: callers get dataclasses and never hold a session.

Every method is one short transaction (`_transaction`). While the database is busy (SQLite "locked" or
"busy"; PostgreSQL serialization failures, deadlocks, lock timeouts, a dropped connection) the whole
transaction is retried with backoff for up to WORKBENCH_DB_RETRY_S seconds (default 300), so a worker's
run never fails because another program held the database for a while; after that, one plain sentence,
never SQL. Inside one attempt SQLite waits WORKBENCH_DB_BUSY_TIMEOUT_S for a lock (PostgreSQL the same,
as its lock_timeout). SQLite runs in WAL mode with real transactions (BEGIN before the first read), so a
read followed by a write is atomic or, when another writer came in between, retried.

Reads never write: stale-run detection is the explicit `interrupt_stale_runs` (jobs.recover_stale_runs).
Opening a store brings its schema to the newest migration (schema.py).
"""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import create_engine, delete, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, defer, sessionmaker

from workbench.config import Settings, get_settings
from workbench.errors import UserError, storage_error_message
from workbench.store import schema
from workbench.store.entities import (
    ACTIVE_STATUSES,
    Dataset,
    EpochMetrics,
    PredictionActivity,
    PredictionBatch,
    Run,
    RunGroup,
    RunResult,
    RunStatus,
    Sweep,
    SweepStatus,
    Worker,
    utcnow,
)
from workbench.store.orm import DatasetRow, EpochRow, PredictionBatchRow, RunGroupRow, RunRow, SweepRow, WorkerRow

BUSY_TIMEOUT_S = 5.0  # one attempt's wait for a lock inside the database
RETRY_S = 300.0  # how long a transaction is retried while the database stays busy
# PostgreSQL SQLSTATEs worth another attempt: serialization failure, deadlock, lock timeout, shutting down.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03", "57P01", "57P03"}
T = TypeVar("T")


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def _dataset(row: DatasetRow) -> Dataset:
    return Dataset(
        id=row.id, name=row.name, content_hash=row.content_hash, n_rows=row.n_rows, n_columns=row.n_columns,
        size_bytes=row.size_bytes, file_name=row.file_name, schema=row.schema, profile=row.profile,
        notes=row.notes, created_at=row.created_at,
    )


def _epoch(row: EpochRow) -> EpochMetrics:
    return EpochMetrics(row.epoch, row.train_loss, row.val_loss, row.val_metric, row.lr, row.seconds)


def _run(row: RunRow, epochs: list[EpochRow] | None = None, with_curves: bool = True) -> Run:
    """`with_curves` False: a row read without its curves and explanation (lists of runs defer both)."""
    return Run(
        id=row.id, dataset_id=row.dataset_id, status=RunStatus(row.status), model=row.model, target=row.target,
        task=row.task, config=row.config, params=row.params or {}, device=row.device,
        created_at=row.created_at, started_at=row.started_at, finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at, worker_id=row.worker_id, cancel_requested=bool(row.cancel_requested),
        epochs_planned=row.epochs_planned, epochs_done=row.epochs_done or 0,
        batches_per_epoch=row.batches_per_epoch, batches_done=row.batches_done or 0,
        duration_s=row.duration_s, primary_metric=row.primary_metric, primary_value=row.primary_value,
        split_fingerprint=row.split_fingerprint, metrics=row.metrics or {}, baseline=row.baseline or {},
        curves=(row.curves or {}) if with_curves else {}, details=row.details or {}, error=row.error,
        epochs=[_epoch(e) for e in epochs or []], intervals=row.intervals or {}, group_id=row.group_id,
        member=row.member, sweep_id=row.sweep_id, trial_number=row.trial_number,
        explanation=(row.explanation or {}) if with_curves else {},
    )


def _group(row: RunGroupRow, with_scheme: bool = False) -> RunGroup:
    return RunGroup(id=row.id, dataset_id=row.dataset_id, target=row.target, model=row.model, task=row.task,
                    config=row.config, scheme_key=row.scheme_key, test_share=row.test_share,
                    n_members=row.n_members, created_at=row.created_at, scheme=row.scheme if with_scheme else None)


def _sweep(row: SweepRow) -> Sweep:
    return Sweep(id=row.id, dataset_id=row.dataset_id, target=row.target, model=row.model, task=row.task,
                 status=SweepStatus(row.status), config=row.config, study_name=row.study_name, n_trials=row.n_trials,
                 trials_started=row.trials_started, best_run_id=row.best_run_id, created_at=row.created_at,
                 started_at=row.started_at, finished_at=row.finished_at,
                 cancel_requested=bool(row.cancel_requested), error=row.error)


def _queued_run(config: dict[str, Any], model: str, target: str, task: str, params: dict[str, Any]) -> RunRow:
    return RunRow(
        id=new_id(), dataset_id=config["dataset_id"], status=RunStatus.QUEUED, model=model, target=target,
        task=task, config=config, params=params, created_at=utcnow(), cancel_requested=False, epochs_done=0,
        epochs_planned=int(params.get("epochs", 1)),
        batches_done=0, metrics={}, baseline={}, curves={}, details={},
    )


def _prediction_batch(row: PredictionBatchRow, with_summary: bool = True) -> PredictionBatch:
    return PredictionBatch(id=row.id, run_id=row.run_id, created_at=row.created_at, source=row.source,
                           n_rows=row.n_rows, summary=(row.summary or {}) if with_summary else {},
                           rows_file=row.rows_file)


def _worker(row: WorkerRow) -> Worker:
    return Worker(row.id, row.pid, row.hostname, row.started_at, row.heartbeat_at)


_KIND = {DatasetRow: "dataset", RunRow: "run", RunGroupRow: "run group", SweepRow: "sweep"}


def _get_or_raise(s: Session, row_type: type[DatasetRow] | type[RunRow] | type[RunGroupRow] | type[SweepRow],
                  key: str, *,
                  for_update: bool = False) -> Any:
    row = s.get(row_type, key, with_for_update=for_update)
    if row is None:
        raise UserError(f"There is no {_KIND[row_type]} with id '{key}'.")
    return row


def _env_seconds(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise UserError(f"{name} must be a number of seconds, not '{value}'.")
    return seconds


def _create_engine(url: str, busy_timeout_s: float) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UserError("WORKBENCH_DATABASE_URL is not a database URL.") from exc
    dialect = parsed.get_backend_name()
    if dialect == "sqlite":
        path = schema.sqlite_path(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s})
        _configure_sqlite(engine, busy_timeout_s)
        return engine
    if dialect == "postgresql":
        return create_engine(url, pool_pre_ping=True,
                             connect_args={"options": f"-c lock_timeout={int(busy_timeout_s * 1000)}"})
    raise UserError("WORKBENCH_DATABASE_URL must be a SQLite or PostgreSQL URL (postgresql+psycopg://...).")


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001
        # The driver would BEGIN only before a write, so a read and the write after it would be two transactions;
        # we BEGIN ourselves (below), at the first statement.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # noqa: ANN001
        connection.exec_driver_sql("BEGIN")


def _is_busy(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    if sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith("08"):
        return True
    text = str(exc.orig).lower()
    return sqlstate == "" and ("database is locked" in text or "database table is locked" in text or "busy" in text)


def _plain_error(exc: DBAPIError) -> UserError:
    """One sentence from the driver's message; the statement and its parameters stay out of it."""
    if message := storage_error_message(exc):
        return UserError(message)
    first_line = (str(exc.orig).strip().splitlines() or ["unknown error"])[0].rstrip(".")
    return UserError(f"The database reported an error ({first_line}); nothing was saved.")


class Store:
    def __init__(self, url: str, settings: Settings | None = None, *, migrate: bool = True):
        self.settings = settings or get_settings()
        self.busy_timeout_s = _env_seconds("WORKBENCH_DB_BUSY_TIMEOUT_S", BUSY_TIMEOUT_S)
        self.retry_s = _env_seconds("WORKBENCH_DB_RETRY_S", RETRY_S)
        self.engine = _create_engine(url, self.busy_timeout_s)
        self.dialect = self.engine.dialect.name
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            self.upgrade_schema()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, migrate: bool = True) -> Store:
        settings = settings or get_settings()
        return cls(settings.database_url, settings, migrate=migrate)

    def close(self) -> None:
        self.engine.dispose()

    # -- schema -------------------------------------------------------------------------------

    def upgrade_schema(self) -> str:
        """Bring the database to the newest schema revision (a no-op when it is there); returns that revision."""
        return self._retrying(lambda: schema.upgrade(self.engine))

    def schema_revision(self) -> str | None:
        """The database's schema revision: schema.UNVERSIONED for one made before migrations, None when empty."""
        def read() -> str | None:
            with self.engine.connect() as connection:
                return schema.current_revision(connection)
        return self._retrying(read)

    # -- transactions -------------------------------------------------------------------------

    def _transaction(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction: committed when it returns, rolled back when it raises."""
        def attempt() -> T:
            with self._sessions() as session, session.begin():
                return work(session)
        return self._retrying(attempt)

    def _retrying(self, attempt: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.retry_s
        delay = 0.02
        while True:
            try:
                return attempt()
            except DBAPIError as exc:
                if not _is_busy(exc):
                    raise _plain_error(exc) from exc
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UserError(f"The database stayed busy for over {self.retry_s:g} seconds (another program "
                                    "is holding it); nothing was saved, please try again.") from exc
                time.sleep(min(delay * random.uniform(0.5, 1.5), left))
                delay = min(delay * 2, 2.0)

    # -- datasets -----------------------------------------------------------------------------

    def add_dataset(self, dataset: Dataset) -> tuple[Dataset, bool]:
        """Store a dataset unless one with the same content is there: returns the stored one and whether it
        is new. Of two processes adding the same bytes at once, one creates it and the other gets that one."""
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert

        def work(s: Session) -> tuple[Dataset, bool]:
            added = s.scalar(insert(DatasetRow).values(**dataset.__dict__).on_conflict_do_nothing()
                             .returning(DatasetRow.id))
            if added is not None:
                return dataset, True
            return _dataset(s.scalars(select(DatasetRow).where(DatasetRow.content_hash == dataset.content_hash))
                            .one()), False
        return self._transaction(work)

    def get_dataset(self, dataset_id: str) -> Dataset:
        return self._transaction(lambda s: _dataset(_get_or_raise(s, DatasetRow, dataset_id)))

    def find_dataset_by_hash(self, content_hash: str) -> Dataset | None:
        def work(s: Session) -> Dataset | None:
            row = s.scalar(select(DatasetRow).where(DatasetRow.content_hash == content_hash))
            return _dataset(row) if row else None
        return self._transaction(work)

    def list_datasets(self) -> list[Dataset]:
        return self._transaction(lambda s: [
            _dataset(r) for r in s.scalars(select(DatasetRow).order_by(DatasetRow.created_at.desc()))])

    def delete_dataset(self, dataset_id: str) -> tuple[Dataset, list[str]]:
        """Delete a dataset, its finished runs and its ended sweeps; returns it and the deleted run ids (their files
        go next).

        Refused while a run of it is queued or running, or a sweep of it is running (it would start more runs). The check and the delete are one transaction with
        the dataset row locked (PostgreSQL; on SQLite a run queued in between makes the transaction retry),
        so no run can be queued or started between them."""
        def work(s: Session) -> tuple[Dataset, list[str]]:
            row = _get_or_raise(s, DatasetRow, dataset_id, for_update=True)
            active = s.scalar(select(func.count()).select_from(RunRow).where(
                RunRow.dataset_id == dataset_id, RunRow.status.in_(ACTIVE_STATUSES)))
            if active:
                raise UserError(f"Dataset '{row.name}' has {active} queued or running run(s); cancel them or let "
                                "them finish before deleting it.")
            sweeping = s.scalar(select(func.count()).select_from(SweepRow).where(
                SweepRow.dataset_id == dataset_id, SweepRow.status == SweepStatus.RUNNING))
            if sweeping:
                raise UserError(f"Dataset '{row.name}' has {sweeping} running sweep(s); cancel them or let them "
                                "finish before deleting it.")
            run_ids = list(s.scalars(select(RunRow.id).where(RunRow.dataset_id == dataset_id)))
            dataset = _dataset(row)
            s.execute(delete(DatasetRow).where(DatasetRow.id == dataset_id))
            return dataset, run_ids
        return self._transaction(work)

    # -- runs ---------------------------------------------------------------------------------

    def create_run(self, config: dict[str, Any], model: str, target: str, task: str,
                   params: dict[str, Any]) -> Run:
        def work(s: Session) -> Run:
            _get_or_raise(s, DatasetRow, config["dataset_id"])
            row = _queued_run(config, model, target, task, params)
            s.add(row)
            s.flush()
            return _run(row)
        return self._transaction(work)

    def create_group(self, config: dict[str, Any], model: str, target: str, task: str,
                     members: list[tuple[str, dict[str, Any], dict[str, Any]]], scheme: dict[str, Any],
                     test_share: float) -> tuple[RunGroup, list[Run]]:
        """A run group and its queued member runs, in one transaction: a group is never left without its members.
        members: (member name, the member's run config, its params), in the order they are to train."""
        def work(s: Session) -> tuple[RunGroup, list[Run]]:
            _get_or_raise(s, DatasetRow, config["dataset_id"])
            group = RunGroupRow(id=new_id(), dataset_id=config["dataset_id"], target=target, model=model, task=task,
                                config=config, scheme=scheme, scheme_key=scheme["key"], test_share=test_share,
                                n_members=len(members), created_at=utcnow())
            s.add(group)
            rows = []
            for position, (member, member_config, params) in enumerate(members):
                row = _queued_run(member_config, model, target, task, params)
                row.group_id, row.member = group.id, member
                # Members queue in order: the claim takes the oldest first (same-instant timestamps would tie).
                row.created_at = group.created_at + timedelta(microseconds=position)
                rows.append(row)
            s.add_all(rows)
            s.flush()
            return _group(group), [_run(r) for r in rows]
        return self._transaction(work)

    def get_group(self, group_id: str, with_scheme: bool = False) -> RunGroup:
        return self._transaction(lambda s: _group(_get_or_raise(s, RunGroupRow, group_id), with_scheme))

    def list_groups(self, dataset_id: str | None = None) -> list[RunGroup]:
        """Groups, newest first, without their fold assignments (get_group(..., with_scheme=True) has them)."""
        query = select(RunGroupRow).options(defer(RunGroupRow.scheme)).order_by(RunGroupRow.created_at.desc())
        if dataset_id:
            query = query.where(RunGroupRow.dataset_id == dataset_id)
        return self._transaction(lambda s: [_group(r) for r in s.scalars(query)])

    def group_runs(self, group_id: str) -> list[Run]:
        """A group's member runs in member order, without curves or epochs."""
        query = (select(RunRow).options(defer(RunRow.curves), defer(RunRow.explanation))
                 .where(RunRow.group_id == group_id)
                 .order_by(RunRow.created_at))
        return self._transaction(lambda s: [_run(r, with_curves=False) for r in s.scalars(query)])

    def get_run(self, run_id: str, with_epochs: bool = True) -> Run:
        def work(s: Session) -> Run:
            row = _get_or_raise(s, RunRow, run_id)
            return _run(row, self._epoch_rows(s, run_id) if with_epochs else None)
        return self._transaction(work)

    def get_runs(self, run_ids: list[str]) -> list[Run]:
        def work(s: Session) -> dict[str, Run]:
            rows = s.scalars(select(RunRow).where(RunRow.id.in_(run_ids))).all()
            return {r.id: _run(r, self._epoch_rows(s, r.id)) for r in rows}
        by_id = self._transaction(work)
        return [by_id[i] for i in run_ids if i in by_id]

    def list_runs(self, dataset_id: str | None = None, statuses: tuple[RunStatus, ...] | None = None,
                  limit: int | None = None) -> list[Run]:
        """Runs, newest first, without their curves or epochs (see get_runs for those)."""
        # Curves (hundreds of points per run) are only read for the runs being compared: get_runs.
        query = (select(RunRow).options(defer(RunRow.curves), defer(RunRow.explanation))
                 .order_by(RunRow.created_at.desc()))
        if dataset_id:
            query = query.where(RunRow.dataset_id == dataset_id)
        if statuses:
            query = query.where(RunRow.status.in_(statuses))
        if limit:
            query = query.limit(limit)
        return self._transaction(lambda s: [_run(r, with_curves=False) for r in s.scalars(query)])

    def count_runs(self) -> int:
        return self._transaction(lambda s: s.scalar(select(func.count()).select_from(RunRow)) or 0)

    def delete_run(self, run_id: str) -> None:
        def work(s: Session) -> None:
            if s.execute(delete(RunRow).where(RunRow.id == run_id)).rowcount == 0:
                raise UserError(f"There is no run with id '{run_id}'.")
        self._transaction(work)

    def epochs(self, run_id: str) -> list[EpochMetrics]:
        return self._transaction(lambda s: [_epoch(r) for r in self._epoch_rows(s, run_id)])

    @staticmethod
    def _epoch_rows(s: Session, run_id: str) -> list[EpochRow]:
        return list(s.scalars(select(EpochRow).where(EpochRow.run_id == run_id).order_by(EpochRow.epoch)))

    # -- sweeps: a search whose trials are runs -----------------------------------------------

    def create_sweep(self, config: dict[str, Any], model: str, target: str, task: str, study_name: str,
                     n_trials: int) -> Sweep:
        """A running sweep over the study `study_name` (made already, in the same database)."""
        def work(s: Session) -> Sweep:
            _get_or_raise(s, DatasetRow, config["run"]["dataset_id"])
            now = utcnow()
            row = SweepRow(id=new_id(), dataset_id=config["run"]["dataset_id"], target=target, model=model,
                           task=task, status=SweepStatus.RUNNING, config=config, study_name=study_name,
                           n_trials=n_trials, trials_started=0, created_at=now, started_at=now,
                           cancel_requested=False)
            s.add(row)
            s.flush()
            return _sweep(row)
        return self._transaction(work)

    def get_sweep(self, sweep_id: str) -> Sweep:
        return self._transaction(lambda s: _sweep(_get_or_raise(s, SweepRow, sweep_id)))

    def list_sweeps(self, dataset_id: str | None = None, statuses: tuple[SweepStatus, ...] | None = None) -> list[Sweep]:
        """Sweeps, newest first."""
        query = select(SweepRow).order_by(SweepRow.created_at.desc())
        if dataset_id:
            query = query.where(SweepRow.dataset_id == dataset_id)
        if statuses:
            query = query.where(SweepRow.status.in_(statuses))
        return self._transaction(lambda s: [_sweep(r) for r in s.scalars(query)])

    def sweep_runs(self, sweep_id: str) -> list[Run]:
        """A sweep's trial runs in trial order, without curves or epochs."""
        query = (select(RunRow).options(defer(RunRow.curves), defer(RunRow.explanation))
                 .where(RunRow.sweep_id == sweep_id).order_by(RunRow.trial_number, RunRow.created_at))
        return self._transaction(lambda s: [_run(r, with_curves=False) for r in s.scalars(query)])

    def claim_trial_slot(self, sweep_id: str) -> int | None:
        """Take the next of a running sweep's trial slots; returns its index (0 for the first), or None when every
        slot is taken or the sweep has ended or been cancelled. One conditional UPDATE: two workers never take
        more than n_trials slots between them."""
        def work(s: Session) -> int | None:
            taken = s.execute(
                update(SweepRow)
                .where(SweepRow.id == sweep_id, SweepRow.status == SweepStatus.RUNNING,
                       SweepRow.cancel_requested.is_(False), SweepRow.trials_started < SweepRow.n_trials)
                .values(trials_started=SweepRow.trials_started + 1)
            ).rowcount
            if taken != 1:
                return None
            return s.scalar(select(SweepRow.trials_started).where(SweepRow.id == sweep_id)) - 1
        return self._transaction(work)

    def create_trial_run(self, config: dict[str, Any], model: str, target: str, task: str, params: dict[str, Any],
                         sweep_id: str, trial_number: int, worker_id: str) -> Run:
        """A sweep trial's run, created already running and claimed by `worker_id` (it never waits in the queue)."""
        def work(s: Session) -> Run:
            _get_or_raise(s, DatasetRow, config["dataset_id"])
            row = _queued_run(config, model, target, task, params)
            now = utcnow()
            row.sweep_id, row.trial_number = sweep_id, trial_number
            row.status, row.worker_id, row.started_at, row.heartbeat_at = RunStatus.RUNNING, worker_id, now, now
            s.add(row)
            s.flush()
            return _run(row)
        return self._transaction(work)

    def record_sweep_best(self, sweep_id: str, best_run_id: str | None) -> None:
        self._transaction(lambda s: s.execute(
            update(SweepRow).where(SweepRow.id == sweep_id).values(best_run_id=best_run_id)))

    def finish_sweep(self, sweep_id: str, error: str | None = None) -> bool:
        """Running -> finished (its trials are done or its time is up); returns whether this call ended it."""
        def work(s: Session) -> bool:
            return s.execute(
                update(SweepRow).where(SweepRow.id == sweep_id, SweepRow.status == SweepStatus.RUNNING)
                .values(status=SweepStatus.FINISHED, finished_at=utcnow(), error=error)
            ).rowcount == 1
        return self._transaction(work)

    def request_sweep_cancel(self, sweep_id: str) -> Sweep:
        """Cancel a running sweep: it starts no more trials, and its running trials are asked to stop (their
        workers stop them within seconds, as any cancelled run)."""
        def work(s: Session) -> Sweep:
            row = _get_or_raise(s, SweepRow, sweep_id, for_update=True)
            if row.status == SweepStatus.RUNNING:
                row.status, row.cancel_requested, row.finished_at = SweepStatus.CANCELLED, True, utcnow()
                s.execute(update(RunRow).where(RunRow.sweep_id == sweep_id, RunRow.status == RunStatus.RUNNING)
                          .values(cancel_requested=True))
                s.execute(update(RunRow).where(RunRow.sweep_id == sweep_id, RunRow.status == RunStatus.QUEUED)
                          .values(status=RunStatus.CANCELLED, finished_at=utcnow(),
                                  error="Cancelled with its sweep before it started."))
            s.flush()
            return _sweep(row)
        return self._transaction(work)

    # -- the queue: claimed by workers, written once per epoch --------------------------------

    def claim_next_run(self, worker_id: str) -> Run | None:
        """Move the oldest queued run to running for this worker; None when the queue is empty."""
        if self.dialect == "postgresql":
            return self._transaction(lambda s: self._claim_skipping_locked(s, worker_id))
        while True:
            run_id = self._transaction(lambda s: s.scalar(
                select(RunRow.id).where(RunRow.status == RunStatus.QUEUED).order_by(RunRow.created_at).limit(1)))
            if run_id is None:
                return None
            run = self.start_run(run_id, worker_id)
            if run is not None:
                return run
            # Another worker took it between our select and update: try the next one.

    @staticmethod
    def _claim_skipping_locked(s: Session, worker_id: str) -> Run | None:
        """PostgreSQL: lock the oldest queued row, passing over rows other workers are claiming right now."""
        row = s.scalar(select(RunRow).where(RunRow.status == RunStatus.QUEUED).order_by(RunRow.created_at).limit(1)
                       .with_for_update(skip_locked=True))
        if row is None:
            return None
        now = utcnow()
        row.status, row.worker_id, row.started_at, row.heartbeat_at = RunStatus.RUNNING, worker_id, now, now
        s.flush()
        return _run(row)

    def start_run(self, run_id: str, worker_id: str) -> Run | None:
        """Compare-and-set queued -> running: of two workers racing for a run, exactly one gets it."""
        def work(s: Session) -> Run | None:
            now = utcnow()
            claimed = s.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.status == RunStatus.QUEUED)
                .values(status=RunStatus.RUNNING, worker_id=worker_id, started_at=now, heartbeat_at=now)
            ).rowcount
            return _run(s.get(RunRow, run_id)) if claimed == 1 else None
        return self._transaction(work)

    def record_plan(self, run_id: str, epochs_planned: int, batches_per_epoch: int) -> None:
        """What training will do, for the progress bar: set once when it starts."""
        self._update(run_id, epochs_planned=epochs_planned, batches_per_epoch=batches_per_epoch,
                     heartbeat_at=utcnow())

    def record_epoch(self, run_id: str, metrics: EpochMetrics) -> bool:
        """One short transaction per epoch: the history row, the progress counters and the heartbeat; returns
        whether a cancel was requested."""
        def work(s: Session) -> bool:
            s.merge(EpochRow(run_id=run_id, **metrics.__dict__))
            s.execute(update(RunRow).where(RunRow.id == run_id).values(
                epochs_done=metrics.epoch, batches_done=0, heartbeat_at=utcnow()))
            return bool(s.scalar(select(RunRow.cancel_requested).where(RunRow.id == run_id)))
        return self._transaction(work)

    def heartbeat_run(self, run_id: str, batches_done: int | None = None) -> bool:
        """Refresh the heartbeat (and batch progress); returns whether a cancel was requested."""
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if batches_done is not None:
            values["batches_done"] = batches_done

        def work(s: Session) -> bool:
            s.execute(update(RunRow).where(RunRow.id == run_id).values(**values))
            return bool(s.scalar(select(RunRow.cancel_requested).where(RunRow.id == run_id)))
        return self._transaction(work)

    def finish_run(self, run_id: str, result: RunResult) -> None:
        if not RunStatus(result.status).is_final:
            raise ValueError(f"not a final status: {result.status}")
        values = {k: v for k, v in result.__dict__.items() if v is not None and k != "error"}
        self._update(run_id, **values, error=result.error, finished_at=utcnow(), batches_done=0)

    def record_explanation(self, run_id: str, explanation: dict[str, Any]) -> None:
        """Keep what a succeeded run learned (workbench.explain), replacing an earlier explanation."""
        def work(s: Session) -> None:
            row = _get_or_raise(s, RunRow, run_id, for_update=True)
            if row.status != RunStatus.SUCCEEDED:
                raise UserError(f"Run {run_id} has not finished successfully ({row.status}); nothing to explain.")
            row.explanation = explanation
        self._transaction(work)

    def request_cancel(self, run_id: str) -> Run:
        """Queued runs are cancelled at once; a running run is stopped by its worker within seconds."""
        def work(s: Session) -> Run:
            row = _get_or_raise(s, RunRow, run_id, for_update=True)
            if row.status == RunStatus.QUEUED:
                row.status, row.finished_at, row.error = RunStatus.CANCELLED, utcnow(), "Cancelled before it started."
            elif row.status == RunStatus.RUNNING:
                row.cancel_requested = True
            s.flush()
            return _run(row)
        return self._transaction(work)

    def interrupt_stale_runs(self, dead_worker_ids: Collection[str] = ()) -> list[str]:
        """Running runs whose worker is gone become interrupted; returns their ids. Gone: its heartbeat is older
        than the timeout (killed, machine restarted), its worker row was removed when it stopped, or it is one of
        `dead_worker_ids` (jobs found its process dead), whose rows are removed too. Writes only when something
        changes. Called explicitly (jobs.recover_stale_runs), never by a read."""
        cutoff = utcnow() - timedelta(seconds=self.settings.heartbeat_timeout_s)
        dead = set(dead_worker_ids)

        def work(s: Session) -> list[str]:
            # Runs first, workers second: a run seen running was claimed after its worker's row was committed.
            running = s.execute(select(RunRow.id, RunRow.worker_id, RunRow.heartbeat_at, RunRow.started_at)
                                .where(RunRow.status == RunStatus.RUNNING)).all()
            registered = set(s.scalars(select(WorkerRow.id)))
            stale = [r.id for r in running
                     if (r.heartbeat_at or r.started_at or cutoff) < cutoff or r.worker_id in dead
                     or r.worker_id not in registered]
            if dead & registered:
                s.execute(delete(WorkerRow).where(WorkerRow.id.in_(dead & registered)))
            if stale:
                s.execute(update(RunRow).where(RunRow.id.in_(stale), RunRow.status == RunStatus.RUNNING).values(
                    status=RunStatus.INTERRUPTED, finished_at=utcnow(),
                    error="The worker training this run stopped unexpectedly; the run was interrupted."))
            return stale
        return self._transaction(work)

    def _update(self, run_id: str, **values: Any) -> None:
        self._transaction(lambda s: s.execute(update(RunRow).where(RunRow.id == run_id).values(**values)))

    # -- prediction batches: what a run has been asked (workbench.monitoring) ---------------------

    def add_prediction_batch(self, run_id: str, source: str, n_rows: int, summary: dict[str, Any],
                             rows_file: str | None = None) -> PredictionBatch:
        def work(s: Session) -> PredictionBatch:
            _get_or_raise(s, RunRow, run_id)
            row = PredictionBatchRow(id=new_id(), run_id=run_id, created_at=utcnow(), source=source, n_rows=n_rows,
                                     summary=summary, rows_file=rows_file)
            s.add(row)
            s.flush()
            return _prediction_batch(row)
        return self._transaction(work)

    def list_prediction_batches(self, run_id: str, limit: int | None = None,
                                with_summary: bool = True) -> list[PredictionBatch]:
        """A run's batches, newest first; `with_summary` False reads only when, where from and how many rows."""
        query = (select(PredictionBatchRow).where(PredictionBatchRow.run_id == run_id)
                 .order_by(PredictionBatchRow.created_at.desc(), PredictionBatchRow.id))
        if not with_summary:
            query = query.options(defer(PredictionBatchRow.summary))
        if limit:
            query = query.limit(limit)
        return self._transaction(lambda s: [_prediction_batch(r, with_summary) for r in s.scalars(query)])

    def prediction_activity(self) -> list[PredictionActivity]:
        """Per run that has predicted anything: its batches, rows, first and last time; the latest first. One
        grouped query over the (run_id, created_at) index."""
        query = (select(PredictionBatchRow.run_id, func.count(), func.sum(PredictionBatchRow.n_rows),
                        func.min(PredictionBatchRow.created_at), func.max(PredictionBatchRow.created_at))
                 .group_by(PredictionBatchRow.run_id).order_by(func.max(PredictionBatchRow.created_at).desc()))
        return self._transaction(lambda s: [PredictionActivity(run_id, int(n), int(rows or 0), first, last)
                                            for run_id, n, rows, first, last in s.execute(query)])

    # -- workers ------------------------------------------------------------------------------

    def register_worker(self, pid: int | None = None, worker_id: str | None = None) -> Worker:
        """`worker_id`: the caller's own id (a Ray task's names its node), unique, at most 64 characters."""
        now = utcnow()
        row = WorkerRow(id=worker_id or new_id(), pid=pid or os.getpid(), hostname=socket.gethostname(),
                        started_at=now, heartbeat_at=now)
        self._transaction(lambda s: s.add(row))
        return _worker(row)

    def heartbeat_worker(self, worker_id: str) -> None:
        self._transaction(lambda s: s.execute(
            update(WorkerRow).where(WorkerRow.id == worker_id).values(heartbeat_at=utcnow())))

    def stop_worker(self, worker_id: str) -> None:
        self._transaction(lambda s: s.execute(delete(WorkerRow).where(WorkerRow.id == worker_id)))

    def list_workers(self) -> list[Worker]:
        """Every registered worker, alive or not (jobs checks the processes of this host)."""
        return self._transaction(lambda s: [_worker(r) for r in s.scalars(select(WorkerRow))])

    def live_workers(self) -> list[Worker]:
        """Workers that beat within the heartbeat timeout."""
        cutoff = utcnow() - timedelta(seconds=self.settings.heartbeat_timeout_s)
        return self._transaction(lambda s: [
            _worker(r) for r in s.scalars(select(WorkerRow).where(WorkerRow.heartbeat_at >= cutoff))])
