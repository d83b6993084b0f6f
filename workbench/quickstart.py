"""Quick start: a few strong default runs for a dataset and target, queued at once, so a newcomer sees fast,
comparable first results.

Every run is an ordinary queued run with the default split, so they are scored on the same test rows. The order is
the queue's order: gradient boosting first (the bar on tabular data, and fast), then the linear model, the random
forest and the MLP, whose first epochs take longest. Larger tables get fewer trees and fewer epochs, so that the
first results still come back in seconds to a minute or two on a CPU.
"""

from __future__ import annotations

from typing import Any

from workbench import jobs
from workbench.datasets import load_table
from workbench.errors import UserError
from workbench.runconfig import RunConfig
from workbench.runner import validate_config
from workbench.store import Run, Store
from workbench.tasks import Task

MEDIUM_TABLE_ROWS = 20_000  # above: 100 trees in the forest and a shorter MLP schedule
LARGE_TABLE_ROWS = 200_000  # above: no random forest (slow and memory-hungry on that many rows)


def quick_start_plan(task: Task, n_rows: int) -> list[tuple[str, dict[str, Any]]]:
    """The (model, hyperparameter overrides) to queue for a table of `n_rows` rows and this task, in queue order."""
    linear = "ridge" if task == Task.REGRESSION else "logistic_regression"
    plan: list[tuple[str, dict[str, Any]]] = [("gradient_boosting", {}), (linear, {})]
    if n_rows <= MEDIUM_TABLE_ROWS:
        return [*plan, ("random_forest", {}), ("mlp", {})]
    if n_rows <= LARGE_TABLE_ROWS:
        return [*plan, ("random_forest", {"n_estimators": 100}), ("mlp", {"epochs": 40, "patience": 8})]
    return [*plan, ("mlp", {"epochs": 20, "patience": 5})]


def quick_start(store: Store, dataset_id: str, target: str | None) -> list[Run]:
    """Queue the quick-start runs for predicting `target` from this dataset; returns them in queue order.
    Validated like any submit, all before any is queued: a user error is one sentence and queues nothing.
    A worker must be started to train them (`jobs.executor_for(store).ensure_running()`)."""
    if not target:
        raise UserError("Choose the column to predict before a quick start.")
    table = load_table(store, dataset_id)
    task = validate_config(RunConfig(dataset_id, target, "gradient_boosting"), table).task
    configs = [RunConfig(dataset_id=dataset_id, target=target, model=model, params=params)
               for model, params in quick_start_plan(task, len(table))]
    return jobs.submit_runs(store, configs)
