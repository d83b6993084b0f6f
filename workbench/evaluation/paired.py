"""Is A better than B: two groups on the same folds (corrected resampled t-test), or two single runs on the same test
rows (paired bootstrap, and exact McNemar for accuracy). Each returns a `Comparison` record told from the side of the
item that is ahead (see workbench.evaluation.verdicts).

The corrected t-test (Nadeau and Bengio 2003, as in scikit-learn's example plot_grid_search_stats.py): members'
training sets overlap, so their per-member differences are correlated and the plain variance / J understates the
noise; the corrected variance is s² (1/J + n_test/n_train). The probability that A is really better is the mass above
0 of the t posterior St(J - 1, mean, corrected sd) (Benavoli et al. 2017).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from workbench.errors import UserError
from workbench.evaluation import bootstrap
from workbench.evaluation.verdicts import (
    PROBABLY,
    SIGNIFICANCE,
    Verdict,
    Wording,
    decide,
    equivalence_band,
    repeats_to_separate,
    sentence,
)
from workbench.tasks import Task, higher_is_better


class NotComparable(UserError):
    """Two items that were not tested on the same rows; the message says why."""


@dataclass(frozen=True)
class GroupScores:
    """One group's (or run's) score per member, keyed by the member's test rows (FoldAssignments.member_name)."""

    id: str
    name: str
    metric: str
    scheme_key: str  # FoldAssignments.key: equal keys mean the same rows in the same folds
    scores: dict[str, float]
    test_share: float  # n_test / n_train of a member (FoldAssignments.test_share())

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.scores.values())))


@dataclass(frozen=True)
class RunPredictions:
    """One run's predictions on its test rows: class probabilities (n, k) or values (n,)."""

    id: str
    name: str
    task: Task
    test_key: str  # the test rows' fingerprint: equal keys mean the same rows in the same order
    y: np.ndarray = field(repr=False)
    predictions: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Comparison:
    """a is the item ahead. difference = value(a) - value(b) in the metric's units, with its 95% interval."""

    a: str
    b: str
    a_name: str
    b_name: str
    metric: str
    higher_is_better: bool
    method: str  # "corrected_t" (groups), "paired_bootstrap" or "mcnemar" (accuracy of single runs)
    n: int  # paired members, or test rows
    value_a: float
    value_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    prob_a_better: float
    band: float
    verdict: Verdict
    sentence: str

    def to_dict(self) -> dict:
        """Plain JSON: an interval that could not be measured (one repeat) has None for its ends."""
        out = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in asdict(self).items()}
        out["verdict"] = str(self.verdict)
        return out


def compare_groups(first: GroupScores, second: GroupScores, band: float | None = None) -> Comparison:
    """The corrected resampled t-test on the per-member differences of two groups tested on the same folds."""
    _same_metric(first.metric, second.metric)
    if first.scheme_key != second.scheme_key:
        raise NotComparable(f"{first.name} and {second.name} were tested on different rows (different repeat "
                            "schemes or data), so their scores cannot be paired.")
    shared = sorted(set(first.scores) & set(second.scores))
    if not shared:
        raise NotComparable(f"{first.name} and {second.name} have no finished repeat on the same rows.")
    metric = first.metric
    sign = 1.0 if higher_is_better(metric) else -1.0
    a_values = np.array([first.scores[m] for m in shared], dtype="float64")
    b_values = np.array([second.scores[m] for m in shared], dtype="float64")
    if sign * (a_values.mean() - b_values.mean()) < 0:
        first, second, a_values, b_values = second, first, b_values, a_values
    differences = a_values - b_values
    j = len(differences)
    mean = float(differences.mean())
    test_share = first.test_share
    sd = float(differences.std(ddof=1)) if j > 1 else math.inf
    scale = sd * math.sqrt(1 / j + test_share) if j > 1 else math.inf
    band_width = equivalence_band(metric, float(a_values.mean()), float(b_values.mean()), band)
    if j < 2:
        low, high, p_value, prob = -math.inf, math.inf, 1.0, 0.5
    elif scale == 0:  # identical spread-free differences: the gap is exact
        low = high = mean
        p_value, prob = (1.0, 0.5) if mean == 0 else (0.0, 1.0)
    else:
        posterior = stats.t(j - 1, loc=mean, scale=scale)
        low, high = posterior.interval(1 - SIGNIFICANCE)
        p_value = float(2 * stats.t.sf(abs(mean) / scale, j - 1))
        prob = float(posterior.sf(0) if sign > 0 else posterior.cdf(0))
    gains = sorted((sign * low, sign * high))
    verdict = decide(*gains, prob, band_width, measurable=j > 1)
    wording = Wording(first.name, second.name, metric, sign * mean, gains[0], gains[1],
                      (high - low) / 2, prob, band_width, True, repeats_to_separate(mean, sd, test_share, j))
    return Comparison(first.id, second.id, first.name, second.name, metric, sign > 0, "corrected_t", j,
                      float(a_values.mean()), float(b_values.mean()), mean, float(low), float(high), float(p_value),
                      prob, band_width, verdict, sentence(verdict, wording))


def compare_runs(first: RunPredictions, second: RunPredictions, metric: str, band: float | None = None, *,
                 n_resamples: int = bootstrap.N_RESAMPLES, seed: int = 0) -> Comparison:
    """Two single runs on the same test rows: a paired bootstrap of the difference; for accuracy the p-value is
    exact McNemar's (a binomial test on the rows exactly one of the two gets right)."""
    if first.test_key != second.test_key or len(first.y) != len(second.y) or not np.array_equal(first.y, second.y):
        raise NotComparable(f"{first.name} and {second.name} were tested on different rows (different split "
                            "settings or data), so their scores cannot be paired.")
    resamples = bootstrap.resample_metrics(first.task, first.y, [first.predictions, second.predictions],
                                           n_resamples=n_resamples, seed=seed)
    if metric not in resamples.points[0]:
        raise UserError(f"'{metric}' is not a score of these runs.")
    sign = 1.0 if higher_is_better(metric) else -1.0
    value_a, value_b = resamples.points[0][metric], resamples.points[1][metric]
    draws_a, draws_b = resamples.draws[0][metric], resamples.draws[1][metric]
    if sign * (value_a - value_b) < 0:
        first, second, value_a, value_b, draws_a, draws_b = second, first, value_b, value_a, draws_b, draws_a
    difference = value_a - value_b
    draws = draws_a - draws_b
    draws = draws[np.isfinite(draws)]
    interval = bootstrap.percentile_interval(difference, draws)
    gains = sign * draws
    prob = float(np.mean(gains > 0) + np.mean(gains == 0) / 2) if len(draws) else 0.5
    method = "paired_bootstrap"
    p_value = float(min(1.0, 2 * min(np.mean(gains <= 0), np.mean(gains >= 0)))) if len(draws) else 1.0
    if metric == "accuracy" and first.task != Task.REGRESSION:
        method, p_value = "mcnemar", _mcnemar(first.y, first.predictions, second.predictions)
    band_width = equivalence_band(metric, value_a, value_b, band)
    low, high = sorted((sign * interval.low, sign * interval.high))
    verdict = decide(low, high, prob, band_width)
    clear_on_these_rows = verdict == Verdict.CLEARLY_BETTER and p_value < SIGNIFICANCE
    if verdict == Verdict.CLEARLY_BETTER:
        # Single runs measure which rows were tested, not what another seed or split would do: two seeds of one
        # configuration were "clearly" apart in a third of simulated comparisons (benchmarks/evaluation.py), so
        # single runs are at most "probably better"; repeats can say more.
        verdict = Verdict.PROBABLY_BETTER if clear_on_these_rows or prob >= PROBABLY else Verdict.NO_CLEAR_WINNER
    wording = Wording(first.name, second.name, metric, sign * difference, low, high,
                      (interval.high - interval.low) / 2, prob, band_width, False, repeats_to_separate(0, math.inf, 0, 1),
                      clear_on_these_rows)
    return Comparison(first.id, second.id, first.name, second.name, metric, sign > 0, method, len(first.y),
                      value_a, value_b, difference, interval.low, interval.high, p_value, prob, band_width, verdict,
                      sentence(verdict, wording))


def _mcnemar(y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray) -> float:
    right_a = np.asarray(proba_a).argmax(axis=1) == y
    right_b = np.asarray(proba_b).argmax(axis=1) == y
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def group_interval(scores: GroupScores) -> bootstrap.Interval:
    """A group's mean over its members with the corrected t interval (the members' training sets overlap)."""
    values = np.array(list(scores.scores.values()), dtype="float64")
    mean = float(values.mean())
    if len(values) < 2:
        return bootstrap.Interval(mean, mean, mean)
    scale = float(values.std(ddof=1)) * math.sqrt(1 / len(values) + scores.test_share)
    if scale == 0:
        return bootstrap.Interval(mean, mean, mean)
    low, high = stats.t(len(values) - 1, loc=mean, scale=scale).interval(1 - SIGNIFICANCE)
    return bootstrap.Interval(mean, float(low), float(high))


def _same_metric(a: str, b: str) -> None:
    if a != b:
        raise ValueError(f"scores of different metrics: {a} and {b}")
