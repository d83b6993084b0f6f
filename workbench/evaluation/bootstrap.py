"""Bootstrap intervals over test rows: for every metric a run reports, and for the gap between two runs on the same
test rows.

The bootstrap redraws the test rows with replacement, `n_resamples` times, and recomputes each metric on every
redraw; the 2.5% and 97.5% percentiles of those values are the 95% interval. It is vectorised two ways:
- Metrics of the confusion matrix (accuracy, balanced accuracy, precision, recall, F1) depend on the redrawn rows
  only through how many fall in each (true class, predicted class) cell, and those counts are exactly multinomial
  over the observed cell frequencies; drawing them directly is exact and costs microseconds for any number of rows.
- Metrics of per-row values (log loss, ROC AUC, RMSE, MAE, R²) redraw row indices in chunks; every metric of a
  chunk uses the same redraw. ROC AUC is the rank (Mann-Whitney) form over each redraw's counts per distinct score,
  so there is no per-redraw sort and no scikit-learn call.
Two runs compared on the same rows are redrawn together (paired), which removes the rows' shared difficulty from
the gap's noise. Metric names and definitions are those of `workbench.metrics`, which tests check point for point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from workbench.tasks import Task

N_RESAMPLES = 1000
LEVEL = 0.95
# Row indices are drawn this many at a time (resamples x rows), which bounds the memory of a chunk to ~100 MB.
CHUNK_CELLS = 2_000_000
# Per-row metrics redraw at most this many row indices in all: every redraw up to 20,000 test rows, fewer above
# (200 at 100,000 rows, never under MIN_ROW_RESAMPLES). Their intervals are narrow and smooth there, and it keeps
# the cost near a second on one core.
ROW_DRAW_BUDGET = 20_000_000
MIN_ROW_RESAMPLES = 200
CONFUSION_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1")
LOG_LOSS_FLOOR = 1e-15  # as workbench.metrics clips probabilities before scikit-learn's log_loss


@dataclass(frozen=True)
class Interval:
    """A score and its interval: `low` <= `point` <= `high` in the metric's own units (for the usual metrics)."""

    point: float
    low: float
    high: float
    level: float = LEVEL


@dataclass(frozen=True)
class Resamples:
    """Each metric's point value and its values over the same redraws of the test rows (one row per prediction
    set; paired when there are two)."""

    points: list[dict[str, float]]
    draws: list[dict[str, np.ndarray]]


def score_intervals(task: Task, y: np.ndarray, predictions: np.ndarray, *, n_resamples: int = N_RESAMPLES,
                    seed: int = 0, level: float = LEVEL) -> dict[str, Interval]:
    """A (point, low, high) interval for every metric `workbench.metrics` reports for this task.

    y: class indices (classification) or values (regression); predictions: class probabilities (n, n_classes) or
    predicted values (n,). Seeded: the same inputs give the same intervals."""
    resamples = resample_metrics(task, y, [predictions], n_resamples=n_resamples, seed=seed)
    return {name: percentile_interval(point, resamples.draws[0][name], level)
            for name, point in resamples.points[0].items()}


def percentile_interval(point: float, draws: np.ndarray, level: float = LEVEL) -> Interval:
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return Interval(point, point, point, level)
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(point), float(min(low, point)), float(max(high, point)), level)


def resample_metrics(task: Task, y: np.ndarray, predictions: Sequence[np.ndarray], *, n_resamples: int = N_RESAMPLES,
                     seed: int = 0) -> Resamples:
    """Every metric of each prediction set, on the rows as they are and on `n_resamples` redraws shared by all sets."""
    task = Task(task)
    y = np.asarray(y)
    predictions = [np.asarray(p, dtype="float64") for p in predictions]
    if not len(y):
        raise ValueError("no test rows to score")
    rng = np.random.default_rng(seed)
    if task == Task.REGRESSION:
        return _regression(y.astype("float64"), predictions, n_resamples, rng)
    return _classification(y.astype("int64"), predictions, n_resamples, rng)


# -- classification -------------------------------------------------------------------------------------------------

def _classification(y: np.ndarray, probas: list[np.ndarray], n_resamples: int, rng: np.random.Generator) -> Resamples:
    k = probas[0].shape[1]
    predicted = [p.argmax(axis=1) for p in probas]
    points = [{name: float(v[0]) for name, v in _confusion_metrics(_confusion(y, pred, k)[None]).items()}
              for pred in predicted]
    draws = _joint_confusion_draws(y, predicted, k, n_resamples, rng)

    row_values = [_row_classification(y, p, k) for p in probas]
    for values, point in zip(row_values, points, strict=True):
        point.update({name: float(v[0]) for name, v in values.draw(np.arange(len(y))[None]).items()})
    row_draws = _chunked(len(y), n_resamples, rng, [v.draw for v in row_values])
    for confusion_draws, chunk_draws in zip(draws, row_draws, strict=True):
        confusion_draws.update(chunk_draws)
    # ROC AUC only where workbench.metrics reports it: two classes present (binary), or every class (multiclass).
    present = len(np.unique(y))
    if present < 2 or (k > 2 and present < k):
        for point, draw in zip(points, draws, strict=True):
            point.pop("roc_auc", None)
            draw.pop("roc_auc", None)
    return Resamples(points, draws)


def _confusion(y: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y * k + predicted, minlength=k * k).reshape(k, k)


def _joint_confusion_draws(y: np.ndarray, predicted: list[np.ndarray], k: int, n_resamples: int,
                           rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """Redrawn confusion matrices of every prediction set at once: multinomial counts over the observed
    (true, predicted by set 1, predicted by set 2, ...) cells, which is exactly what redrawing rows does to them."""
    code = y.copy()
    for pred in predicted:
        code = code * k + pred
    cells, counts = np.unique(code, return_counts=True)
    draws = rng.multinomial(len(y), counts / counts.sum(), size=n_resamples).astype("float64")  # (B, cells)
    out = []
    for position in range(len(predicted)):
        # The set's own (true, predicted) cell of each joint cell, as a sparse (cells, k*k) sum.
        pred = (cells // k ** (len(predicted) - 1 - position)) % k
        true = cells // k ** len(predicted)
        onehot = sparse.csr_matrix((np.ones(len(cells)), (np.arange(len(cells)), true * k + pred)),
                                   shape=(len(cells), k * k))
        confusion = np.asarray((onehot.T @ draws.T).T).reshape(n_resamples, k, k)
        out.append(_confusion_metrics(confusion))
    return out


def _confusion_metrics(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """confusion: (B, true, predicted) counts -> each metric as (B,), macro-averaged over every class as
    workbench.metrics does (zero_division=0); balanced accuracy over the classes present, as scikit-learn."""
    confusion = np.asarray(confusion, dtype="float64")
    hits = np.diagonal(confusion, axis1=1, axis2=2)
    actual = confusion.sum(axis=2)
    called = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(actual > 0, hits / actual, 0.0)
        precision = np.where(called > 0, hits / called, 0.0)
        f1 = np.where(actual + called > 0, 2 * hits / (actual + called), 0.0)
        balanced = (recall * (actual > 0)).sum(axis=1) / (actual > 0).sum(axis=1)
    return {"accuracy": hits.sum(axis=1) / confusion.sum(axis=(1, 2)), "balanced_accuracy": balanced,
            "precision": precision.mean(axis=1), "recall": recall.mean(axis=1), "f1": f1.mean(axis=1)}


@dataclass
class _RowClassification:
    row_loss: np.ndarray
    # Per one-vs-rest class: each row's rank among the class's distinct scores, times 2, plus 1 if it is of the class.
    auc_codes: list[np.ndarray]
    n_scores: list[int]

    def draw(self, index: np.ndarray) -> dict[str, np.ndarray]:
        aucs = [_rank_auc(codes[index], n) for codes, n in zip(self.auc_codes, self.n_scores, strict=True)]
        # One-vs-rest macro average over the classes, as scikit-learn's multi_class="ovr".
        return {"log_loss": self.row_loss[index].mean(axis=1), "roc_auc": np.mean(aucs, axis=0)}


def _row_classification(y: np.ndarray, proba: np.ndarray, k: int) -> _RowClassification:
    p_true = np.clip(proba[np.arange(len(y)), y], LOG_LOSS_FLOOR, 1 - np.finfo("float64").eps)
    codes, sizes = [], []
    for c in [1] if k == 2 else range(k):
        distinct, rank = np.unique(proba[:, c], return_inverse=True)
        codes.append((rank * 2 + (y == c)).astype("int32" if 2 * len(y) < 2 ** 31 else "int64"))
        sizes.append(len(distinct))
    return _RowClassification(-np.log(p_true), codes, sizes)


def _rank_auc(codes: np.ndarray, n_scores: int) -> np.ndarray:
    """ROC AUC of each redraw (rows of `codes`): the share of (positive, negative) pairs ordered right, ties counting
    half, from the redraw's counts of positives and negatives per distinct score; NaN where a side is missing.
    One redraw at a time: its counts stay in cache, twice as fast as one bincount over the whole chunk."""
    out = np.full(len(codes), np.nan)
    for b, row in enumerate(codes):
        counts = np.bincount(row, minlength=2 * n_scores)
        negatives, positives = counts[0::2], counts[1::2]
        pairs = int(positives.sum()) * (len(row) - int(positives.sum()))
        if pairs:
            out[b] = (positives @ np.cumsum(negatives) - (positives @ negatives) / 2) / pairs
    return out


# -- regression -----------------------------------------------------------------------------------------------------

def _regression(y: np.ndarray, predictions: list[np.ndarray], n_resamples: int, rng: np.random.Generator) -> Resamples:
    centred = y - y.mean()  # the variance as E[y²] - E[y]² loses no digits when y is centred first

    def drawer(predicted: np.ndarray):
        error = y - predicted
        columns = (error ** 2, np.abs(error), centred, centred ** 2)

        def draw(index: np.ndarray) -> dict[str, np.ndarray]:
            # One gather per column: three times faster than gathering rows of a (n, 4) array.
            squared, absolute, mean, square = (column[index].mean(axis=1) for column in columns)
            variance = square - mean ** 2
            with np.errstate(invalid="ignore", divide="ignore"):
                r2 = np.where(variance > 1e-12 * max(float(np.mean(centred ** 2)), 1e-300), 1 - squared / variance,
                              np.nan)
            return {"rmse": np.sqrt(squared), "mae": absolute, "r2": r2}

        return draw

    drawers = [drawer(p) for p in predictions]
    points = [{name: float(v[0]) for name, v in d(np.arange(len(y))[None]).items()} for d in drawers]
    for point in points:
        if len(y) < 2:  # as scikit-learn's r2_score: not defined on one row
            point["r2"] = math.nan
        elif not np.isfinite(point["r2"]):  # a constant target: scikit-learn's r2_score gives 1 if exact, else 0
            point["r2"] = 1.0 if point["rmse"] == 0 else 0.0
    return Resamples(points, _chunked(len(y), n_resamples, rng, drawers))


def _chunked(n: int, n_resamples: int, rng: np.random.Generator, drawers) -> list[dict[str, np.ndarray]]:
    """Each drawer's metrics over `n_resamples` redraws of the n rows, drawn in chunks shared by every drawer."""
    n_resamples = min(n_resamples, max(MIN_ROW_RESAMPLES, ROW_DRAW_BUDGET // n))
    size = max(1, min(n_resamples, CHUNK_CELLS // n))
    parts: list[list[dict[str, np.ndarray]]] = [[] for _ in drawers]
    index_type = np.int32 if n < 2 ** 31 else np.int64  # int32 halves the memory the gathers stream through
    for start in range(0, n_resamples, size):
        index = rng.integers(0, n, size=(min(size, n_resamples - start), n), dtype=index_type)
        for part, draw in zip(parts, drawers, strict=True):
            part.append(draw(index))
    return [{name: np.concatenate([p[name] for p in part]) for name in part[0]} for part in parts]
