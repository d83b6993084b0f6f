"""Ensembles of runs: which finished runs an `ensemble` run may take as members, and training one from their kept
predictions (the selection itself is workbench.models.ensemble).

A member must predict the same target of the same dataset for the same task, on the same validation and test rows
(checked row by row against its kept predictions, with the same targets), from input columns the ensemble has, and
have a saved model. An ensemble is never a member. By default every such succeeded run is a candidate; with explicit
run ids each must qualify, or the ensemble is refused with the reason.

The members' saved models are copied into the ensemble's run folder (artifacts.save_run), so deleting a member run
later leaves the ensemble whole: it predicts, explains and exports as before.

A repeated ensemble (a run group) is one ensemble per fold: each repeat trains on its fold's rows, where the same
repeat of the other models' run groups trained, so it chooses from those runs; it compares with their groups on the
same folds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.callbacks import CallbackList, EpochRecord, RunCancelled
from workbench.errors import UserError
from workbench.models.ensemble import Ensemble, EnsembleParams, average, select
from workbench.prepare import Split
from workbench.runconfig import RunConfig
from workbench.runner import SplitPredictions, Trained, load_predictions
from workbench.store import Run, RunStatus, Store
from workbench.tasks import Objective
from workbench.training import FitResult

ENSEMBLE = "ensemble"  # the catalog name


@dataclass(frozen=True)
class Candidate:
    """A finished run an ensemble may take as a member: where its saved model and its kept predictions are."""

    run_id: str
    model: str
    task: str
    folder: Path
    predictions: Path


@dataclass
class Member:
    candidate: Candidate
    val: SplitPredictions
    test: SplitPredictions


@dataclass(frozen=True)
class Rows:
    """The ensemble's own task, classes, input columns, and per split ('val', 'test') its row ids and targets."""

    task: str
    classes: list[str] | None
    input_columns: list[str]
    ids: dict[str, np.ndarray]
    y: dict[str, np.ndarray]


def candidates(store: Store, config: RunConfig) -> list[Candidate]:
    """The runs an ensemble of `config` chooses from: its explicit run ids (each must exist and have succeeded), or
    every succeeded run on its dataset and target (newest first). Whether they fit is `members`' business."""
    from workbench.jobs import test_predictions_path  # jobs imports this module

    ids = _params(config).run_ids()
    if ids:
        found = {r.id: r for r in store.get_runs(ids)}
        for run_id in ids:
            run = found.get(run_id)
            if run is None:
                raise UserError(f"There is no run '{run_id}' to put in the ensemble.")
            if run.status != RunStatus.SUCCEEDED:
                raise UserError(f"Run {run_id} has not finished successfully ({run.status}); an ensemble is built "
                                "from finished runs.")
            if run.dataset_id != config.dataset_id or run.target != config.target:
                raise UserError(f"Run {run_id} predicts another column or dataset; an ensemble's runs predict "
                                f"'{config.target}' of one dataset.")
        runs = [found[i] for i in ids]
    else:
        runs = [r for r in store.list_runs(dataset_id=config.dataset_id, statuses=(RunStatus.SUCCEEDED,))
                if r.target == config.target and r.model != ENSEMBLE]
    return [Candidate(r.id, r.model, r.task, store.settings.runs_dir / r.id, test_predictions_path(store, r.id))
            for r in runs]


def _params(config: RunConfig) -> EnsembleParams:
    """The member choice of an ensemble's config, as given (resolve_params has checked it)."""
    from workbench.models.registry import resolve_params

    return resolve_params(ENSEMBLE, config.params)


def members(found: Sequence[Candidate], rows: Rows, explicit: bool) -> list[Member]:
    """The candidates that fit `rows` (see the module's docstring). `explicit`: the user named them, so one that does
    not fit is refused with its reason; otherwise it is left out. Fewer than two members are refused."""
    chosen = []
    for candidate in found:
        kept = load_predictions(candidate.predictions)
        reason = _unfit(candidate, kept, rows)
        if reason is None:
            chosen.append(Member(candidate, kept["val"], kept["test"]))
        elif explicit:
            raise UserError(f"Run {candidate.run_id} cannot be in this ensemble: it {reason}.")
    if len(chosen) < 2:
        raise UserError("An ensemble needs at least two finished runs that predict the same target of the same "
                        f"dataset on the same validation and test rows; there is {'one' if chosen else 'none'}."
                        if not explicit else
                        "An ensemble needs at least two runs; name two or more run ids, or leave the list empty "
                        "for every finished run that fits.")
    return chosen


def _unfit(candidate: Candidate, kept: dict[str, SplitPredictions], rows: Rows) -> str | None:
    """Why `candidate` cannot be a member of an ensemble on `rows`, or None when it can."""
    if candidate.model == ENSEMBLE:
        return "is an ensemble itself (choose its runs instead)"
    if candidate.task != rows.task:
        return f"does {candidate.task}, not {rows.task}"
    if "val" not in kept or "test" not in kept:
        return "was trained before validation predictions were kept (train it again)"
    for split in ("val", "test"):
        if not (np.array_equal(kept[split].rows, rows.ids[split]) and np.array_equal(kept[split].y, rows.y[split])):
            return "was trained or tested on other rows (other split settings, or a repeated run's fold)"
    if rows.classes is not None and kept["val"].predictions.shape[1:] != (len(rows.classes),):
        return "predicts other classes"
    try:
        config = json.loads((candidate.folder / "config.json").read_text(encoding="utf-8"))
        features = config["features"]
        columns = [*features["numeric"], *features["boolean"], *features["categorical"], *features["datetime"]]
    except (OSError, ValueError, KeyError, TypeError):
        return "has no readable saved model"
    if config.get("classes") != rows.classes:
        return "predicts other classes"
    unknown = [c for c in columns if c not in rows.input_columns]
    if unknown:
        return f"uses the column '{unknown[0]}', which this ensemble leaves out"
    return None


def check_submission(store: Store, config: RunConfig, table: pd.DataFrame, task: str, split: Split | None = None,
                     ) -> None:
    """Refuse an ensemble before it is queued when it would have fewer than two members (or a named run does not
    fit): the same check training makes, on the rows this config splits off (or `split`: a repeat's fold), without
    preprocessing. A repeated ensemble chooses on each fold from the runs on that fold's rows (the repeats of other
    models' run groups on the same folds), so it cannot name its runs."""
    from workbench.prepare import choose_features, split_table

    params = _params(config)
    if split is not None and params.run_ids():
        raise UserError("A repeated ensemble chooses from the finished runs on each repeat's rows; leave the runs to "
                        "choose from empty.")
    parts = split_table(table, config.target, task, config.split, split)
    features = choose_features(parts.data, config.target, config.exclude,
                               config.prep.datetime_parts)
    ids = {"val": parts.rows.val, "test": parts.rows.test}
    rows = Rows(parts.task, parts.classes, [*features.numeric, *features.boolean, *features.categorical,
                                            *features.datetime], ids, {s: parts.y(i) for s, i in ids.items()})
    members(candidates(store, config), rows, explicit=bool(params.run_ids()))


def train(prepared, objective: Objective, params: EnsembleParams, callbacks: CallbackList,
          found: Sequence[Candidate]) -> Trained:
    """Greedy selection over the members' validation predictions, one round an epoch (its validation score); the
    test predictions are the same weighted average of the members' test predictions."""
    ids = {s: prepared.row_ids[s] for s in ("val", "test")}
    rows = Rows(prepared.task, prepared.classes, prepared.preprocessor.input_columns, ids,
                {s: prepared.y[s] for s in ids})
    chosen = members(found, rows, explicit=bool(params.run_ids()))
    history: list[EpochRecord] = []
    fitted = FitResult(RunStatus.SUCCEEDED, history=history)
    last = time.perf_counter()

    def on_round(round_: int, score: tuple[float, float]) -> None:
        nonlocal last
        metric, minus_loss = score
        now = time.perf_counter()
        record = EpochRecord(round_, float("nan"), -minus_loss, metric if objective.higher_is_better else -metric,
                             objective.metric_name, 0.0, now - last)
        last = now
        history.append(record)
        callbacks.on_epoch_end(record)

    callbacks.on_train_begin(params.max_rounds, 1)
    try:
        selection = select(prepared.task, rows.y["val"], [m.val.predictions for m in chosen], params.max_rounds,
                           on_round)
    except RunCancelled as exc:
        fitted.status, fitted.error = exc.status, str(exc)
        callbacks.on_train_end(fitted.status)
        return Trained(None, fitted, "cpu", {}, params)
    fitted.best_epoch = selection.best_round
    callbacks.on_train_end(fitted.status)
    picked = [(m, float(w)) for m, w in zip(chosen, selection.weights, strict=True) if w > 0]
    model = Ensemble([m.candidate.run_id for m, _ in picked], [m.candidate.model for m, _ in picked],
                     [w for _, w in picked], [m.candidate.folder for m, _ in picked])
    predictions = {s: average([getattr(m, s).predictions for m, _ in picked], model.weights) for s in ("val", "test")}
    ran = replace(params, members=",".join(m.candidate.run_id for m in chosen))  # the pool it chose from
    return Trained(model, fitted, "cpu", predictions, ran)


def config_for(store: Store, run_ids: Sequence[str]) -> RunConfig:
    """An ensemble of exactly these runs: their dataset, target, task and split; the columns any of them uses. Of
    repeats of run groups (`proposal`'s runs on one fold): a repeated ensemble on the same folds, each repeat
    choosing from the runs on its fold (their groups' repeats)."""
    runs = store.get_runs(list(run_ids))
    if len(runs) < 2:
        raise UserError("An ensemble needs at least two runs.")
    first = RunConfig.from_dict(runs[0].config)
    excluded = set.intersection(*(set(RunConfig.from_dict(r.config).exclude) for r in runs))
    config = RunConfig(dataset_id=first.dataset_id, target=first.target, model=ENSEMBLE, task=runs[0].task,
                       exclude=sorted(excluded), params={"members": ",".join(r.id for r in runs)}, split=first.split,
                       prep=first.prep)
    if runs[0].group_id is None:
        return config
    repeats = RunConfig.from_dict(store.get_group(runs[0].group_id).config).repeats
    return replace(config, params={}, repeats=repeats)


def proposal(runs: Sequence[Run]) -> list[Run]:
    """Of `runs`, those an ensemble can be built from in one click: the succeeded runs (not ensembles) on the same
    dataset, target and test rows (single runs on one split, or the same repeat of several run groups); the largest
    such set, [] if under two."""
    from workbench.predict import comparable_group

    by_rows: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.status == RunStatus.SUCCEEDED and run.model != ENSEMBLE:
            by_rows.setdefault(comparable_group(run), []).append(run)
    largest = max(by_rows.values(), key=len, default=[])
    return largest if len(largest) >= 2 else []
