"""One run, end to end: validate, prepare, train, score, save. The worker, the CLI and tests call this."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from workbench import memory
from workbench.artifacts import save_run
from workbench.callbacks import Callback, CallbackList, EpochRecord, RunCancelled
from workbench.devices import classical_threads, select_device
from workbench.errors import BROKE, UserError, did_you_mean
from workbench.evaluation import FoldAssignments, score_intervals
from workbench.models.ensemble import Ensemble
from workbench.models.params import NeuralParams, as_dict
from workbench.models.registry import ModelSpec, get_model, resolve_params
from workbench.prepare import (
    MIN_TRAIN_ROWS,
    NO_FEATURES,
    Prepared,
    Split,
    class_labels,
    detect_task,
    prepare,
    time_order,
)
from workbench.runconfig import RunConfig
from workbench.store.entities import RunStatus
from workbench.tasks import Objective, Task
from workbench.training import FitResult, Tensors, fit, predict_outputs

if TYPE_CHECKING:
    from workbench.ensembles import Candidate

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
INTERVAL_SEED = 0  # the bootstrap of every run's scores is seeded: the same predictions give the same interval


@dataclass(frozen=True)
class Member:
    """One member of a repeated run: its group's stored fold assignments and which of their members it is."""

    assignment: FoldAssignments
    name: str  # FoldAssignments.member_name

    def fingerprint(self) -> str:
        """The member's test rows: equal for the same member of every group on the same scheme."""
        return hashlib.sha256(f"{self.assignment.key}|{self.name}".encode()).hexdigest()[:16]


@dataclass
class Resolved:
    """What `validate_config` found: the task, and the hyperparameters as the model's params dataclass."""

    task: Task
    hyperparameters: Any

    @property
    def params(self) -> dict[str, Any]:
        """The hyperparameters as a plain JSON-able dict (what the store keeps for a queued run)."""
        return as_dict(self.hyperparameters)


@dataclass
class RunOutcome:
    status: RunStatus
    task: str
    params: dict[str, Any]  # what actually ran (automatic batch size, its learning rate, mixed precision)
    device: str
    epochs_run: int
    duration_s: float
    primary_metric: str
    history: list[EpochRecord] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    baseline: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, Any] = field(default_factory=dict)
    intervals: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # {"test": {metric: [low, high]}}
    split_fingerprint: str = ""
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    dropped_target_rows: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Trained:
    """What training one model gave: the model (on the CPU), how the fit ended, where it ran, its predictions on
    the validation and test rows (probabilities or values), and its hyperparameters as they ran."""

    model: Any
    fitted: FitResult
    device: str
    predictions: dict[str, np.ndarray]
    params: Any


def validate_config(config: RunConfig, table: pd.DataFrame) -> Resolved:
    """Everything that can be checked before training, so a bad setting is refused before it is queued."""
    config.validate()
    spec = get_model(config.model)
    hyperparameters = resolve_params(config.model, config.params)
    if config.target not in table.columns:
        raise UserError(f"There is no column called '{config.target}' to predict.{did_you_mean(config.target, table.columns)}")
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
    task = Task(detect_task(present, config.task))
    if task not in spec.tasks:
        raise UserError(f"'{spec.name}' does not do {task}; it does {' and '.join(spec.tasks)}.")
    for name in config.exclude:
        if name not in table.columns:
            raise UserError(f"Cannot exclude '{name}': there is no such column.{did_you_mean(name, table.columns)}")
    if not set(table.columns) - {config.target, *config.exclude}:
        raise UserError(NO_FEATURES)
    if config.split.order_by is not None:  # a time-ordered split on a column that holds no dates: refused before queueing
        if config.split.order_by == config.target:
            raise UserError(f"Cannot order the split by '{config.target}': it is the column to predict.")
        time_order(table, config.split.order_by)
    if isinstance(hyperparameters, NeuralParams):
        device = select_device(hyperparameters.device)
        memory.check(memory.estimate(spec, hyperparameters, memory.table_shapes(table, config, spec, task)), device)
    return Resolved(task, hyperparameters)


class Preparations:
    """The last table a worker read and the last preparation it made, kept for its next run: a sweep's trials differ
    only in their hyperparameters, which neither reads, and re-reading the table and re-fitting its preprocessing took
    about 1.5 s of every trial on a 50,000-row table (issue 17). One of each is kept, so a worker holds at most one
    table and its preparation between runs. A preparation is matched to its table by identity (`table` gives the same
    object while the file is unchanged), and to everything else it reads by value."""

    def __init__(self) -> None:
        self._table_key: Hashable = None
        self._table: pd.DataFrame | None = None
        self._key: str | None = None
        self._prepared: Prepared | None = None

    def table(self, key: Hashable, read: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """The table last read under `key` (e.g. its file's path, size and modification time), or `read()`."""
        if self._table is None or self._table_key != key:
            self._table = self._table_key = self._prepared = self._key = None  # freed before the next is read
            self._table, self._table_key = read(), key
        return self._table

    def prepared(self, table: pd.DataFrame, config: RunConfig, spec: ModelSpec, member: Member | None,
                 make: Callable[[], Prepared]) -> Prepared:
        """The preparation `make()` gives, kept when `table` is the kept table; a copy whose notes are its own."""
        if table is not self._table:
            return make()
        settings = {k: v for k, v in asdict(config).items() if k not in ("model", "params", "repeats")}
        key = json.dumps([settings, spec.family, spec.categorical, spec.scaling,
                          member.fingerprint() if member else None], sort_keys=True, default=str)
        if self._prepared is None or self._key != key:
            self._prepared = self._key = None
            self._prepared, self._key = make(), key
        return replace(self._prepared, notes=list(self._prepared.notes))  # a run adds notes to its own copy


def execute(config: RunConfig, table: pd.DataFrame, run_dir: Path, callbacks: Sequence[Callback] = (),
            member: Member | None = None, predictions_path: Path | None = None,
            candidates: Sequence[Candidate] = (), preparations: Preparations | None = None) -> RunOutcome:
    """Train one run and save it to run_dir when it succeeds. A UserError is raised before training; any other
    failure during training ends the run 'failed' with the message, so a worker never crashes on a run.
    A member of a repeated run trains and tests on its member's rows of the stored folds, not on `config.split`.
    `predictions_path`: where to keep the validation and test rows' targets and predictions (outside the model folder,
    so an export of the model does not carry them), for paired comparisons and ensembles.
    `candidates`: an ensemble's runs to choose from (workbench.ensembles.candidates).
    `preparations`: where a worker keeps its last preparation for its next run of the same table."""
    started = time.perf_counter()
    resolved = validate_config(config, table)
    spec = get_model(config.model)

    def make() -> Prepared:
        rows = member_split(table, config, resolved.task, member) if member else None
        return prepare(table, config.target, resolved.task, config.exclude, config.split, config.prep,
                       spec.family, spec.categorical, rows=rows, model_scaling=spec.scaling)

    prepared = preparations.prepared(table, config, spec, member, make) if preparations else make()
    objective = Objective.for_training(prepared.task, prepared.y["train"], len(prepared.classes or []))
    if isinstance(resolved.hyperparameters, NeuralParams):  # again, with the shapes the preparation made
        device = select_device(resolved.hyperparameters.device)
        rows = {s: len(ids) for s, ids in prepared.row_ids.items()}
        shapes = memory.Shapes(len(prepared.preprocessor.input_columns), prepared.preprocessor.n_numeric_out_,
                               prepared.preprocessor.cardinalities_, objective.n_outputs, sum(rows.values()),
                               rows["train"], max(rows["val"], rows["test"]))
        memory.check(memory.estimate(spec, resolved.hyperparameters, shapes), device, prepared=True)
    outcome = RunOutcome(
        status=RunStatus.FAILED, task=prepared.task, params=resolved.params, device="", epochs_run=0, duration_s=0.0,
        primary_metric=objective.metric_name, split_fingerprint=prepared.fingerprint,
        dropped_target_rows=prepared.dropped_target_rows, notes=prepared.notes,
        **{f"n_{s}": len(prepared.row_ids[s]) for s in SPLITS},
    )
    callback_list = CallbackList(callbacks)
    try:
        _train_score_save(outcome, config, spec, prepared, objective, resolved.hyperparameters, run_dir,
                          callback_list, predictions_path, candidates)
    except UserError:
        raise
    except Exception as exc:
        log.exception("run in %s failed", run_dir)
        outcome.status, outcome.error = RunStatus.FAILED, f"{BROKE}{exc}"
        callback_list.on_train_end(RunStatus.FAILED)
    outcome.duration_s = round(time.perf_counter() - started, 3)
    return outcome


def _train_score_save(outcome: RunOutcome, config: RunConfig, spec: ModelSpec, prepared: Prepared,
                      objective: Objective, params: Any, run_dir: Path, callbacks: CallbackList,
                      predictions_path: Path | None, candidates: Sequence[Candidate]) -> None:
    if spec.family == "ensemble":
        from workbench import ensembles  # it imports this module

        trained = ensembles.train(prepared, objective, params, callbacks, candidates)
    else:
        train = _train_neural if spec.family == "neural" else _train_classical
        trained = train(spec, prepared, objective, params, callbacks)
    fitted = trained.fitted
    outcome.params, outcome.device = as_dict(trained.params), trained.device
    outcome.status, outcome.error = fitted.status, fitted.error
    outcome.history, outcome.epochs_run = fitted.history, len(fitted.history)
    if fitted.status == RunStatus.SUCCEEDED:
        y, predictions = prepared.y, trained.predictions
        outcome.metrics = {s: objective.score(y[s], predictions[s]) for s in ("val", "test")}
        outcome.baseline = {"test": objective.baseline(y["train"], y["test"])}
        outcome.curves = objective.curves(y["test"], predictions["test"], prepared.classes)
        intervals = score_intervals(prepared.task, y["test"], predictions["test"], seed=INTERVAL_SEED)
        outcome.intervals = {"test": {name: [i.low, i.high] for name, i in intervals.items()
                                      if np.isfinite(i.low) and np.isfinite(i.high)}}
        artifact_config = {"model": spec.name, "family": spec.family, "target": config.target,
                           "classes": prepared.classes, "params": outcome.params, **objective.to_config()}
        save_run(run_dir, artifact_config, prepared.preprocessor, trained.model)
        if isinstance(trained.model, Ensemble):
            outcome.notes.append(trained.model.summary())
        if predictions_path is not None:
            save_predictions(predictions_path, {s: SplitPredictions(y[s], predictions[s], prepared.row_ids[s])
                                                for s in ("val", "test")})


@dataclass
class SplitPredictions:
    """One split's targets, a run's predictions of them (probabilities, or values in the target's units) and the
    table's row ids they are of."""

    y: np.ndarray
    predictions: np.ndarray
    rows: np.ndarray


# The keys of each split in a run's predictions file; the test rows keep the names of the file's first version.
PREDICTION_KEYS = {"test": ("y", "predictions", "rows"), "val": ("val_y", "val_predictions", "val_rows")}


def save_predictions(path: Path, splits: dict[str, SplitPredictions]) -> None:
    """The validation and test rows' targets and predictions, written whole or not at all (a temporary file, then a
    rename): the test rows' for paired comparisons, the validation rows' for ensembles."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    arrays = {key: value for split, kept in splits.items()
              for key, value in zip(PREDICTION_KEYS[split], (kept.y, kept.predictions, kept.rows), strict=True)}
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    tmp.replace(path)


def load_predictions(path: Path) -> dict[str, SplitPredictions]:
    """A run's kept predictions by split; a split is absent for a run trained before it was kept ({}: never
    scored, or trained before any was kept)."""
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as data:
        return {split: SplitPredictions(*(data[k] for k in keys)) for split, keys in PREDICTION_KEYS.items()
                if all(k in data for k in keys)}


def load_test_predictions(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(y, predictions) of a run's test rows; None for a run trained before they were kept (or never scored)."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return data["y"], data["predictions"]


def member_split(table: pd.DataFrame, config: RunConfig, task: Task, member: Member) -> Split:
    """A member's rows: its test rows from the stored folds; validation rows drawn from the rest as a single run
    draws them (the validation share of train + validation, stratified when every class allows it, seeded by the
    split seed plus the member's round)."""
    target = table[config.target]
    index = target.index[target.notna()]
    assignment = member.assignment
    if assignment.n_rows != len(index):
        raise UserError(f"The table no longer has the {assignment.n_rows:,} rows with a target that this repeated "
                        f"run's folds were made for ({len(index):,} now).")
    r, f = next((r, f) for r, f in assignment.members if assignment.member_name(r, f) == member.name)
    train_positions, test_positions = assignment.split(r, f)
    rest, test = np.asarray(index[train_positions]), np.asarray(index[test_positions])
    labels = class_labels(target.loc[rest]).to_numpy() if task != Task.REGRESSION else None
    share = config.split.val / (config.split.train + config.split.val)
    stratify = labels
    if labels is not None and (pd.Series(labels).value_counts().min() < 2
                               or np.floor(share * len(rest)) < len(set(labels))):
        stratify = None  # a class too rare to appear in both parts
    train, val = train_test_split(rest, test_size=share, random_state=config.split.seed + r, stratify=stratify)
    return Split(np.sort(train), np.sort(val), np.sort(test), member.fingerprint(),
                 stratify is not None or labels is None)


def _train_neural(spec: ModelSpec, prepared: Prepared, objective: Objective, params: NeuralParams,
                  callbacks: CallbackList) -> Trained:
    torch.manual_seed(params.seed)
    device = select_device(params.device)
    params = params.for_rows(len(prepared.y["train"]))
    preprocessor = prepared.preprocessor
    model = spec.build(preprocessor.n_numeric_out_, preprocessor.cardinalities_, objective.n_outputs, params)
    model = model.to(device)
    splits = {s: Tensors.from_arrays(prepared.x_num[s], prepared.x_cat[s], prepared.y[s], device) for s in SPLITS}
    fitted = fit(model, splits["train"], splits["val"], objective, params, callbacks)
    predictions = {}
    if fitted.status == RunStatus.SUCCEEDED:  # a pruned, cancelled or diverged run is not scored
        predictions = {s: objective.predictions(predict_outputs(model, splits[s].x_num, splits[s].x_cat).cpu().numpy())
                       for s in ("val", "test")}
        if not all(np.isfinite(p).all() for p in predictions.values()):
            fitted.status, fitted.error = RunStatus.DIVERGED, "The model's predictions are not finite numbers: it diverged."
    return Trained(model.cpu(), fitted, str(device), predictions, fitted.ran(params))


def _train_classical(spec: ModelSpec, prepared: Prepared, objective: Objective, params: Any,
                     callbacks: CallbackList) -> Trained:
    """One fit of a scikit-learn estimator, reported to the callbacks as one epoch (its validation figures)."""
    estimator = spec.build(prepared.task, params)
    if prepared.task != Task.REGRESSION and getattr(estimator, "early_stopping", False):
        # Its internal validation split is stratified: that needs two training rows of every class, and a
        # validation share with at least one row per class.
        counts = np.unique(prepared.y["train"], return_counts=True)[1]
        if counts.min() < 2 or np.floor(estimator.validation_fraction * counts.sum()) < len(counts):
            estimator.set_params(early_stopping=False)
    callbacks.on_train_begin(1, 1)
    started = time.perf_counter()
    with classical_threads(len(prepared.y["train"])):
        estimator.fit(prepared.x_num["train"], prepared.y["train"])
        predictions = {s: objective.estimator_predictions(estimator, prepared.x_num[s]) for s in ("val", "test")}
    val_loss, val_metric = objective.loss_and_metric(objective.score(prepared.y["val"], predictions["val"]))
    record = EpochRecord(1, float("nan"), val_loss, val_metric, objective.metric_name, 0.0,
                         time.perf_counter() - started)
    fitted = FitResult(RunStatus.SUCCEEDED, history=[record], best_epoch=1)
    try:
        callbacks.on_epoch_end(record)
    except RunCancelled as exc:
        fitted.status, fitted.error = exc.status, str(exc)
    callbacks.on_train_end(fitted.status)
    return Trained(estimator, fitted, "cpu", predictions, params)
