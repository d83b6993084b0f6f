"""The tracking store: datasets, runs, run groups, sweeps, per-epoch metrics and workers, behind plain dataclasses."""

from workbench.store.api import Store
from workbench.store.entities import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
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

__all__ = ["ACTIVE_STATUSES", "FINAL_STATUSES", "Dataset", "EpochMetrics", "PredictionActivity", "PredictionBatch",
           "Run", "RunGroup", "RunResult", "RunStatus", "Store",
           "Sweep", "SweepStatus", "Worker", "utcnow"]
