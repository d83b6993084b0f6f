"""The tracking store: datasets, runs, per-epoch metrics and workers, behind plain dataclasses."""

from workbench.store.api import (
    FINAL_STATUSES,
    Dataset,
    EpochMetrics,
    Run,
    Store,
    Worker,
)

__all__ = ["FINAL_STATUSES", "Dataset", "EpochMetrics", "Run", "Store", "Worker"]
