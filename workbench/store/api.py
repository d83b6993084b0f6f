"""The store API. SQLAlchemy stays in here: callers get dataclasses and never hold a session.

One short transaction per logical change (`session_scope` commits or rolls back). SQLite runs in WAL
mode with a busy timeout, so readers never block the worker and writers wait instead of failing.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import create_engine, delete, event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, defer, sessionmaker

from workbench.config import Settings, get_settings
from workbench.errors import UserError, storage_error_message
from workbench.store.entities import Dataset, EpochMetrics, Run, RunStatus, Worker, utcnow
from workbench.store.orm import Base, DatasetRow, EpochRow, RunRow, WorkerRow

BUSY_TIMEOUT_MS = 60_000


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
        epochs=[_epoch(e) for e in epochs or []],
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


class Store:
    def __init__(self, url: str, settings: Settings | None = None):
        self.settings = settings or get_settings()
        is_sqlite = url.startswith("sqlite")
        if is_sqlite:
            db_path = url.split("///", 1)[-1]
            if db_path and db_path != ":memory:":
                os.makedirs(os.path.dirname(db_path) or ".", exist_ok=True)
        connect_args = {"timeout": BUSY_TIMEOUT_MS / 1000} if is_sqlite else {}
        self.engine = create_engine(url, connect_args=connect_args)
        if is_sqlite:
            _configure_sqlite(self.engine)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Store:
        settings = settings or get_settings()
        return cls(settings.database_url, settings)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException as exc:
            session.rollback()
            if isinstance(exc, OperationalError) and (message := storage_error_message(exc)):
                raise UserError(message) from exc
            raise
        finally:
            session.close()

    # -- datasets -----------------------------------------------------------------------------

    def add_dataset(self, dataset: Dataset) -> Dataset:
        with self.session_scope() as s:
            s.add(DatasetRow(**dataset.__dict__))
        return dataset

    def get_dataset(self, dataset_id: str) -> Dataset:
        with self.session_scope() as s:
            row = s.get(DatasetRow, dataset_id)
            if row is None:
                raise UserError(f"There is no dataset with id '{dataset_id}'.")
            return _dataset(row)

    def find_dataset_by_hash(self, content_hash: str) -> Dataset | None:
        with self.session_scope() as s:
            row = s.scalar(select(DatasetRow).where(DatasetRow.content_hash == content_hash))
            return _dataset(row) if row else None

    def list_datasets(self) -> list[Dataset]:
        with self.session_scope() as s:
            return [_dataset(r) for r in s.scalars(select(DatasetRow).order_by(DatasetRow.created_at.desc()))]

    def delete_dataset(self, dataset_id: str) -> tuple[Dataset, list[str]]:
        """Delete a dataset and its runs; returns it and the deleted run ids (their files go next)."""
        with self.session_scope() as s:
            row = s.get(DatasetRow, dataset_id)
            if row is None:
                raise UserError(f"There is no dataset with id '{dataset_id}'.")
            run_ids = list(s.scalars(select(RunRow.id).where(RunRow.dataset_id == dataset_id)))
            dataset = _dataset(row)
            s.execute(delete(DatasetRow).where(DatasetRow.id == dataset_id))
        return dataset, run_ids

    # -- runs ---------------------------------------------------------------------------------

    def create_run(self, config: dict[str, Any], model: str, target: str, task: str,
                   params: dict[str, Any]) -> Run:
        row = RunRow(
            id=new_id(), dataset_id=config["dataset_id"], status=RunStatus.QUEUED, model=model, target=target, task=task,
            config=config, params=params, created_at=utcnow(), cancel_requested=False, epochs_done=0,
            epochs_planned=int(params.get("epochs", 1)),
            batches_done=0, metrics={}, baseline={}, curves={}, details={},
        )
        with self.session_scope() as s:
            if s.get(DatasetRow, config["dataset_id"]) is None:
                raise UserError(f"There is no dataset with id '{config['dataset_id']}'.")
            s.add(row)
            s.flush()
            return _run(row)

    def get_run(self, run_id: str, with_epochs: bool = True) -> Run:
        self.interrupt_stale_runs()
        with self.session_scope() as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise UserError(f"There is no run with id '{run_id}'.")
            epochs = self._epoch_rows(s, run_id) if with_epochs else None
            return _run(row, epochs)

    def get_runs(self, run_ids: list[str]) -> list[Run]:
        self.interrupt_stale_runs()
        with self.session_scope() as s:
            rows = s.scalars(select(RunRow).where(RunRow.id.in_(run_ids))).all()
            by_id = {r.id: _run(r, self._epoch_rows(s, r.id)) for r in rows}
        return [by_id[i] for i in run_ids if i in by_id]

    def list_runs(self, dataset_id: str | None = None, statuses: tuple[RunStatus, ...] | None = None,
                  limit: int | None = None) -> list[Run]:
        """Runs, newest first, without their curves or epochs (see get_runs for those)."""
        self.interrupt_stale_runs()
        # Curves (hundreds of points per run) are only read for the runs being compared: get_runs.
        query = select(RunRow).options(defer(RunRow.curves)).order_by(RunRow.created_at.desc())
        if dataset_id:
            query = query.where(RunRow.dataset_id == dataset_id)
        if statuses:
            query = query.where(RunRow.status.in_(statuses))
        if limit:
            query = query.limit(limit)
        with self.session_scope() as s:
            return [_run(r, with_curves=False) for r in s.scalars(query)]

    def count_runs(self) -> int:
        with self.session_scope() as s:
            return s.scalar(select(func.count()).select_from(RunRow)) or 0

    def delete_run(self, run_id: str) -> None:
        with self.session_scope() as s:
            if s.execute(delete(RunRow).where(RunRow.id == run_id)).rowcount == 0:
                raise UserError(f"There is no run with id '{run_id}'.")

    def epochs(self, run_id: str) -> list[EpochMetrics]:
        with self.session_scope() as s:
            return [_epoch(r) for r in self._epoch_rows(s, run_id)]

    @staticmethod
    def _epoch_rows(s: Session, run_id: str) -> list[EpochRow]:
        return list(s.scalars(select(EpochRow).where(EpochRow.run_id == run_id).order_by(EpochRow.epoch)))

    # -- the queue: claimed by workers, written once per epoch --------------------------------

    def claim_next_run(self, worker_id: str) -> Run | None:
        """Move the oldest queued run to running for this worker; None when the queue is empty."""
        while True:
            with self.session_scope() as s:
                run_id = s.scalar(
                    select(RunRow.id).where(RunRow.status == RunStatus.QUEUED).order_by(RunRow.created_at).limit(1)
                )
            if run_id is None:
                return None
            run = self.start_run(run_id, worker_id)
            if run is not None:
                return run
            # Another worker took it between our select and update: try the next one.

    def start_run(self, run_id: str, worker_id: str) -> Run | None:
        """Compare-and-set queued -> running: of two workers racing for a run, exactly one gets it."""
        now = utcnow()
        with self.session_scope() as s:
            claimed = s.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.status == RunStatus.QUEUED)
                .values(status=RunStatus.RUNNING, worker_id=worker_id, started_at=now, heartbeat_at=now)
            ).rowcount
            return _run(s.get(RunRow, run_id)) if claimed == 1 else None

    def mark_training(self, run_id: str, *, task: str, params: dict[str, Any], device: str | None,
                      epochs_planned: int, batches_per_epoch: int) -> None:
        self._update(run_id, task=task, params=params, device=device, epochs_planned=epochs_planned,
                     batches_per_epoch=batches_per_epoch, heartbeat_at=utcnow())

    def record_epoch(self, run_id: str, metrics: EpochMetrics) -> None:
        """One short transaction per epoch: the history row, the progress counters and the heartbeat."""
        with self.session_scope() as s:
            s.merge(EpochRow(run_id=run_id, **metrics.__dict__))
            s.execute(update(RunRow).where(RunRow.id == run_id).values(
                epochs_done=metrics.epoch, batches_done=0, heartbeat_at=utcnow()))

    def heartbeat_run(self, run_id: str, batches_done: int | None = None) -> bool:
        """Refresh the heartbeat (and batch progress); returns whether a cancel was requested."""
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if batches_done is not None:
            values["batches_done"] = batches_done
        with self.session_scope() as s:
            s.execute(update(RunRow).where(RunRow.id == run_id).values(**values))
            return bool(s.scalar(select(RunRow.cancel_requested).where(RunRow.id == run_id)))

    def finish_run(self, run_id: str, status: RunStatus, **values: Any) -> None:
        if not RunStatus(status).is_final:
            raise ValueError(f"not a final status: {status}")
        self._update(run_id, status=status, finished_at=utcnow(), **values)

    def request_cancel(self, run_id: str) -> Run:
        """Queued runs are cancelled at once; a running run is stopped by its worker within seconds."""
        with self.session_scope() as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise UserError(f"There is no run with id '{run_id}'.")
            if row.status == RunStatus.QUEUED:
                row.status, row.finished_at, row.error = RunStatus.CANCELLED, utcnow(), "Cancelled before it started."
            elif row.status == RunStatus.RUNNING:
                row.cancel_requested = True
            s.flush()
            return _run(row)

    def interrupt_stale_runs(self) -> int:
        """Running runs whose worker stopped beating (killed, machine restarted) become interrupted."""
        cutoff = utcnow() - timedelta(seconds=self.settings.heartbeat_timeout_s)
        with self.session_scope() as s:
            stale = list(s.scalars(select(RunRow).where(RunRow.status == RunStatus.RUNNING)))
            if not stale:
                return 0
            dead_workers = self._dead_local_workers(s)
            count = 0
            for row in stale:
                if (row.heartbeat_at or row.started_at or cutoff) < cutoff or row.worker_id in dead_workers:
                    row.status, row.finished_at = RunStatus.INTERRUPTED, utcnow()
                    row.error = "The worker training this run stopped unexpectedly; the run was interrupted."
                    count += 1
            return count

    def _update(self, run_id: str, **values: Any) -> None:
        with self.session_scope() as s:
            s.execute(update(RunRow).where(RunRow.id == run_id).values(**values))

    # -- workers ------------------------------------------------------------------------------

    def register_worker(self, pid: int | None = None) -> Worker:
        now = utcnow()
        row = WorkerRow(id=new_id(), pid=pid or os.getpid(), hostname=socket.gethostname(), started_at=now,
                        heartbeat_at=now)
        with self.session_scope() as s:
            # Housekeeping: forget rows of local workers whose process is gone (killed, crashed).
            dead = {r.id for r in s.scalars(select(WorkerRow)) if r.hostname == row.hostname and not _pid_alive(r.pid)}
            if dead:
                s.execute(delete(WorkerRow).where(WorkerRow.id.in_(dead)))
            s.add(row)
        return Worker(row.id, row.pid, row.hostname, row.started_at, row.heartbeat_at)

    def heartbeat_worker(self, worker_id: str) -> None:
        with self.session_scope() as s:
            s.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(heartbeat_at=utcnow()))

    def stop_worker(self, worker_id: str) -> None:
        with self.session_scope() as s:
            s.execute(delete(WorkerRow).where(WorkerRow.id == worker_id))

    def live_workers(self) -> list[Worker]:
        cutoff = utcnow() - timedelta(seconds=self.settings.heartbeat_timeout_s)
        with self.session_scope() as s:
            dead = self._dead_local_workers(s)
            rows = s.scalars(select(WorkerRow).where(WorkerRow.heartbeat_at >= cutoff))
            return [Worker(r.id, r.pid, r.hostname, r.started_at, r.heartbeat_at) for r in rows if r.id not in dead]

    @staticmethod
    def _dead_local_workers(s: Session) -> set[str]:
        """Worker ids that are surely gone: their process on this host has exited, or their row was
        removed when they stopped. No need to wait for the heartbeat timeout for those."""
        host = socket.gethostname()
        rows = list(s.scalars(select(WorkerRow)))
        alive = {r.id for r in rows if r.hostname != host or _pid_alive(r.pid)}
        running = set(s.scalars(select(RunRow.worker_id).where(RunRow.status == RunStatus.RUNNING)))
        return (running | {r.id for r in rows}) - alive


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed child that its parent has not reaped yet is a zombie: not alive for us.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
