"""The statistics are right: simulations with real, cheap scikit-learn models on generated data (the functions of
benchmarks/evaluation.py, with fewer repetitions than its full run; the full figures are quoted in the report)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from benchmarks.evaluation import coverage, false_alarms, planted_gap, single_run_false_alarms
from workbench.evaluation import RunPredictions, Verdict, compare_runs


def test_seed_only_differences_are_rarely_called_clearly_better():
    result = false_alarms(comparisons=100)
    assert result["clearly_better_rate"] <= 0.07, result


def test_a_planted_gap_between_a_linear_and_a_nonlinear_model_is_found():
    result = planted_gap(comparisons=40)
    assert result["found_rate"] >= 0.9, result


def test_bootstrap_intervals_cover_the_true_accuracy_and_auc():
    result = coverage(trials=300)
    for metric in ("accuracy", "roc_auc", "log_loss"):
        assert 0.90 <= result[f"{metric}_coverage"] <= 0.98, result


def test_mcnemar_and_the_paired_bootstrap_hold_their_level_on_two_equally_good_runs():
    """Two runs whose right and wrong rows are independent draws of the same accuracy, on the same test rows: the
    exact McNemar p-value and the bootstrap interval reject "no difference" in about 5% of cases, not more."""
    rng = np.random.default_rng(0)
    rejected = Counter()
    trials = 200
    for i in range(trials):
        y = rng.integers(0, 2, 400)
        runs = []
        for name in ("A", "B"):
            right = rng.random(400) < 0.8
            p = np.where(right == (y == 1), 0.7, 0.3)
            runs.append(RunPredictions(name, name, "binary", "t", y, np.stack([1 - p, p], axis=1)))
        result = compare_runs(*runs, "accuracy", n_resamples=200, seed=i)
        rejected["mcnemar"] += result.p_value < 0.05
        rejected["interval"] += not result.ci_low <= 0 <= result.ci_high
        assert result.verdict != Verdict.CLEARLY_BETTER  # single runs never are
    assert rejected["mcnemar"] / trials <= 0.07 and rejected["interval"] / trials <= 0.08, rejected


def test_single_runs_of_two_seeds_are_never_clearly_apart():
    result = single_run_false_alarms(comparisons=30)
    assert result["clearly_better_rate"] == 0 and result["verdicts"]["probably_better"] > 0, result
