"""SQLAlchemy 2.0 typed tables. Only the store imports this module; everything else sees dataclasses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class DatasetRow(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    n_rows: Mapped[int] = mapped_column(Integer)
    n_columns: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(255))  # relative to WORKBENCH_HOME/datasets
    schema: Mapped[list[Any]] = mapped_column(JSON)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    notes: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    runs: Mapped[list[RunRow]] = relationship(back_populates="dataset", cascade="all, delete-orphan", passive_deletes=True)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    task: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    device: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    worker_id: Mapped[str | None] = mapped_column(String(64))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    epochs_planned: Mapped[int | None] = mapped_column(Integer)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    batches_per_epoch: Mapped[int | None] = mapped_column(Integer)
    batches_done: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[float | None] = mapped_column(Float)
    primary_metric: Mapped[str | None] = mapped_column(String(32))
    primary_value: Mapped[float | None] = mapped_column(Float)
    split_fingerprint: Mapped[str | None] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    baseline: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    curves: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # notes, split sizes, versions
    error: Mapped[str | None] = mapped_column(Text)
    # {"test": {metric: [low, high]}}: the 95% bootstrap interval of each test score (None before revision 0002)
    intervals: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A member of a repeated run: its group and which test rows it had (FoldAssignments.member_name).
    group_id: Mapped[str | None] = mapped_column(String(32), index=True)
    member: Mapped[str | None] = mapped_column(String(16))
    # A trial of a sweep: the sweep and the Optuna trial number (revision 0003). No foreign key, as group_id: SQLite
    # adds a plain column in place, while a new constraint would copy the runs table.
    sweep_id: Mapped[str | None] = mapped_column(String(32), index=True)
    trial_number: Mapped[int | None] = mapped_column(Integer)
    # workbench.explain.Explanation.to_dict() (revision 0004): None until the worker or `explain` computes it.
    explanation: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    dataset: Mapped[DatasetRow] = relationship(back_populates="runs")
    epochs: Mapped[list[EpochRow]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class EpochRow(Base):
    __tablename__ = "epochs"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    train_loss: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    val_metric: Mapped[float | None] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)


class RunGroupRow(Base):
    """A repeated run: its members are ordinary runs (runs.group_id); `scheme` is the stored FoldAssignments record
    that fixes every member's test rows."""

    __tablename__ = "run_groups"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(255))
    model: Mapped[str] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    scheme: Mapped[dict[str, Any]] = mapped_column(JSON)  # FoldAssignments.to_dict(): the folds of every member
    scheme_key: Mapped[str] = mapped_column(String(64), index=True)
    test_share: Mapped[float] = mapped_column(Float)
    n_members: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class SweepRow(Base):
    """A hyperparameter search; its trials are runs (runs.sweep_id), its Optuna study is `study_name`."""

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(255))
    model: Mapped[str] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # SweepConfig, resolved space, metric, direction
    study_name: Mapped[str] = mapped_column(String(128), unique=True)
    n_trials: Mapped[int] = mapped_column(Integer)
    trials_started: Mapped[int] = mapped_column(Integer, default=0)  # slots taken: never above n_trials
    best_run_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)


class PredictionBatchRow(Base):
    """One prediction batch of a run (revision 0005): a JSON summary of its columns and predictions, no rows."""

    __tablename__ = "prediction_batches"
    __table_args__ = (Index("ix_prediction_batches_run_created", "run_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    source: Mapped[str] = mapped_column(String(16))
    n_rows: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)  # workbench.monitoring's per-column counts and statistics
    rows_file: Mapped[str | None] = mapped_column(String(255))  # the rows' Parquet file, only with WORKBENCH_LOG_ROWS=1


class WorkerRow(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    hostname: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime)
