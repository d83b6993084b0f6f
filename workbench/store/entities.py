"""What the store hands out: plain dataclasses and the run status. No SQLAlchemy in here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    """Where a run is in its life. A StrEnum, so it is stored and compared as its plain text value."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DIVERGED = "diverged"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.DIVERGED, RunStatus.CANCELLED,
                            RunStatus.INTERRUPTED})
ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Dataset:
    id: str
    name: str
    content_hash: str
    n_rows: int
    n_columns: int
    size_bytes: int
    file_name: str
    schema: list[dict[str, Any]]
    profile: dict[str, Any]
    notes: list[str]
    created_at: datetime


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float | None
    val_loss: float | None
    val_metric: float | None
    lr: float | None
    seconds: float | None


@dataclass
class Run:
    id: str
    dataset_id: str
    status: RunStatus
    model: str
    target: str
    task: str
    config: dict[str, Any]
    params: dict[str, Any]
    device: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    worker_id: str | None
    cancel_requested: bool
    epochs_planned: int | None
    epochs_done: int
    batches_per_epoch: int | None
    batches_done: int
    duration_s: float | None
    primary_metric: str | None
    primary_value: float | None
    split_fingerprint: str | None
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    curves: dict[str, Any]
    details: dict[str, Any]
    error: str | None
    epochs: list[EpochMetrics] = field(default_factory=list)
    intervals: dict[str, Any] = field(default_factory=dict)  # {"test": {metric: [low, high]}}; {} for older runs
    group_id: str | None = None
    member: str | None = None  # which test rows of its group's scheme (e.g. 'r0f3')

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def progress(self) -> dict[str, Any]:
        """Epoch of N, batches done, ETA and last heartbeat, for a live panel or `show --json`."""
        planned = self.epochs_planned or 0
        per_epoch = self.batches_per_epoch or 0
        total_batches = planned * per_epoch
        done_batches = self.epochs_done * per_epoch + self.batches_done
        fraction = min(done_batches / total_batches, 1.0) if total_batches else 0.0
        eta_s = None
        if self.started_at and 0 < fraction < 1:
            elapsed = ((self.heartbeat_at or utcnow()) - self.started_at).total_seconds()
            eta_s = elapsed * (1 - fraction) / fraction
        return {
            "epoch": self.epochs_done,
            "epochs_planned": planned,
            "batch": self.batches_done,
            "batches_per_epoch": per_epoch,
            "fraction": round(fraction, 4),
            "eta_s": None if eta_s is None else round(eta_s, 1),
            "heartbeat_at": self.heartbeat_at.isoformat() if self.heartbeat_at else None,
        }


@dataclass
class RunResult:
    """How a run ended, written once by `Store.finish_run`. A field left None keeps what the store has (a run
    that failed before training keeps the params it was queued with)."""

    status: RunStatus
    error: str | None = None
    task: str | None = None
    params: dict[str, Any] | None = None
    device: str | None = None
    duration_s: float | None = None
    epochs_done: int | None = None
    primary_metric: str | None = None
    primary_value: float | None = None
    split_fingerprint: str | None = None
    metrics: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    curves: dict[str, Any] | None = None
    details: dict[str, Any] | None = None
    intervals: dict[str, Any] | None = None


@dataclass
class RunGroup:
    """A repeated run. `scheme` (the FoldAssignments record, every member's folds) is only read when asked for."""

    id: str
    dataset_id: str
    target: str
    model: str
    task: str
    config: dict[str, Any]
    scheme_key: str
    test_share: float
    n_members: int
    created_at: datetime
    scheme: dict[str, Any] | None = None


@dataclass
class Worker:
    id: str
    pid: int
    hostname: str
    started_at: datetime
    heartbeat_at: datetime
