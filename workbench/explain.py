"""What a trained run learned: permutation importance of its input columns and partial dependence of the top ones.

Both are scikit-learn's (`permutation_importance`, `partial_dependence`) over `RunEstimator`, a scikit-learn
estimator that takes the user's ORIGINAL columns and predicts exactly as the workbench does (the saved
preprocessing and model, through workbench.predict). So a date column and the parts made from it, or a category and
its one-hot columns, are one column: permuting the original column moves all of them together.

The cost stays within a budget: at most MAX_ROWS test rows (a seeded sample) and about BUDGET_SHARE of the run's
training time (at least MIN_BUDGET_S); a fast run gets fewer repeats, then fewer rows, down to a floor. The result
says what was used.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.inspection import partial_dependence, permutation_importance
from sklearn.metrics import get_scorer

from workbench.dates import as_datetime, naive_utc
from workbench.errors import UserError
from workbench.predict import TrainedModel, load_model_for_run
from workbench.store.entities import Run, RunGroup, RunStatus
from workbench.tasks import Task, primary_metric

log = logging.getLogger(__name__)

MAX_ROWS = 10_000  # test rows permuted at most (a seeded sample of larger test sets)
DEFAULT_REPEATS = 5  # shuffles per column, for the mean and its spread
MIN_REPEATS = 2  # the fewest that still give a spread
MIN_ROWS = 500  # a fast run's sample is cut down to no fewer rows than this (or all its test rows)
BUDGET_SHARE = 0.2  # of the run's training time
MIN_BUDGET_S = 2.0  # a sub-second run still gets enough shuffles to rank its columns
PD_COLUMNS = 3  # partial dependence of this many top columns
PD_ROWS = 1_000  # rows averaged over at each grid value
PD_GRID = 20  # grid values of a numeric or date column; categories: the most frequent this many
SEED = 0
# scikit-learn scorers of each task's primary metric (workbench.tasks.primary_metric), higher is better
SCORERS = {"accuracy": "accuracy", "rmse": "neg_root_mean_squared_error"}


class RunEstimator(BaseEstimator):
    """A trained run as a fitted scikit-learn estimator over the original table columns (a pandas DataFrame with
    at least the run's input columns). Classification predicts class indices (`classes_` = 0..k-1, in the order of
    the run's `classes`); regression predicts values. `score` is the run's primary metric as a scorer (accuracy;
    regression: negative RMSE, so that higher is better)."""

    def __init__(self, trained: TrainedModel):
        self.trained = trained

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, X: pd.DataFrame, y: Any = None) -> RunEstimator:  # noqa: N803 (scikit-learn's names)
        raise NotImplementedError("a RunEstimator wraps a trained run; train runs with the workbench")

    @property
    def scoring(self) -> str:
        return SCORERS[primary_metric(self.trained.task)]

    def score(self, X: pd.DataFrame, y: np.ndarray) -> float:  # noqa: N803
        return float(get_scorer(self.scoring)(self, X, y))

    def _outputs(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self.trained.predict_proba(X[self.trained.input_columns])


class RunClassifier(ClassifierMixin, RunEstimator):
    @property
    def classes_(self) -> np.ndarray:
        return np.arange(len(self.trained.classes))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self._outputs(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self._outputs(X).argmax(axis=1)


class RunRegressor(RegressorMixin, RunEstimator):
    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self._outputs(X)


def run_estimator(trained: TrainedModel) -> RunEstimator:
    return RunRegressor(trained) if trained.task == Task.REGRESSION else RunClassifier(trained)


# -- results ------------------------------------------------------------------------------------------------------


@dataclass
class ColumnImportance:
    """How much the run's primary metric drops when the column's values are shuffled (mean over shuffles, in the
    metric's units: accuracy points, or RMSE added), and the spread (standard deviation) over the shuffles. For a
    group: the mean over its members with a 95% t interval (low, high) and how many members it rests on."""

    column: str
    importance: float
    std: float
    low: float | None = None
    high: float | None = None
    n_members: int | None = None


@dataclass
class Explanation:
    """A run's (or group's) explanation, as stored with the run (`to_dict`) and shown by the page and `explain`.

    partial_dependence: {column: {"kind": "numeric" | "categorical" | "datetime", "grid": [values],
    "curves": {name: [average prediction at each grid value]}}}; name: "prediction" (regression), the positive
    class (binary: its probability) or each class (multiclass: each probability)."""

    metric: str  # the primary metric the importance is measured in
    importance: list[ColumnImportance]  # largest first
    partial_dependence: dict[str, Any] = field(default_factory=dict)
    baseline_score: float | None = None  # the metric on the rows used, nothing shuffled (scorer sign: higher better)
    n_rows: int = 0  # test rows used
    n_test_rows: int = 0  # test rows the run has
    n_repeats: int = 0  # shuffles per column
    seconds: float = 0.0  # what it took
    budget_s: float = 0.0  # what it was allowed
    notes: list[str] = field(default_factory=list)  # what was cut to fit the budget, columns left out of PD

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        data = dict(data)
        data["importance"] = [ColumnImportance(**item) for item in data.get("importance", [])]
        return cls(**data)

    def importance_json(self) -> list[dict[str, Any]]:
        """[{"column", "importance", "std"}] (a group's also "low", "high", "n_members"), largest first."""
        return [{k: v for k, v in asdict(item).items() if v is not None} for item in self.importance]


@dataclass(frozen=True)
class Plan:
    """How much of the test set importance is computed on, to fit the budget."""

    n_rows: int
    n_repeats: int
    grid: int  # partial dependence grid values per column
    estimated_s: float


@dataclass(frozen=True)
class Pace:
    """What one prediction call costs: a fixed part (preprocessing set-up, model overhead) and a part per row."""

    per_call_s: float
    per_row_s: float

    def seconds(self, calls: int, rows: int) -> float:
        return calls * (self.per_call_s + self.per_row_s * rows)


def plan_budget(n_test_rows: int, n_columns: int, pace: Pace, budget_s: float, max_rows: int = MAX_ROWS,
                n_repeats: int = DEFAULT_REPEATS) -> Plan:
    """The most repeats (from `n_repeats` down to MIN_REPEATS), then a coarser partial dependence grid, then the
    most rows (from min(n_test_rows, max_rows) down to MIN_ROWS), whose estimated cost fits `budget_s`; the floor
    (MIN_REPEATS, the coarse grid, MIN_ROWS) when nothing does. The cost: one prediction call over the rows for the
    unshuffled score and one per column and repeat, and one over min(rows, PD_ROWS) rows per grid value of each
    of the PD_COLUMNS columns."""
    rows = min(n_test_rows, max_rows)

    def cost(n: int, repeats: int, grid: int) -> float:
        return pace.seconds(1 + n_columns * repeats, n) + pace.seconds(PD_COLUMNS * grid, min(n, PD_ROWS))

    for repeats, grid in [*((r, PD_GRID) for r in range(max(n_repeats, MIN_REPEATS), MIN_REPEATS - 1, -1)),
                          (MIN_REPEATS, PD_GRID // 2)]:
        if cost(rows, repeats, grid) <= budget_s:
            return Plan(rows, repeats, grid, cost(rows, repeats, grid))
    repeats, grid = MIN_REPEATS, PD_GRID // 2
    calls = 1 + n_columns * repeats
    left = budget_s - pace.seconds(PD_COLUMNS * grid, min(rows, PD_ROWS)) - pace.seconds(calls, 0)
    fitting = int(left / (pace.per_row_s * calls)) if pace.per_row_s > 0 else rows
    n = max(min(rows, MIN_ROWS), min(rows, fitting))
    return Plan(n, repeats, grid, cost(n, repeats, grid))


# -- computing ----------------------------------------------------------------------------------------------------


def explain_model(trained: TrainedModel, X: pd.DataFrame, y: np.ndarray, training_s: float, *,  # noqa: N803
                  max_rows: int = MAX_ROWS, n_repeats: int = DEFAULT_REPEATS, seed: int = SEED) -> Explanation:
    """Permutation importance of every input column on the rows X (original columns; targets y as the run scores
    them: class indices or values), and partial dependence of the top PD_COLUMNS columns, within the budget of
    `training_s`."""
    started = time.perf_counter()
    estimator = run_estimator(trained)
    columns = trained.input_columns
    X = X[columns]  # noqa: N806
    budget_s = max(MIN_BUDGET_S, BUDGET_SHARE * training_s)
    rng = np.random.default_rng(seed)
    notes = []
    sample = np.sort(rng.choice(len(X), min(len(X), max_rows), replace=False))
    plan = plan_budget(len(X), len(columns), measure_pace(estimator, X.iloc[sample]), budget_s, max_rows, n_repeats)
    if plan.n_rows < len(sample):
        sample = np.sort(rng.choice(sample, plan.n_rows, replace=False))
    if plan.n_rows < len(X):
        notes.append(f"Measured on a random {plan.n_rows:,} of the {len(X):,} test rows"
                     + (" to stay within the time budget." if plan.n_rows < min(len(X), max_rows) else "."))
    if plan.n_repeats < n_repeats:
        notes.append(f"{plan.n_repeats} shuffles per column instead of {n_repeats}, to stay within the time budget.")
    rows, targets = X.iloc[sample], np.asarray(y)[sample]
    result = permutation_importance(estimator, rows, targets, scoring=estimator.scoring, n_repeats=plan.n_repeats,
                                    random_state=seed)
    ranked = sorted(zip(columns, result.importances_mean, result.importances_std, strict=True),
                    key=lambda item: (-item[1], item[0]))
    importance = [ColumnImportance(c, _round(m), _round(s)) for c, m, s in ranked]
    explanation = Explanation(
        metric=primary_metric(trained.task), importance=importance,
        baseline_score=_round(estimator.score(rows, targets)), n_rows=len(sample), n_test_rows=len(X),
        n_repeats=plan.n_repeats, budget_s=round(budget_s, 3), notes=notes)
    top = [item.column for item in importance[:PD_COLUMNS]]
    pd_rows = rows.iloc[np.sort(rng.choice(len(rows), min(len(rows), PD_ROWS), replace=False))]
    explanation.partial_dependence = dependence(estimator, pd_rows, top, notes, plan.grid)
    explanation.seconds = round(time.perf_counter() - started, 3)
    if explanation.seconds > 1.5 * budget_s:
        notes.append(f"It took {explanation.seconds:.1f} s, over its budget of {budget_s:.1f} s, even with the "
                     "fewest rows and shuffles.")
    return explanation


def measure_pace(estimator: RunEstimator, X: pd.DataFrame) -> Pace:  # noqa: N803
    """Time prediction calls on 10 rows and on up to 1,000: a fixed cost per call and a cost per row."""
    small, large = X.iloc[:10], X.iloc[:1_000]
    estimator.predict(small)  # the first call pays for lazy set-up; not part of the pace
    tick = time.perf_counter()
    estimator.predict(small)
    per_call = time.perf_counter() - tick
    tick = time.perf_counter()
    estimator.predict(large)
    per_row = max(0.0, time.perf_counter() - tick - per_call) / max(1, len(large) - len(small))
    return Pace(per_call, per_row)


def dependence(estimator: RunEstimator, X: pd.DataFrame, columns: list[str], notes: list[str],  # noqa: N803
               grid_size: int = PD_GRID) -> dict[str, Any]:
    """Partial dependence of each of `columns`: the average prediction over the rows X with the column set to each
    grid value in turn (up to `grid_size` values: quantiles of a number or date, the most frequent categories)."""
    trained = estimator.trained
    features = trained.preprocessor.features
    X = X.copy()  # noqa: N806
    for name in features.numeric + features.boolean:  # scikit-learn warns about (and mishandles) integer grids
        X[name] = pd.to_numeric(X[name], errors="coerce").astype("float64")
    out = {}
    for column in columns:
        kind = ("categorical" if column in features.categorical else
                "datetime" if column in features.datetime else "numeric")
        grid = _grid(X[column], kind, column in features.boolean, grid_size, column in features.datetime_day_first)
        if len(grid) < 2:
            notes.append(f"No partial dependence for '{column}': it has fewer than two values on the test rows.")
            continue
        result = partial_dependence(estimator, X, [column], custom_values={column: grid}, kind="average",
                                    method="brute", categorical_features=[column] if kind == "categorical" else None)
        average = np.asarray(result["average"])
        if trained.task == Task.REGRESSION:
            curves = {"prediction": average[0]}
        elif trained.task == Task.BINARY:
            curves = {str(trained.classes[1]): average[0]}
        else:
            curves = {str(label): average[k] for k, label in enumerate(trained.classes)}
        shown = ([str(v) for v in grid] if kind == "categorical" else
                 [pd.Timestamp(v).isoformat() for v in grid] if kind == "datetime" else [_round(v) for v in grid])
        out[column] = {"kind": kind, "grid": shown, "curves": {k: [_round(v) for v in values]
                                                               for k, values in curves.items()}}
    return out


def _grid(values: pd.Series, kind: str, boolean: bool, size: int, day_first: bool = False) -> np.ndarray:
    present = values.dropna()
    if kind == "categorical":
        return np.asarray(present.astype(str).value_counts().index[:size].tolist(), dtype=object)
    if boolean:
        return np.unique(present.to_numpy(dtype="float64"))
    if kind == "datetime":
        dates = naive_utc(as_datetime(present, day_first).dropna())  # the grid's values go back into the column
        if dates.empty:
            return np.array([])
        stamps = np.quantile(dates.astype("int64").to_numpy(), np.linspace(0.05, 0.95, size))
        return np.unique(pd.to_datetime(stamps.astype("int64")).to_numpy())
    numbers = present.to_numpy(dtype="float64")
    numbers = numbers[np.isfinite(numbers)]
    if numbers.size == 0:
        return np.array([])
    return np.unique(np.quantile(numbers, np.linspace(0.05, 0.95, size)))


def _round(value: float) -> float | None:
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


# -- runs and groups in the store ---------------------------------------------------------------------------------


def explain_run(store, run_id: str) -> Explanation:
    """Compute a succeeded run's explanation on its own test rows (the stored split, or its member's folds) and keep
    it with the run. Refuses a run that did not succeed or has no saved model, in one sentence."""
    from workbench.datasets import load_table

    run = store.get_run(run_id, with_epochs=False)
    trained = load_model_for_run(store, run_id)
    X, y = test_rows(store, run, load_table(store, run.dataset_id))  # noqa: N806
    explanation = explain_model(trained, X, y, run.duration_s or 0.0)
    store.record_explanation(run_id, explanation.to_dict())
    return explanation


def explain_after_training(store, run_id: str, table: pd.DataFrame) -> Explanation | None:
    """The worker's step after a run succeeded: compute and keep its explanation. Never raises: a failure is logged
    and the run stays succeeded, without an explanation (`explain` can try again)."""
    try:
        run = store.get_run(run_id, with_epochs=False)
        if run.status != RunStatus.SUCCEEDED:
            return None
        trained = load_model_for_run(store, run_id)
        X, y = test_rows(store, run, table)  # noqa: N806
        explanation = explain_model(trained, X, y, run.duration_s or 0.0)
        store.record_explanation(run_id, explanation.to_dict())
        return explanation
    except Exception:
        log.exception("explaining run %s failed; the run keeps its result without importance", run_id)
        return None


def test_rows(store, run: Run, table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """A run's test rows of `table` (original columns) and their targets, as the run was scored on them."""
    from workbench.jobs import run_member
    from workbench.prepare import split_table
    from workbench.runconfig import RunConfig
    from workbench.runner import member_split

    config = RunConfig.from_dict(run.config)
    member = run_member(store, run)
    rows = member_split(table, config, Task(run.task), member) if member else None
    parts = split_table(table, config.target, run.task, config.split, rows)
    if run.split_fingerprint and parts.rows.fingerprint != run.split_fingerprint:
        raise UserError(f"The test rows of run {run.id} cannot be found again in its dataset; it cannot be explained.")
    return parts.data.loc[parts.rows.test], parts.y(parts.rows.test)


def run_explanation(run: Run) -> Explanation | None:
    """The stored explanation of a run read with its details (Store.get_run), or None."""
    return Explanation.from_dict(run.explanation) if run.explanation else None


def group_explanation(group: RunGroup, members: list[Run]) -> Explanation | None:
    """A group's importance: per column, the mean over its finished members that have an explanation, with the
    95% corrected t interval of workbench.evaluation (members' training sets overlap). No partial dependence (each
    member's is on its own rows). None when no member has an explanation yet."""
    from workbench.evaluation import GroupScores, group_interval

    explained = [(m, Explanation.from_dict(m.explanation)) for m in members
                 if m.status == RunStatus.SUCCEEDED and m.explanation]
    if not explained:
        return None
    per_column: dict[str, dict[str, float]] = {}
    for member, explanation in explained:
        for item in explanation.importance:
            per_column.setdefault(item.column, {})[member.member or member.id] = item.importance
    importance = []
    for column, scores in per_column.items():
        interval = group_interval(GroupScores(group.id, group.model, "importance", group.scheme_key, scores,
                                              group.test_share))
        values = np.array(list(scores.values()))
        importance.append(ColumnImportance(column, _round(interval.point), _round(values.std(ddof=1))
                                           if len(values) > 1 else 0.0, _round(interval.low), _round(interval.high),
                                           len(values)))
    importance.sort(key=lambda item: (-(item.importance or 0.0), item.column))
    first = explained[0][1]
    return Explanation(metric=first.metric, importance=importance, n_rows=sum(e.n_rows for _, e in explained),
                       n_test_rows=sum(e.n_test_rows for _, e in explained), n_repeats=first.n_repeats,
                       seconds=round(sum(e.seconds for _, e in explained), 3),
                       notes=[f"Mean over {len(explained)} of the group's {group.n_members} members, with a 95% "
                              "interval."])


def find_item(store, item_id: str) -> tuple[Run | None, RunGroup | None]:
    """(the run, None) or (None, the group) of an id; a UserError that names the id when it is neither."""
    try:
        return store.get_run(item_id), None
    except UserError:
        pass
    try:
        return None, store.get_group(item_id)
    except UserError:
        raise UserError(f"There is no run or run group with id '{item_id}'.") from None


def item_explanation(store, item_id: str, compute: bool = False) -> Explanation | None:
    """A run's stored explanation, or a group's over its members'. `compute`: first compute what is missing for a
    succeeded run (or the group's succeeded members), which takes a while; a run that did not succeed refuses."""
    run, group = find_item(store, item_id)
    if run is not None:
        if run.explanation or not compute:
            return run_explanation(run)
        return explain_run(store, run.id)
    members = store.get_runs([m.id for m in store.group_runs(group.id)])
    if compute:
        for member in members:
            if member.status == RunStatus.SUCCEEDED and not member.explanation:
                member.explanation = explain_run(store, member.id).to_dict()
    return group_explanation(group, members)


def importance_csv(explanation: Explanation) -> str:
    """The importance as CSV text (column, importance, std; a group's also low, high, n_members), largest first.
    Column names are data: a name that a spreadsheet would run as a formula is written as text."""
    from workbench.safe_csv import to_safe_csv

    rows = explanation.importance_json()
    names = ["column", "importance", "std"] + [k for k in ("low", "high", "n_members") if rows and k in rows[0]]
    return to_safe_csv(pd.DataFrame(rows, columns=names))


__all__ = ["ColumnImportance", "Explanation", "Pace", "Plan", "RunClassifier", "RunEstimator", "RunRegressor",
           "dependence", "explain_after_training", "explain_model", "explain_run", "find_item", "group_explanation",
           "importance_csv", "item_explanation", "measure_pace", "plan_budget", "run_estimator", "run_explanation", "test_rows"]
