"""What the store hands out: plain dataclasses and the run status. No SQLAlchemy in here."""

from __future__ import annotations

import math
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
    PRUNED = "pruned"  # a sweep trial stopped early because it was doing worse than the others (curves kept)

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.DIVERGED, RunStatus.CANCELLED,
                            RunStatus.INTERRUPTED, RunStatus.PRUNED})
ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
RECENT_EPOCHS = 5  # the ETA's seconds per epoch: the median of this many latest epochs


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
    sweep_id: str | None = None  # a trial of a sweep: the sweep, and its Optuna trial number
    trial_number: int | None = None
    # workbench.explain.Explanation.to_dict(); {} until computed, and in lists of runs (Store.list_runs, group_runs)
    explanation: dict[str, Any] = field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def progress(self, epochs: list[EpochMetrics] | None = None) -> dict[str, Any]:
        """Epoch of N, batches done, time left and last heartbeat, for a live panel or `show --json`.

        `eta_s` is the time left if every planned epoch runs (the upper bound); `eta_likely_s` the time left if early
        stopping ends the run once its patience runs out after the best epoch so far (the lower bound while it keeps
        improving). Both come from the measured seconds per epoch (`epochs`, default the run's own `epochs`; before
        the first epoch ends, from the pace of its batches)."""
        epochs = self.epochs if epochs is None else epochs
        planned = self.epochs_planned or 0
        per_epoch = self.batches_per_epoch or 0
        total_batches = planned * per_epoch
        done_batches = self.epochs_done * per_epoch + self.batches_done
        fraction = min(done_batches / total_batches, 1.0) if total_batches else 0.0
        eta_s = eta_likely_s = None
        epoch_s = self._epoch_seconds(epochs)
        if self.started_at and 0 < fraction < 1 and epoch_s is not None:
            in_epoch = self.batches_done / per_epoch if per_epoch else 0.0
            eta_s = max(0.0, (planned - self.epochs_done - in_epoch) * epoch_s)
            last = planned
            patience = int(self.params.get("patience") or 0)
            if patience:
                best = self._best_epoch(epochs) or self.epochs_done
                last = min(planned, max(best, 1) + patience)
            eta_likely_s = min(eta_s, max(0.0, (last - self.epochs_done - in_epoch) * epoch_s))
        return {
            "epoch": self.epochs_done,
            "epochs_planned": planned,
            "batch": self.batches_done,
            "batches_per_epoch": per_epoch,
            "fraction": round(fraction, 4),
            "eta_s": None if eta_s is None else round(eta_s, 1),
            "eta_likely_s": None if eta_likely_s is None else round(eta_likely_s, 1),
            "heartbeat_at": self.heartbeat_at.isoformat() if self.heartbeat_at else None,
        }

    def _epoch_seconds(self, epochs: list[EpochMetrics]) -> float | None:
        """Seconds per epoch: the median of the last few measured epochs, or the pace of the first epoch's batches."""
        measured = sorted(e.seconds for e in epochs[-RECENT_EPOCHS:] if e.seconds is not None and e.seconds >= 0)
        if measured:
            return measured[len(measured) // 2]
        if self.started_at and self.batches_done and self.batches_per_epoch:
            elapsed = ((self.heartbeat_at or utcnow()) - self.started_at).total_seconds()
            return max(0.0, elapsed) * self.batches_per_epoch / self.batches_done
        return None

    def _best_epoch(self, epochs: list[EpochMetrics]) -> int | None:
        """The epoch early stopping counts from: the best validation metric (ties to the lower validation loss), as
        the trainer judges it (workbench.training._fit; the metric's direction is tasks.primary_metric's)."""
        higher = self.task != "regression"  # accuracy up, rmse down: tests/test_store.py checks this against tasks
        scored = [e for e in epochs if e.val_metric is not None and math.isfinite(e.val_metric)]
        if not scored:
            return None

        def score(e: EpochMetrics) -> tuple[float, float]:
            loss = e.val_loss if e.val_loss is not None and math.isfinite(e.val_loss) else math.inf
            return (e.val_metric if higher else -e.val_metric, -loss)

        return max(scored, key=lambda e: (score(e), -e.epoch)).epoch


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


class SweepStatus(StrEnum):
    """A sweep runs until its trials are all done or its time is up (finished), or it is cancelled."""

    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self != SweepStatus.RUNNING


@dataclass
class Sweep:
    """A hyperparameter search: an Optuna study (`study_name`, in the same database) whose trials are ordinary runs
    (Run.sweep_id, Run.trial_number). `config` is workbench.sweeps.SweepConfig.to_dict() plus the resolved search
    space, the metric and its direction. `trials_started` counts the trial slots taken, at most `n_trials`."""

    id: str
    dataset_id: str
    target: str
    model: str
    task: str
    status: SweepStatus
    config: dict[str, Any]
    study_name: str
    n_trials: int
    trials_started: int
    best_run_id: str | None
    created_at: datetime
    started_at: datetime
    finished_at: datetime | None
    cancel_requested: bool
    error: str | None

    @property
    def is_final(self) -> bool:
        return self.status.is_final


@dataclass
class PredictionBatch:
    """One batch of predictions a run made (workbench.monitoring): when, from where (page, cli or api), how many rows
    and the summary of its columns and predictions ({} in listings read without it). `rows_file`: the rows' Parquet
    file under WORKBENCH_HOME, kept only when WORKBENCH_LOG_ROWS=1."""

    id: str
    run_id: str
    created_at: datetime
    source: str
    n_rows: int
    summary: dict[str, Any]
    rows_file: str | None = None


@dataclass
class PredictionActivity:
    """How much a run has predicted: its batches, their rows, the first and the last."""

    run_id: str
    batches: int
    rows: int
    first_at: datetime
    last_at: datetime


@dataclass
class Worker:
    id: str
    pid: int
    hostname: str
    started_at: datetime
    heartbeat_at: datetime
