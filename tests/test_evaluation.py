"""workbench.evaluation: intervals agree with workbench.metrics and hold their points, fold assignments are fixed and
complete, the corrected t-test is the published formula, verdicts and sentences, Holm ties, the leaderboard."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from workbench import metrics
from workbench.errors import UserError
from workbench.evaluation import (
    Entry,
    GroupScores,
    NotComparable,
    RunPredictions,
    Scheme,
    Verdict,
    compare_groups,
    compare_runs,
    fold_assignments,
    leaderboard,
    rank,
    score_intervals,
)
from workbench.evaluation.folds import TRAINING, FoldAssignments, assignment_seed
from workbench.evaluation.ranking import holm
from workbench.evaluation.verdicts import repeats_to_separate

FAST = settings(max_examples=25, deadline=None, derandomize=True)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # scikit-learn on one-class samples


def probabilities(rng: np.random.Generator, n: int, k: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    if ties:  # coarse scores: many rows share a probability, as trees and small tables give
        logits = logits.round(0)
    proba = np.exp(logits)
    return y, proba / proba.sum(axis=1, keepdims=True)


# -- intervals --------------------------------------------------------------------------------------------------------

@FAST
@given(n=st.integers(1, 300), k=st.integers(2, 5), seed=st.integers(0, 2 ** 16), ties=st.booleans())
def test_points_are_workbench_metrics_and_sit_inside_their_intervals(n, k, seed, ties):
    y, proba = probabilities(np.random.default_rng(seed), n, k, ties)
    intervals = score_intervals("binary" if k == 2 else "multiclass", y, proba, n_resamples=200, seed=seed)
    expected = metrics.classification_metrics(y, proba, k)
    assert set(intervals) == set(expected)
    for name, value in expected.items():
        assert intervals[name].point == pytest.approx(value, abs=1e-9), name
        assert intervals[name].low <= intervals[name].point <= intervals[name].high


@FAST
@given(values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=200),
       noise=st.floats(0, 10), seed=st.integers(0, 2 ** 16))
def test_regression_points_match_workbench_metrics_on_messy_values(values, noise, seed):
    y = np.array(values)
    predicted = y + np.random.default_rng(seed).normal(scale=noise, size=len(y))
    intervals = score_intervals("regression", y, predicted, n_resamples=200, seed=seed)
    expected = metrics.regression_metrics(y, predicted)
    for name, value in expected.items():
        assert intervals[name].point == pytest.approx(value, rel=1e-6, abs=1e-6), name
        assert intervals[name].low <= intervals[name].point <= intervals[name].high


def test_intervals_are_seeded_and_shrink_with_more_rows():
    y, proba = probabilities(np.random.default_rng(0), 400, 3)
    assert score_intervals("multiclass", y, proba, seed=5) == score_intervals("multiclass", y, proba, seed=5)
    assert score_intervals("multiclass", y, proba, seed=5) != score_intervals("multiclass", y, proba, seed=6)
    y_big, proba_big = probabilities(np.random.default_rng(0), 40_000, 3)
    small, big = score_intervals("multiclass", y, proba), score_intervals("multiclass", y_big, proba_big)
    for name in ("accuracy", "f1", "log_loss", "roc_auc"):
        ratio = (small[name].high - small[name].low) / (big[name].high - big[name].low)
        assert 6 < ratio < 14, (name, ratio)  # width goes as 1/sqrt(rows): sqrt(100) = 10


def test_accuracy_interval_matches_the_binomial_width():
    """Accuracy over n rows is a binomial share: its 95% interval is about ±1.96 sqrt(p(1-p)/n)."""
    rng = np.random.default_rng(1)
    n = 2000
    y, proba = probabilities(rng, n, 2)
    interval = score_intervals("binary", y, proba)["accuracy"]
    p = interval.point
    assert (interval.high - interval.low) / 2 == pytest.approx(1.96 * math.sqrt(p * (1 - p) / n), rel=0.1)


def test_auc_is_left_out_where_workbench_metrics_leaves_it_out():
    y = np.array([0, 0, 1, 1, 0])
    proba = np.tile([0.2, 0.5, 0.3], (5, 1))  # class 2 never occurs: no one-vs-rest AUC for it
    assert "roc_auc" not in score_intervals("multiclass", y, proba, n_resamples=50)
    assert "roc_auc" not in score_intervals("binary", np.zeros(4, int), np.tile([0.6, 0.4], (4, 1)), n_resamples=50)


# -- fold assignments -------------------------------------------------------------------------------------------------

@FAST
@given(n=st.integers(10, 400), repeats=st.integers(1, 12), seed=st.integers(0, 1000), k=st.integers(2, 4))
def test_kfold_tests_every_row_once_per_round_and_stratifies(n, repeats, seed, k):
    labels = np.array(["é", "b", "ζ", "🙂"])[np.random.default_rng(seed).integers(0, k, n)]
    folds = fold_assignments(labels, repeats, seed, "multiclass")
    assert folds.scheme == Scheme.KFOLD and folds.n_rounds == math.ceil(repeats / 5)
    assert len(folds.members) >= repeats
    for r in range(folds.n_rounds):
        tested = np.concatenate([folds.split(r, f)[1] for f in range(folds.n_folds)])
        assert sorted(tested) == list(range(n))
    for _, train, test in folds.splits():
        assert not set(train) & set(test) and len(train) + len(test) == n
    counts = {c: int(np.sum(labels == c)) for c in set(labels)}
    if min(counts.values()) >= 5:  # stratified: each fold holds each class in proportion, within one row
        for _, _, test in folds.splits():
            for c, count in counts.items():
                assert abs(np.sum(labels[test] == c) - count * len(test) / n) <= 1.01


def test_assignments_are_fixed_by_target_scheme_and_seed_and_survive_json():
    y = np.random.default_rng(0).normal(size=300)
    first, again = fold_assignments(y, 5, 11, "regression"), fold_assignments(y, 5, 11, "regression")
    assert first == again
    assert FoldAssignments.from_dict(json.loads(json.dumps(first.to_dict()))) == first
    assert fold_assignments(y, 5, 12, "regression").key != first.key
    assert fold_assignments(y + 1, 5, 11, "regression").key != first.key
    assert assignment_seed("d1", "price") == assignment_seed("d1", "price") != assignment_seed("d1", "prices")
    assert 0 <= assignment_seed("d1", "price") < 2 ** 32
    # Regression strata are quantile bins: every fold gets low and high targets alike.
    for _, _, test in first.splits():
        assert abs(np.median(y[test]) - np.median(y)) < 0.3


def test_large_tables_get_repeated_holdout_with_a_different_split_each_time():
    y = np.random.default_rng(0).integers(0, 2, 25_000)
    folds = fold_assignments(y, 3, 0, "binary")
    assert folds.scheme == Scheme.HOLDOUT and folds.members == [(0, 0), (1, 0), (2, 0)]
    tests = [set(folds.split(r, 0)[1]) for r in range(3)]
    assert all(len(t) == pytest.approx(0.15 * 25_000, abs=1) for t in tests)
    assert tests[0] != tests[1] and np.asarray(folds.folds).min() == TRAINING
    assert folds.test_share() == pytest.approx(0.15 / 0.85, rel=1e-3)


def test_assignments_refuse_too_few_rows_or_repeats_in_a_sentence():
    with pytest.raises(UserError, match="at least 10 rows"):
        fold_assignments([0, 1, 0, 1], 5, 0, "binary")
    with pytest.raises(UserError, match="at least 1"):
        fold_assignments(np.arange(50) % 2, 0, 0, "binary")


# -- two groups: the corrected resampled t-test -----------------------------------------------------------------------

def group(name: str, scores, key: str = "k1", metric: str = "accuracy", share: float = 0.25) -> GroupScores:
    return GroupScores(name, name, metric, key, {f"r{i // 5}f{i % 5}": float(s) for i, s in enumerate(scores)}, share)


def test_corrected_t_is_the_nadeau_bengio_formula():
    rng = np.random.default_rng(3)
    a, b = 0.80 + rng.normal(0, 0.02, 10), 0.78 + rng.normal(0, 0.02, 10)
    result = compare_groups(group("A", a), group("B", b))
    d = (a - b) if result.a == "A" else (b - a)
    scale = d.std(ddof=1) * math.sqrt(1 / 10 + 0.25)
    assert result.difference == pytest.approx(d.mean())
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(d.mean()) / scale, 9))
    assert (result.ci_low, result.ci_high) == pytest.approx(stats.t.interval(0.95, 9, d.mean(), scale))
    # Without the correction the interval would be much narrower: sqrt(1/10) vs sqrt(1/10 + 1/4).
    assert (result.ci_high - result.ci_low) / 2 > stats.t.ppf(0.975, 9) * d.std(ddof=1) * math.sqrt(0.1) * 1.8


@pytest.mark.parametrize(("gap", "spread", "verdict"), [
    (0.05, 0.01, Verdict.CLEARLY_BETTER),
    (0.012, 0.015, Verdict.PROBABLY_BETTER),
    (0.004, 0.03, Verdict.NO_CLEAR_WINNER),
    (0.001, 0.002, Verdict.PRACTICALLY_SAME),
])
def test_each_verdict_and_its_sentence(gap, spread, verdict):
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 1, 10)
    noise = (noise - noise.mean()) / noise.std(ddof=1)
    base = 0.80 + rng.normal(0, 0.05, 10)
    result = compare_groups(group("The MLP", base + gap + spread * noise), group("The transformer", base))
    assert result.verdict == verdict
    assert result.a_name == "The MLP" and str(verdict) in result.to_dict()["verdict"]
    text = result.sentence
    if verdict == Verdict.CLEARLY_BETTER:
        assert text.startswith("The MLP is better than The transformer by 5.0 points (likely between")
        assert "very unlikely to be luck" in text
    elif verdict == Verdict.NO_CLEAR_WINNER:
        assert text.startswith("No clear winner: the 0.4-point gap is smaller than the run-to-run noise of about")
    elif verdict == Verdict.PRACTICALLY_SAME:
        assert "practically the same" in text and "±1.0 points" in text
    else:
        assert "is probably better than" in text and "luck cannot be ruled out" in text


def test_the_one_ahead_is_a_whichever_order_and_lower_is_better_metrics():
    worse, better = group("slow", [1.2, 1.3, 1.25, 1.22, 1.28], metric="rmse"), \
        group("fast", [1.0, 1.05, 1.02, 0.99, 1.04], metric="rmse")
    for first, second in ((worse, better), (better, worse)):
        result = compare_groups(first, second)
        assert result.a == "fast" and result.difference < 0 and result.prob_a_better > 0.9
        assert not result.higher_is_better and result.verdict == Verdict.CLEARLY_BETTER


def test_identical_scores_are_practically_the_same_and_one_member_is_no_clear_winner():
    same = compare_groups(group("A", [0.8] * 5), group("B", [0.8] * 5))
    assert same.verdict == Verdict.PRACTICALLY_SAME and same.p_value == 1.0
    one = compare_groups(group("A", [0.9]), group("B", [0.7]))
    assert one.verdict == Verdict.NO_CLEAR_WINNER and "repeat" in one.sentence
    assert json.loads(json.dumps(one.to_dict(), allow_nan=False))["ci_low"] is None


def test_groups_on_different_rows_are_refused_with_a_reason():
    with pytest.raises(NotComparable, match="different rows"):
        compare_groups(group("A", [0.8] * 5, key="k1"), group("B", [0.7] * 5, key="k2"))


def test_repeats_suggested_grow_with_noise_and_give_up_when_hopeless():
    assert repeats_to_separate(0.03, 0.02, 0.25, 5) == 10
    assert repeats_to_separate(0.03, 0.025, 0.25, 5) == 20
    # The n_test/n_train term does not shrink with repeats: a gap below the members' spread never clears it.
    assert repeats_to_separate(0.02, 0.02, 0.25, 5) is None
    assert repeats_to_separate(0.02, math.inf, 0.25, 1) == 5


# -- two single runs: paired bootstrap and McNemar --------------------------------------------------------------------

def run(name: str, y, proba, key: str = "t1", task: str = "binary") -> RunPredictions:
    return RunPredictions(name, name, task, key, np.asarray(y), np.asarray(proba))


def test_paired_bootstrap_sees_a_gap_the_separate_intervals_cannot():
    """Both runs share the hard rows, so the paired difference is far less noisy than either score."""
    rng = np.random.default_rng(0)
    n = 1000
    y = rng.integers(0, 2, n)
    hard = rng.random(n) < 0.3
    right_a = ~hard | (rng.random(n) < 0.5)
    right_b = right_a & (rng.random(n) > 0.04)  # B misses 4% more rows than A, and no others
    proba_a = np.where(right_a == (y == 1), 0.8, 0.2)
    proba_b = np.where(right_b == (y == 1), 0.8, 0.2)
    result = compare_runs(run("A", y, np.stack([1 - proba_a, proba_a], 1)),
                          run("B", y, np.stack([1 - proba_b, proba_b], 1)), "accuracy")
    alone_a = score_intervals("binary", y, np.stack([1 - proba_a, proba_a], 1))["accuracy"]
    assert result.method == "mcnemar" and result.a == "A" and result.verdict == Verdict.PROBABLY_BETTER
    only_a = int(np.sum(right_a & ~right_b))
    assert result.p_value == pytest.approx(stats.binomtest(only_a, only_a, 0.5).pvalue)
    # Unpaired, the gap's interval would be sqrt(2) times as wide as one score's; paired it is narrower than one.
    assert result.ci_high - result.ci_low < 0.7 * (alone_a.high - alone_a.low)
    assert result.sentence.startswith("A is probably better than B: ahead by 3.3 points on these test rows (likely")
    assert "single runs cannot show that another seed would not reverse it; repeat both with 5 repeats" in \
        result.sentence


def test_identical_runs_are_practically_the_same_for_every_metric():
    y, proba = probabilities(np.random.default_rng(2), 500, 3)
    for metric in ("accuracy", "f1", "log_loss", "roc_auc"):
        result = compare_runs(run("A", y, proba, task="multiclass"), run("B", y, proba, task="multiclass"), metric)
        assert result.difference == 0 and result.verdict == Verdict.PRACTICALLY_SAME, metric


def test_regression_runs_compare_on_rmse_with_a_relative_band():
    rng = np.random.default_rng(4)
    y = rng.normal(100, 10, 2000)
    good, bad = y + rng.normal(0, 1, 2000), y + rng.normal(0, 2, 2000)
    result = compare_runs(run("bad", y, bad, task="regression"), run("good", y, good, task="regression"), "rmse")
    assert result.a == "good" and result.verdict == Verdict.PROBABLY_BETTER and result.method == "paired_bootstrap"
    assert result.ci_low < result.ci_high < 0 and result.p_value < 0.001
    assert result.band == pytest.approx(0.01 * result.value_a)


def test_runs_on_different_test_rows_are_refused():
    y, proba = probabilities(np.random.default_rng(2), 50, 2)
    with pytest.raises(NotComparable, match="different rows"):
        compare_runs(run("A", y, proba, key="t1"), run("B", y, proba, key="t2"), "accuracy")
    with pytest.raises(NotComparable):
        compare_runs(run("A", y, proba), run("B", y[::-1], proba), "accuracy")


# -- more than two ----------------------------------------------------------------------------------------------------

def test_holm_matches_the_step_down_definition():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_rank_marks_ties_with_the_best_and_refuses_other_rows():
    rng = np.random.default_rng(5)
    base = 0.8 + rng.normal(0, 0.03, 10)

    def jitter(gap):
        return base + gap + rng.normal(0, 0.01, 10)

    items = [group("mlp", jitter(0.05)), group("transformer", jitter(0.048)), group("linear", jitter(0.0)),
             group("forest", jitter(0.049)), group("elsewhere", jitter(0.2), key="k2")]
    result = rank(items, "accuracy")
    assert [i.id for i in result.items][-1] == "linear" and set(result.tied_with_best) == {"mlp", "transformer",
                                                                                              "forest"}
    assert result.refused.keys() == {"elsewhere"} and "different rows" in result.refused["elsewhere"]
    assert result.sentence.startswith("No single winner") and "1 left out" in result.sentence
    assert [i.rank for i in result.items] == [1, 2, 3, 4] and result.items[0].p_value is None
    assert json.dumps(result.to_dict())


def test_rank_names_a_single_winner_only_when_the_rest_are_clearly_worse():
    rng = np.random.default_rng(6)
    base = 0.8 + rng.normal(0, 0.03, 10)
    items = [group(n, base + gap + rng.normal(0, 0.005, 10)) for n, gap in (("a", 0.1), ("b", 0.0), ("c", -0.02))]
    result = rank(items, "accuracy")
    assert result.tied_with_best == ["a"] and result.sentence.startswith("a is the best")


@FAST
@given(scores=st.lists(st.floats(0, 1), min_size=2, max_size=10), n_items=st.integers(2, 6))
def test_items_with_the_same_scores_are_all_tied_and_none_is_crowned(scores, n_items):
    result = rank([group(f"model {i}", scores) for i in range(n_items)], "accuracy")
    assert len(result.tied_with_best) == n_items and result.sentence.startswith("No single winner")
    assert all(p.verdict in (Verdict.PRACTICALLY_SAME, Verdict.NO_CLEAR_WINNER) for p in result.pairs)


def test_rank_single_runs_by_paired_bootstrap():
    y, proba = probabilities(np.random.default_rng(8), 600, 2)
    blurred = 0.5 + (proba - 0.5) * 0.2  # the same ordering, so the same accuracy and AUC
    result = rank([run("A", y, proba), run("B", y, blurred)], "accuracy", n_resamples=300)
    assert result.tied_with_best == [result.items[0].id, result.items[1].id]


# -- leaderboard ------------------------------------------------------------------------------------------------------

def entry(id_, model, mean, kind="group", scores=None, key="k1", dataset="d1", target="y", cost=10.0) -> Entry:
    return Entry(id_, kind, model, f"{model} {id_}", dataset, target, "accuracy", mean, mean - 0.02, mean + 0.02,
                 cost, key if scores is not None else None, scores, 0.25)


def test_leaderboard_keeps_the_best_of_each_model_with_ties_and_cost():
    rng = np.random.default_rng(9)
    base = 0.8 + rng.normal(0, 0.03, 10)

    def scores(gap, spread=0.005):
        values = base + gap + rng.normal(0, spread, 10)
        return {f"r{i // 5}f{i % 5}": float(v) for i, v in enumerate(values)}, float(values.mean())

    mlp, mlp_mean = scores(0.05)
    mlp_old, mlp_old_mean = scores(0.0)
    tf, tf_mean = scores(0.049)
    lin, lin_mean = scores(-0.05)
    rows = leaderboard([
        entry("g1", "mlp", mlp_mean, scores=mlp, cost=30), entry("g2", "mlp", mlp_old_mean, scores=mlp_old),
        entry("g3", "transformer", tf_mean, scores=tf, cost=90), entry("g4", "linear", lin_mean, scores=lin, cost=2),
        entry("r1", "forest", 0.81, kind="run"), entry("x", "mlp", 0.99, scores=mlp, dataset="other"),
    ], "d1", "y", "accuracy")
    assert [r.model for r in rows] == ["mlp", "transformer", "forest", "linear"]
    assert rows[0].id == "g1" and rows[0].cost_seconds == 30 and rows[0].tied_with_best
    assert rows[1].tied_with_best is True and rows[3].tied_with_best is False
    assert rows[2].tied_with_best is None and "single run" in rows[2].note  # it cannot be paired with the folds
    assert rows[0].note == rows[1].note == ""
