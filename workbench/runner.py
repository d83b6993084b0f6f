"""One run, end to end: validate, prepare, train, score, save. The worker, the CLI and tests call this."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench import metrics
from workbench.artifacts import save_run
from workbench.callbacks import Callback, CallbackList, EpochRecord, RunCancelled
from workbench.errors import UserError
from workbench.models.registry import ModelSpec, get_model, resolve_params
from workbench.predict import estimator_predictions, outputs_to_predictions
from workbench.prepare import MIN_TRAIN_ROWS, Prepared, detect_task, prepare
from workbench.runconfig import RunConfig
from workbench.store.entities import RunStatus
from workbench.training import FitResult, Objective, Tensors, fit, predict_outputs, select_device

log = logging.getLogger(__name__)


@dataclass
class Resolved:
    task: str
    params: dict[str, Any]


@dataclass
class RunOutcome:
    status: RunStatus
    task: str
    params: dict[str, Any]
    device: str
    epochs_run: int
    duration_s: float
    primary_metric: str
    history: list[EpochRecord] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    baseline: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, Any] = field(default_factory=dict)
    split_fingerprint: str = ""
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    dropped_target_rows: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def validate_config(config: RunConfig, table: pd.DataFrame) -> Resolved:
    """Everything that can be checked before training, so a bad setting is refused before it is queued."""
    config.validate()
    spec = get_model(config.model)
    params = resolve_params(config.model, config.params)
    if config.target not in table.columns:
        raise UserError(f"There is no column called '{config.target}' to predict.")
    present = table[config.target].dropna().rename(config.target)
    # The real cause first: an empty target or too few rows, before what follows from it (a single value).
    if present.empty:
        raise UserError(f"The target '{config.target}' is empty on every row; there is nothing to learn from.")
    if len(table) < MIN_TRAIN_ROWS:
        raise UserError(f"The table has only {len(table)} row{'s' if len(table) > 1 else ''}; at least "
                        f"{MIN_TRAIN_ROWS} are needed to train.")
    if len(present) < MIN_TRAIN_ROWS:
        raise UserError(f"Only {len(present)} {'row has' if len(present) == 1 else 'rows have'} a value for "
                        f"'{config.target}'; at least {MIN_TRAIN_ROWS} are needed to train.")
    task = detect_task(present, config.task)
    if task not in spec.tasks:
        raise UserError(f"'{spec.name}' does not do {task}; it does {' and '.join(spec.tasks)}.")
    for name in config.exclude:
        if name not in table.columns:
            raise UserError(f"Cannot exclude '{name}': there is no such column.")
    if "device" in params:
        select_device(params["device"])
    return Resolved(task, params)


def execute(config: RunConfig, table: pd.DataFrame, run_dir: Path, callbacks: Sequence[Callback] = ()) -> RunOutcome:
    """Train one run and save it to run_dir when it succeeds. A UserError is raised before training; any other
    failure during training ends the run 'failed' with the message, so a worker never crashes on a run."""
    started = time.perf_counter()
    resolved = validate_config(config, table)
    spec = get_model(config.model)
    prepared = prepare(table, config.target, resolved.task, config.exclude, config.split, config.prep,
                       spec.family, spec.categorical)
    outcome = RunOutcome(
        status=RunStatus.FAILED, task=prepared.task, params=resolved.params, device="", epochs_run=0, duration_s=0.0,
        primary_metric=metrics.PRIMARY_METRIC[prepared.task], split_fingerprint=prepared.fingerprint,
        dropped_target_rows=prepared.dropped_target_rows, notes=prepared.notes,
        **{f"n_{s}": len(prepared.row_ids[s]) for s in ("train", "val", "test")},
    )
    callback_list = CallbackList(callbacks)
    try:
        _train_score_save(outcome, config, spec, prepared, run_dir, callback_list)
    except UserError:
        raise
    except Exception as exc:
        log.exception("run in %s failed", run_dir)
        outcome.status, outcome.error = RunStatus.FAILED, f"Training failed: {exc}"
        callback_list.on_train_end(RunStatus.FAILED)
    outcome.duration_s = round(time.perf_counter() - started, 3)
    return outcome


def _train_score_save(outcome: RunOutcome, config: RunConfig, spec: ModelSpec, prepared: Prepared, run_dir: Path,
                      callbacks: CallbackList) -> None:
    params = outcome.params
    train = _train_neural if spec.family == "neural" else _train_classical
    model, fitted, outcome.device, proba = train(spec, prepared, params, callbacks)
    outcome.status, outcome.error = fitted.status, fitted.error
    outcome.history, outcome.epochs_run = fitted.history, len(fitted.history)
    if fitted.status == RunStatus.SUCCEEDED:
        n_classes = len(prepared.classes or [])
        outcome.metrics = {s: metrics.score(prepared.task, prepared.y[s], proba[s], n_classes) for s in ("val", "test")}
        outcome.baseline = {"test": metrics.baseline(prepared.task, prepared.y["train"], prepared.y["test"], n_classes)}
        if prepared.task == "regression":
            outcome.curves = metrics.regression_curves(prepared.y["test"], proba["test"])
        else:
            outcome.curves = metrics.classification_curves(prepared.y["test"], proba["test"], prepared.classes)
        save_run(run_dir, _artifact_config(config, prepared, spec, params), prepared.preprocessor, model)


def _artifact_config(config: RunConfig, prepared: Prepared, spec: ModelSpec, params: dict) -> dict[str, Any]:
    y_train = prepared.y["train"]
    return {"model": spec.name, "family": spec.family, "task": prepared.task, "target": config.target,
            "classes": prepared.classes, "params": params, "n_outputs": prepared.n_outputs,
            "y_mean": float(y_train.mean()) if prepared.task == "regression" else 0.0,
            "y_std": float(y_train.std() or 1.0) if prepared.task == "regression" else 1.0}


def _train_neural(spec: ModelSpec, prepared: Prepared, params: dict, callbacks: CallbackList):
    torch.manual_seed(params["seed"])
    device = select_device(params["device"])
    objective = Objective(prepared.task)
    if prepared.task == "regression":
        objective.y_mean = float(prepared.y["train"].mean())
        objective.y_std = float(prepared.y["train"].std() or 1.0)
    model = spec.build(prepared.preprocessor.n_numeric_out, prepared.preprocessor.cardinalities,
                       prepared.n_outputs, params).to(device)
    splits = {s: Tensors.from_arrays(prepared.x_num[s], prepared.x_cat[s], prepared.y[s], device)
              for s in ("train", "val", "test")}
    fitted = fit(model, splits["train"], splits["val"], objective, params, callbacks)
    if fitted.status == RunStatus.SUCCEEDED:
        # What actually ran: the batch size after an automatic choice or an out-of-memory retry, its learning rate,
        # and whether 'auto' mixed precision was on for this device.
        params["batch_size"], params["lr"] = fitted.batch_size, fitted.lr
        params["mixed_precision"] = fitted.mixed_precision
    proba = {}
    for s in ("val", "test"):
        output = predict_outputs(model, splits[s].x_num, splits[s].x_cat).cpu().numpy()
        proba[s] = outputs_to_predictions(output, prepared.task, objective.y_mean, objective.y_std)
    if fitted.status == RunStatus.SUCCEEDED and not all(np.isfinite(p).all() for p in proba.values()):
        fitted.status, fitted.error = RunStatus.DIVERGED, "The model's predictions are not finite numbers: it diverged."
    return model.cpu(), fitted, str(device), proba


def _train_classical(spec: ModelSpec, prepared: Prepared, params: dict, callbacks: CallbackList):
    estimator = spec.build(prepared.task, params)
    if prepared.task != "regression" and getattr(estimator, "early_stopping", False):
        # Its internal validation split is stratified: that needs two training rows of every class, and a
        # validation share with at least one row per class.
        counts = np.unique(prepared.y["train"], return_counts=True)[1]
        if counts.min() < 2 or np.floor(estimator.validation_fraction * counts.sum()) < len(counts):
            estimator.set_params(early_stopping=False)
    callbacks.on_train_begin(1, 1)
    started = time.perf_counter()
    try:
        estimator.fit(prepared.x_num["train"], prepared.y["train"])
    except RunCancelled as exc:  # only raised by callbacks; kept for symmetry with the neural path
        return estimator, FitResult(RunStatus.CANCELLED, error=str(exc)), "cpu", {}
    n_classes = len(prepared.classes or [])
    proba = {s: estimator_predictions(estimator, prepared.x_num[s], prepared.task, n_classes) for s in ("val", "test")}
    objective = Objective(prepared.task)
    val_scores = metrics.score(prepared.task, prepared.y["val"], proba["val"], n_classes)
    loss = val_scores["rmse"] ** 2 if prepared.task == "regression" else val_scores["log_loss"]
    record = EpochRecord(1, float("nan"), loss, val_scores[objective.metric_name], objective.metric_name, 0.0,
                         time.perf_counter() - started)
    fitted = FitResult(RunStatus.SUCCEEDED, history=[record], best_epoch=1)
    try:
        callbacks.on_epoch_end(record)
    except RunCancelled as exc:
        fitted.status, fitted.error = RunStatus.CANCELLED, str(exc)
    callbacks.on_train_end(fitted.status)
    return estimator, fitted, "cpu", proba
