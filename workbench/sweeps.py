"""Hyperparameter sweeps: an Optuna study whose trials are ordinary runs.

A sweep is a row in the store (Sweep) and an Optuna study in the same database (Optuna's own tables, beside ours:
our migrations keep their own version table). A worker that finds no queued run asks a running sweep for a trial
(`start_next_trial`): it takes one of the sweep's trial slots (a conditional UPDATE, so workers never start more
than n_trials between them), asks the study for parameters, and creates an ordinary run, linked by sweep id and
trial number, already claimed by that worker. `train_trial` trains it through jobs.execute_run with a pruning
callback (the validation metric reported each epoch; pruned runs end `pruned` with their epochs kept) and tells the
study how it ended. A trial whose worker was killed: recovery interrupts its run and `reconcile` fails its Optuna
trial (its slot stays counted), so it never hangs the sweep. The search space comes from the model's hyperparameter
schema (SearchSpace). No Streamlit in here.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import event

from workbench.callbacks import Callback, EpochRecord, RunPruned
from workbench.errors import UserError, did_you_mean
from workbench.models.params import check, coerce, schema
from workbench.models.registry import MODELS, get_model, resolve_params
from workbench.runconfig import RunConfig
from workbench.store import Run, RunGroup, RunStatus, Store, Sweep, SweepStatus, utcnow
from workbench.tasks import higher_is_better, primary_metric

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per trial in every worker's log

DEFAULT_TRIALS = 20
MAX_TRIALS = 1000
STUDY_PREFIX = "workbench-sweep-"
PRUNERS = ("median", "hyperband")
# Median pruning: from the 5th trial on (4 finished before it), at epoch 3 at the earliest (early epochs are noisy).
MEDIAN_STARTUP_TRIALS = 4
MEDIAN_WARMUP_EPOCHS = 3
LIST_CHOICE_SEPARATOR = "/"  # --space hidden_sizes=128/256,256/512,256: choices of a list of numbers

# -- the search space ------------------------------------------------------------------------------------------------

# Settings that are not searched unless the user asks: how long and where to train, seeds, switches whose 0 means
# "automatic" or "off", and choices that change what the other settings mean (SGD wants other learning rates) or what
# the score rewards (balancing classes trades accuracy for balanced accuracy); and the RealMLP recipe's parts (issue
# 21): a sweep of the MLP searches what it searched before they came.
FIXED_BY_DEFAULT = frozenset({
    "seed", "epochs", "device", "mixed_precision", "batch_size", "patience", "weight_averaging", "restore_best",
    "grad_clip", "l1", "optimizer", "lr_schedule", "init", "max_iter", "early_stopping", "n_estimators", "n_heads",
    "max_depth", "balance_classes", "adam_beta2", "label_smoothing", "numeric_embeddings", "one_hot_small_categories",
    "front_scale",
})
# Ranges where the general rule (below) would not be sensible: (low, high, log).
DEFAULT_RANGES: dict[str, tuple[float, float, bool]] = {
    "weight_decay": (1e-6, 1e-2, True),
    "dropout": (0.0, 0.5, False),
    "attention_dropout": (0.0, 0.5, False),
    "C": (1e-3, 1e3, True),
    "alpha": (1e-3, 1e3, True),
    "learning_rate": (0.01, 0.3, True),
    "l2_regularization": (0.0, 1.0, False),
    "max_features": (0.1, 1.0, False),
    "ffn_factor": (2 / 3, 8 / 3, False),
    "kernel_size": (2, 7, False),
    "depth": (1, 4, False),
    "num_layers": (1, 3, False),
    "n_layers": (1, 4, False),
}


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter in a sweep: a range (float or int, optionally on a log scale), a set of choices, or a
    fixed value. Lists of numbers (hidden_sizes) are choices written as text ('256,256')."""

    name: str
    kind: str  # "float", "int", "choice" or "fixed"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    value: Any = None  # kind "fixed"

    @property
    def searched(self) -> bool:
        return self.kind != "fixed"

    def distribution(self) -> BaseDistribution:
        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return CategoricalDistribution(self.choices)

    def contains(self, value: Any) -> bool:
        """Whether a trial may take `value` (in Optuna's form: lists of numbers as text)."""
        if self.kind == "choice":
            return value in self.choices
        if self.kind in ("float", "int"):
            return isinstance(value, int | float) and not isinstance(value, bool) and self.low <= value <= self.high
        return value == self.value

    def describe(self) -> str:
        """In words, for the page and `show-sweep`: '0.0002 to 0.02 (log scale)', 'relu, gelu', 'fixed at 200'."""
        if self.kind == "fixed":
            return f"fixed at {_text(self.value)}"
        if self.kind == "choice":
            return ", ".join(map(str, self.choices))
        return f"{self.low:g} to {self.high:g}" + (" (log scale)" if self.log else "")

    def as_text(self) -> str:
        """The form `parse_dimension` reads back: 'LOW:HIGH[:log]', 'a,b,c' (lists of numbers 'a,b/c,d'), or
        the fixed value."""
        if self.kind == "fixed":
            return _text(self.value)
        if self.kind == "choice":
            separator = LIST_CHOICE_SEPARATOR if any("," in str(c) for c in self.choices) else ","
            return separator.join(map(str, self.choices))
        return f"{self.low:g}:{self.high:g}" + (":log" if self.log else "")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["choices"] = list(self.choices)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dimension:
        return cls(**{**data, "choices": tuple(data.get("choices") or ())})


def _text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _default_dimension(spec: dict[str, Any]) -> Dimension:
    """The sensible default for one hyperparameter of the schema (see the module's tables for the exceptions)."""
    name, kind, default = spec["name"], spec["type"], spec["default"]
    if name in FIXED_BY_DEFAULT:
        return Dimension(name, "fixed", value=default)
    if kind == "bool":
        return Dimension(name, "choice", choices=(False, True))
    if kind == "str":
        return Dimension(name, "choice", choices=tuple(spec["choices"])) if spec["choices"] else \
            Dimension(name, "fixed", value=default)
    if kind == "int_list":  # halved, as it is, doubled, one more layer
        options = [[max(1, v // 2) for v in default], default, [v * 2 for v in default], [*default, default[-1]]]
        options = [o for o in options if all(_within(spec, v) for v in o)]
        return Dimension(name, "choice", choices=tuple(dict.fromkeys(_text(o) for o in options)))
    if name in DEFAULT_RANGES:
        low, high, log_scale = DEFAULT_RANGES[name]
    elif kind == "float" and default > 0:  # a positive scale (learning rates): a decade either side, log scale
        low, high, log_scale = default / 10, default * 10, True
    elif kind == "int" and default > 0:
        low, high, log_scale = max(1, math.ceil(default / 4)), default * 4, default >= 8
    else:
        return Dimension(name, "fixed", value=default)
    low = max(low, spec["min"]) if spec["min"] is not None else low
    high = min(high, spec["max"]) if spec["max"] is not None else high
    if kind == "int":
        low, high = math.ceil(low), math.floor(high)
    if not low < high:
        return Dimension(name, "fixed", value=default)
    return Dimension(name, kind, low, high, log=log_scale)


def _within(spec: dict[str, Any], value: Any) -> bool:
    return (spec["min"] is None or value >= spec["min"]) and (spec["max"] is None or value <= spec["max"])


_RANGE = re.compile(r"^\s*(?P<low>[^:]+):(?P<high>[^:]+?)(?::(?P<log>log))?\s*$")


def parse_dimension(model: str, name: str, text: str) -> Dimension:
    """A user's `--space NAME=...`: 'LOW:HIGH' or 'LOW:HIGH:log' for a number, 'a,b,c' choices (lists of numbers:
    '128/256,256'), or one value (fixed). Refused with one sentence when the name, a value or the range is wrong."""
    specs = {s["name"]: s for s in schema(get_model(model).params)}
    if name not in specs:
        raise UserError(f"'{model}' has no hyperparameter '{name}'; it has {', '.join(specs)}.")
    spec, text = specs[name], str(text).strip()
    if not text:
        raise UserError(f"The search space of '{name}' is empty; give a range LOW:HIGH or choices a,b,c.")
    kind = spec["type"]
    match = _RANGE.match(text)
    if match and kind in ("int", "float"):
        low, high = coerce(name, kind, match["low"].strip()), coerce(name, kind, match["high"].strip())
        if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            raise UserError(f"The range of '{name}' must go from a lower to a higher number, not {text}.")
        if not (_within(spec, low) and _within(spec, high)):
            raise UserError(f"The range of '{name}' must stay within {spec['min']:g} to {spec['max']:g}, not {text}.")
        if match["log"] and low <= 0:
            raise UserError(f"A log-scale range of '{name}' must start above 0, not at {low:g}.")
        return Dimension(name, kind, low, high, log=bool(match["log"]))
    if match:
        raise UserError(f"'{name}' is not a number, so it takes choices a,b,c rather than a range.")
    separator = LIST_CHOICE_SEPARATOR if kind == "int_list" else ","
    values = []
    for item in text.split(separator):
        value = coerce(name, kind, item.strip())
        check(name, spec, value)
        values.append(_text(value) if kind == "int_list" else value)
    values = list(dict.fromkeys(values))
    if len(values) == 1:
        return Dimension(name, "fixed", value=coerce(name, kind, values[0]))
    return Dimension(name, "choice", choices=tuple(values))


@dataclass(frozen=True)
class SearchSpace:
    """Every hyperparameter of a model, each searched (a range or choices) or fixed."""

    model: str
    dimensions: tuple[Dimension, ...]

    @classmethod
    def for_model(cls, model: str, space: dict[str, str] | None = None, fixed: dict[str, Any] | None = None
                  ) -> SearchSpace:
        """The model's default space, with the user's ranges or choices (`space`, NAME -> text as for `--space`)
        and fixed values (`fixed`, NAME -> value, as for `--set`/`--fix`) put in."""
        space, fixed = space or {}, fixed or {}
        both = sorted(set(space) & set(fixed))
        if both:
            raise UserError(f"'{both[0]}' is both searched and fixed; give it either a range or a value.")
        resolved = resolve_params(model, fixed)  # checks the names and values of the fixed ones
        dimensions = []
        for spec in schema(get_model(model).params):
            name = spec["name"]
            if name in fixed:
                dimensions.append(Dimension(name, "fixed", value=getattr(resolved, name)))
            elif name in space:
                dimensions.append(parse_dimension(model, name, space[name]))
            else:
                dimensions.append(_default_dimension(spec))
        unknown = sorted(set(space) - {d.name for d in dimensions})
        if unknown:
            parse_dimension(model, unknown[0], space[unknown[0]])  # raises: no such hyperparameter
        chosen = cls(model, tuple(dimensions))
        if not chosen.searched:
            raise UserError("Every hyperparameter is fixed; leave at least one to search.")
        return chosen

    @property
    def searched(self) -> dict[str, Dimension]:
        return {d.name: d for d in self.dimensions if d.searched}

    def distributions(self) -> dict[str, BaseDistribution]:
        return {name: d.distribution() for name, d in self.searched.items()}

    def run_params(self, trial_params: dict[str, Any]) -> dict[str, Any]:
        """A trial's full hyperparameters for its run: the fixed values and the trial's (lists back from text)."""
        kinds = {s["name"]: s["type"] for s in schema(get_model(self.model).params)}
        params = {}
        for d in self.dimensions:
            value = trial_params[d.name] if d.searched else d.value
            params[d.name] = coerce(d.name, "int_list", value) if kinds[d.name] == "int_list" else value
        return params

    def trial_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """A known configuration as trial parameters to enqueue: the searched values it gives that lie within the
        space (the others are sampled)."""
        kinds = {s["name"]: s["type"] for s in schema(get_model(self.model).params)}
        out = {}
        for name, d in self.searched.items():
            if name not in params:
                continue
            value = _text(params[name]) if kinds[name] == "int_list" else params[name]
            if d.contains(value):
                out[name] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dimensions": [d.to_dict() for d in self.dimensions]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        return cls(data["model"], tuple(Dimension.from_dict(d) for d in data["dimensions"]))


# -- the sweep's configuration ---------------------------------------------------------------------------------------


@dataclass
class SweepConfig:
    """What to search. `run` is the base run configuration (dataset, target, model, split, preprocessing); its
    `params` are the fixed hyperparameters. `space`: the user's ranges or choices (NAME -> 'LOW:HIGH[:log]' or
    'a,b,c'). `prune`: None means on for neural models, off for classical ones (they report once, at the end).
    `known_good`: configurations to try right after the model's defaults. `repeats`: how many repeats
    `retrain_best` gives the best configuration by default."""

    run: RunConfig
    n_trials: int = DEFAULT_TRIALS
    timeout_s: float | None = None
    space: dict[str, str] = field(default_factory=dict)
    prune: bool | None = None
    pruner: str = "median"
    seed: int = 0
    repeats: int = 5
    known_good: list[dict[str, Any]] = field(default_factory=list)

    def validate(self) -> None:
        self.run.validate()
        if self.run.repeats != 1:
            raise UserError("A sweep's trials are single runs; repeat the best one afterwards instead.")
        if not isinstance(self.n_trials, int) or isinstance(self.n_trials, bool) or not 1 <= self.n_trials <= MAX_TRIALS:
            raise UserError(f"The number of trials must be a whole number from 1 to {MAX_TRIALS}, not {self.n_trials}.")
        if self.timeout_s is not None and not (isinstance(self.timeout_s, int | float) and self.timeout_s > 0
                                               and math.isfinite(self.timeout_s)):
            raise UserError(f"The time limit must be a positive number of seconds, not {self.timeout_s}.")
        if self.pruner not in PRUNERS:
            raise UserError(f"The pruner must be one of {', '.join(PRUNERS)}, not '{self.pruner}'.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2 ** 31:
            raise UserError(f"The seed must be a whole number from 0 to {2 ** 31 - 1}, not {self.seed}.")
        if not isinstance(self.repeats, int) or isinstance(self.repeats, bool) or not 2 <= self.repeats <= 50:
            raise UserError(f"The finalist's repeats must be a whole number from 2 to 50, not {self.repeats}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepConfig:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["run"] = RunConfig.from_dict(data["run"])
        return cls(**values)


@dataclass(frozen=True)
class Plan:
    """What a sweep row keeps beside its SweepConfig: the resolved space, the metric and its direction, pruning."""

    config: SweepConfig
    space: SearchSpace
    metric: str
    direction: str  # "maximize" or "minimize"
    prune: bool

    @classmethod
    def of(cls, sweep: Sweep) -> Plan:
        data = sweep.config
        return cls(SweepConfig.from_dict(data), SearchSpace.from_dict(data["search_space"]), data["metric"],
                   data["direction"], bool(data["prune"]))

    def to_dict(self) -> dict[str, Any]:
        return {**self.config.to_dict(), "search_space": self.space.to_dict(), "metric": self.metric,
                "direction": self.direction, "prune": self.prune}


# -- Optuna ----------------------------------------------------------------------------------------------------------


@cache
def _storage(url: str, busy_timeout_s: float) -> optuna.storages.RDBStorage:
    """Optuna's storage on the workbench's own database (one per process and URL). SQLite waits for a lock as long
    as the store does; our own heartbeats, not Optuna's, find a killed worker's trial (see `reconcile`)."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": busy_timeout_s}}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    if url.startswith("sqlite"):
        # As the store's own connections: in the WAL journal the store keeps, a commit need not wait for the disk.
        # With SQLite's default (FULL) each trial's report of an epoch took ~9 ms instead of ~3 (issue 17's overhead).
        event.listen(storage.engine, "connect", _sqlite_normal_sync)
        storage.engine.dispose()  # drops the connections opened before the listener
    return storage


def _sqlite_normal_sync(dbapi_connection, _record) -> None:  # noqa: ANN001
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def optuna_storage(store: Store) -> optuna.storages.RDBStorage:
    return _storage(store.settings.database_url, max(store.busy_timeout_s, store.retry_s))


def delete_studies(store: Store, study_names: list[str]) -> None:
    """The Optuna records (trials, parameters, values) of sweeps that were deleted with their dataset."""
    storage = optuna_storage(store)
    for name in study_names:
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:  # never created, or already gone
            pass


def _pruner(plan: Plan) -> optuna.pruners.BasePruner:
    if not plan.prune:
        return optuna.pruners.NopPruner()
    if plan.config.pruner == "hyperband":
        epochs = int(getattr(resolve_params(plan.config.run.model, plan.config.run.params), "epochs", 1))
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_WARMUP_EPOCHS)


def _study(store: Store, sweep: Sweep, plan: Plan, slot: int = 0) -> optuna.Study:
    """The sweep's study with its sampler and pruner (they live in the process, not in the storage). The sampler is
    seeded with the sweep's seed plus the trial slot: one worker repeats a sweep exactly, and two workers do not
    draw the same parameters (TPE's constant liar counts the trials still running)."""
    sampler = optuna.samplers.TPESampler(seed=plan.config.seed + slot, constant_liar=True)
    return optuna.load_study(study_name=sweep.study_name, storage=optuna_storage(store), sampler=sampler,
                             pruner=_pruner(plan))


# -- submitting ------------------------------------------------------------------------------------------------------


def submit_sweep(store: Store, config: SweepConfig) -> Sweep:
    """Validate against the dataset, make the Optuna study (the model's defaults as trial 0, then the known-good
    configurations) and the running sweep row. Returns at once: workers run the trials (jobs.run_worker), or the
    caller does (`run_sweep`)."""
    from workbench.datasets import load_table
    from workbench.runner import validate_config

    config.validate()
    if get_model(config.run.model).family == "ensemble":
        raise UserError("An ensemble is made from finished runs and has no settings worth searching; train it "
                        "once its runs have finished.")
    resolved = validate_config(config.run, load_table(store, store.get_dataset(config.run.dataset_id)))
    space = SearchSpace.for_model(config.run.model, config.space, config.run.params)
    known = [resolve_params(config.run.model, {**config.run.params, **k}) for k in config.known_good]
    metric = primary_metric(resolved.task)
    spec = get_model(config.run.model)
    plan = Plan(config, space, metric, "maximize" if higher_is_better(metric) else "minimize",
                spec.family == "neural" if config.prune is None else bool(config.prune))
    study_name = STUDY_PREFIX + uuid.uuid4().hex
    study = optuna.create_study(storage=optuna_storage(store), study_name=study_name, direction=plan.direction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # enqueue_trial: "experimental" on some versions
        study.enqueue_trial(space.trial_params(resolved.params), user_attrs={"source": "defaults"})
        for params in known:
            study.enqueue_trial(space.trial_params(asdict(params)), user_attrs={"source": "known good"},
                                skip_if_exists=True)
    return store.create_sweep(plan.to_dict(), model=config.run.model, target=config.run.target,
                              task=resolved.task, study_name=study_name, n_trials=config.n_trials)


def cancel_sweep(store: Store, sweep_id: str) -> Sweep:
    """Stop a running sweep: no new trials, its running trials stop within seconds (ending `cancelled`)."""
    sweep = store.get_sweep(sweep_id)
    if sweep.is_final:
        raise UserError(f"Sweep {sweep_id} has already ended ({sweep.status}).")
    return store.request_sweep_cancel(sweep_id)


# -- running trials --------------------------------------------------------------------------------------------------


class PruningCallback(Callback):
    """Reports the validation metric to the trial after every epoch (after the store recorded it) and stops the run
    as `pruned` when the study's pruner says so. Classical models report their one fit."""

    def __init__(self, trial: optuna.Trial, prune: bool):
        self.trial, self.prune = trial, prune

    def on_epoch_end(self, record: EpochRecord) -> None:
        if not math.isfinite(record.val_metric):
            return
        self.trial.report(record.val_metric, record.epoch)
        if self.prune and self.trial.should_prune():
            raise RunPruned(f"Pruned at epoch {record.epoch}: its validation {record.metric_name} "
                            f"({record.val_metric:.4g}) was worse than the other trials' at that epoch.")


@dataclass
class Trial:
    """A started trial: its sweep, its Optuna trial (live, in this process) and its run (running, claimed)."""

    sweep: Sweep
    plan: Plan
    study: optuna.Study
    trial: optuna.Trial
    run: Run


def start_next_trial(store: Store, worker_id: str, sweep_id: str | None = None) -> Trial | None:
    """Take a trial slot of the oldest running sweep that has one (or of `sweep_id`), ask its study for parameters
    and create the trial's run, claimed by `worker_id`. None when no sweep has a trial to start; sweeps whose
    trials are all done (or whose time is up) are finished on the way."""
    sweeps = [store.get_sweep(sweep_id)] if sweep_id else store.list_sweeps(statuses=(SweepStatus.RUNNING,))
    for sweep in sorted(sweeps, key=lambda s: s.created_at):
        if sweep.status != SweepStatus.RUNNING:
            continue
        plan = Plan.of(sweep)
        if _time_is_up(sweep, plan):
            settle(store, sweep.id)
            continue
        slot = store.claim_trial_slot(sweep.id)
        if slot is None:
            settle(store, sweep.id)
            continue
        study = _study(store, sweep, plan, slot)
        trial = study.ask(plan.space.distributions())
        try:
            params = plan.space.run_params(trial.params)
            config = replace(plan.config.run, params=params)
            run = store.create_trial_run(config.to_dict(), model=sweep.model, target=sweep.target, task=sweep.task,
                                         params=asdict(resolve_params(sweep.model, params)), sweep_id=sweep.id,
                                         trial_number=trial.number, worker_id=worker_id)
        except Exception:
            _tell_once(study, trial.number, state=TrialState.FAIL)
            raise
        trial.set_user_attr("run_id", run.id)
        return Trial(sweep, plan, study, trial, run)
    return None


def train_trial(store: Store, started: Trial) -> RunStatus:
    """Train a started trial's run (jobs.execute_run, with the pruning callback), tell the study how it ended and
    settle the sweep. Never raises for the run's own failure."""
    from workbench.jobs import execute_run

    status = RunStatus(execute_run(store, started.run, [PruningCallback(started.trial, started.plan.prune)]))
    run = store.get_run(started.run.id, with_epochs=False)
    _tell(started.study, started.trial.number, run, started.plan.metric)
    settle(store, started.sweep.id)
    return status


def _tell(study: optuna.Study, number: int, run: Run, metric: str) -> None:
    """Tell the study how a trial's run ended: its validation metric, pruned, or failed (any other end)."""
    value = (run.metrics.get("val") or {}).get(metric)
    if run.status == RunStatus.SUCCEEDED and value is not None and math.isfinite(value):
        _tell_once(study, number, value)
    elif run.status == RunStatus.PRUNED:
        _tell_once(study, number, state=TrialState.PRUNED)
    else:
        _tell_once(study, number, state=TrialState.FAIL)


def _tell_once(study: optuna.Study, number: int, value: float | None = None, state: TrialState | None = None) -> None:
    """`study.tell`, unless another worker has told the trial first: `skip_if_finished` reads the state, then writes,
    and a worker reconciling the trial in between made the write fail (UpdateFinishedTrialError, once in a CI run)."""
    try:
        study.tell(number, value, state=state, skip_if_finished=True)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass


def _slots_being_started(store: Store, sweep: Sweep, trials: list[FrozenTrial]) -> bool:
    """Whether a worker has taken a trial slot and not yet asked the study for its trial (start_next_trial: the slot,
    then the trial, then its run). Such a slot counts as running, unless the heartbeat timeout has passed since the
    newest trial began (its worker died in between), so that a sweep is not finished while its last trial starts."""
    asked = [t for t in trials if t.state != TrialState.WAITING]  # (an enqueued trial waits until it is asked)
    if sweep.trials_started <= len(asked):
        return False
    newest = max((_naive_utc(t) for t in asked if t.datetime_start is not None), default=sweep.started_at)
    return utcnow() - newest < timedelta(seconds=store.settings.heartbeat_timeout_s)


def _time_is_up(sweep: Sweep, plan: Plan) -> bool:
    limit = plan.config.timeout_s
    return limit is not None and utcnow() >= sweep.started_at + timedelta(seconds=limit)


def reconcile(store: Store, sweep: Sweep, study: optuna.Study | None = None) -> list[int]:
    """Optuna trials still running whose run has ended (its worker was killed and recovery interrupted it, or it
    ended before the tell) are told how it ended; a trial whose worker died before making its run fails after the
    heartbeat timeout. Returns the trial numbers it told."""
    plan = Plan.of(sweep)
    study = study or _study(store, sweep, plan)
    runs = {r.trial_number: r for r in store.sweep_runs(sweep.id)}
    cutoff = utcnow() - timedelta(seconds=store.settings.heartbeat_timeout_s)
    told = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run = runs.get(trial.number)
        if run is not None and run.is_final:
            _tell(study, trial.number, run, plan.metric)
        elif run is None and trial.datetime_start is not None and _naive_utc(trial) < cutoff:
            _tell_once(study, trial.number, state=TrialState.FAIL)
        else:
            continue
        told.append(trial.number)
    return told


def _naive_utc(trial: FrozenTrial) -> datetime:
    """Optuna keeps naive local times; the store naive UTC ones."""
    return trial.datetime_start.astimezone(UTC).replace(tzinfo=None)


def settle(store: Store, sweep_id: str) -> Sweep:
    """Bring a sweep's record up to date: reconcile its trials, record its best run, and finish it when no trial
    will start (slots all taken, time up or cancelled) and none is running. Returns it as it now stands."""
    sweep = store.get_sweep(sweep_id)
    plan = Plan.of(sweep)
    study = _study(store, sweep, plan)
    reconcile(store, sweep, study)
    best = _best_trial(study)
    best_run_id = best.user_attrs.get("run_id") if best else None
    if best_run_id != sweep.best_run_id:
        store.record_sweep_best(sweep.id, best_run_id)
    if sweep.status == SweepStatus.RUNNING:
        no_more = sweep.trials_started >= sweep.n_trials or _time_is_up(sweep, plan)
        running = [r for r in store.sweep_runs(sweep.id) if not r.is_final]
        trials = study.get_trials(deepcopy=False)
        pending = [t for t in trials if t.state == TrialState.RUNNING]
        if no_more and not running and not pending and not _slots_being_started(store, sweep, trials):
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            store.finish_sweep(sweep.id, None if complete else "No trial finished; see the trials' errors.")
    return store.get_sweep(sweep_id)


def _best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def run_sweep(store: Store, sweep_id: str, worker_id: str, on_trial: Callable[[Run], None] | None = None,
              poll_s: float = 0.5) -> Sweep:
    """Run a sweep's trials in this process until it ends (the CLI's foreground `sweep`); other workers may run
    some of them at the same time. `on_trial(run)` is called as each trial starts (the caller's heartbeat)."""
    import time

    while True:
        started = start_next_trial(store, worker_id, sweep_id)
        if started is not None:
            if on_trial:
                on_trial(started.run)
            train_trial(store, started)
            continue
        sweep = settle(store, sweep_id)
        if sweep.is_final:
            return sweep
        time.sleep(poll_s)  # other workers' trials are still running


# -- for the page and the CLI ----------------------------------------------------------------------------------------


@dataclass
class TrialSummary:
    number: int
    run_id: str | None
    state: str  # Optuna's: complete, pruned, fail, running, waiting
    run_status: str | None
    params: dict[str, Any]  # the searched hyperparameters (lists of numbers as text)
    value: float | None  # the validation metric (a pruned trial: its last report)
    duration_s: float | None
    epochs: int | None


@dataclass
class SweepSummary:
    sweep: Sweep
    metric: str
    direction: str
    space: dict[str, str]  # every hyperparameter in words (Dimension.describe)
    trials: list[TrialSummary]
    best_so_far: list[tuple[int, float]]  # (trial number, best value up to it), over complete trials
    importances: dict[str, float] | None  # None under two complete trials or when Optuna cannot tell
    best: TrialSummary | None
    n_complete: int
    n_pruned: int
    n_failed: int
    n_running: int
    duration_s: float

    def to_json(self) -> dict[str, Any]:
        """The CLI's JSON: sweep, show-sweep --json."""
        sweep = self.sweep
        return {"sweep_id": sweep.id, "status": str(sweep.status), "model": sweep.model, "n_trials": sweep.n_trials,
                "n_complete": self.n_complete, "n_pruned": self.n_pruned, "n_failed": self.n_failed,
                "best_run_id": sweep.best_run_id, "best_params": self.best.params if self.best else None,
                "best_value": self.best.value if self.best else None, "metric": self.metric,
                "direction": self.direction, "duration_s": round(self.duration_s, 3)}


def sweep_summary(store: Store, sweep_id: str) -> SweepSummary:
    """Everything the sweep page shows, read only: every trial, the best so far, parameter importances."""
    sweep = store.get_sweep(sweep_id)
    plan = Plan.of(sweep)
    study = optuna.load_study(study_name=sweep.study_name, storage=optuna_storage(store))
    runs = {r.trial_number: r for r in store.sweep_runs(sweep.id)}
    trials, best_so_far, best_value = [], [], None
    better = max if plan.direction == "maximize" else min
    for t in study.get_trials(deepcopy=False):
        run = runs.get(t.number)
        value = t.value if t.state == TrialState.COMPLETE else (
            t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
        trials.append(TrialSummary(t.number, run.id if run else None, t.state.name.lower(),
                                   str(run.status) if run else None, dict(t.params), value,
                                   run.duration_s if run else None, run.epochs_done if run else None))
        if t.state == TrialState.COMPLETE and t.value is not None:
            best_value = t.value if best_value is None else better(best_value, t.value)
            best_so_far.append((t.number, best_value))
    best_trial = _best_trial(study)
    best = next((t for t in trials if best_trial and t.number == best_trial.number), None)
    counts = {state: sum(t.state == state for t in trials) for state in ("complete", "pruned", "fail", "running")}
    importances = None
    if counts["complete"] >= 2:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "importances will be equal": shown as they are
                importances = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError, ZeroDivisionError):  # e.g. every complete trial scored the same
            importances = None
    end = sweep.finished_at or utcnow()
    return SweepSummary(sweep, plan.metric, plan.direction, {d.name: d.describe() for d in plan.space.dimensions},
                        trials, best_so_far, importances, best, counts["complete"], counts["pruned"], counts["fail"],
                        counts["running"], max(0.0, (end - sweep.started_at).total_seconds()))


def retrain_best(store: Store, sweep_id: str, repeats: int | None = None) -> tuple[RunGroup, list[Run]]:
    """Queue the best trial's configuration as a run group with `repeats` repeats (default: the sweep's), so its
    score gets an interval. Refused while no trial has finished."""
    from workbench.jobs import submit_group

    sweep = store.get_sweep(sweep_id)
    if sweep.best_run_id is None:
        sweep = settle(store, sweep_id) if sweep.status == SweepStatus.RUNNING else sweep
    if sweep.best_run_id is None:
        raise UserError(f"Sweep {sweep_id} has no finished trial yet; there is no best configuration to retrain.")
    best = store.get_run(sweep.best_run_id, with_epochs=False)
    config = RunConfig.from_dict(best.config)
    config.repeats = repeats if repeats is not None else Plan.of(sweep).config.repeats
    return submit_group(store, config)


def models_for(store: Store, dataset_id: str, target: str, task: str = "auto") -> list[str]:
    """The catalog's models that do this dataset's task for `target`, in catalog order; not the ensemble, which is
    made of their runs once they have finished."""
    from workbench.datasets import load_table
    from workbench.prepare import detect_task

    table = load_table(store, store.get_dataset(dataset_id))
    if target not in table.columns:
        raise UserError(f"There is no column called '{target}' to predict.{did_you_mean(target, table.columns)}")
    detected = detect_task(table[target].dropna(), task)
    return [name for name, spec in MODELS.items() if detected in spec.tasks and spec.family != "ensemble"]


def try_every_model(store: Store, dataset_id: str, target: str, repeats: int = 1, task: str = "auto",
                    base: RunConfig | None = None) -> list[Run]:
    """Queue every catalog model that does the task, each with its defaults (the page's "Try every model"): one
    run each, all or none; with repeats above 1 a run group each (the returned runs are all their members).
    `base` gives the split and preprocessing (its model and params are ignored)."""
    from workbench.jobs import submit_group, submit_runs

    base = base or RunConfig(dataset_id=dataset_id, target=target, model="", task=task)
    configs = [replace(base, dataset_id=dataset_id, target=target, model=name, params={}, repeats=repeats)
               for name in models_for(store, dataset_id, target, task)]
    if repeats == 1:
        return submit_runs(store, configs)
    for config in configs:  # every group validated before any is queued
        config.validate()
    return [run for config in configs for run in submit_group(store, config)[1]]


def sweep_every_model(store: Store, config: SweepConfig) -> list[Sweep]:
    """`sweep --model all`: one sweep per model that does the task, each with `config.n_trials` trials (its own
    defaults first) and the rest of `config`; the space overrides and fixed values must fit every model."""
    models = models_for(store, config.run.dataset_id, config.run.target, config.run.task)
    configs = [replace(config, run=replace(config.run, model=name)) for name in models]
    for c in configs:  # a bad --space or --fix is refused before any sweep is made
        c.validate()
        SearchSpace.for_model(c.run.model, c.space, c.run.params)
    return [submit_sweep(store, c) for c in configs]
