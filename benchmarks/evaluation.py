"""Are the statistics right, and are they cheap? Simulations with real (cheap) scikit-learn models on generated data,
and the bootstrap's time on 100,000 test rows.

`python -m benchmarks.evaluation [--comparisons 200] [--coverage 1000]` prints one JSON document:
- false_alarms: two identical configurations that differ only in their seed, compared as groups (repeated 5-fold)
  on a fresh sample each time: the share of comparisons called "clearly_better" (should be <= 5-7%); and the same
  two seeds as single runs on one test split (paired bootstrap and McNemar: that the two trained models differ);
- planted_gap: a linear model against a non-linear one on a non-linear target (a gap of about 14 points): the share
  found ("clearly_better" for the non-linear model; should be >= 90%); small_gap: the same for a gap of about 4;
- coverage: how often the 95% bootstrap interval of a fixed classifier's test accuracy (and AUC) holds the true
  value, known from a million rows (should be 90-98%);
- bootstrap_seconds: score_intervals on 100,000 test rows, per task.
tests/test_evaluation_simulation.py runs the same functions with fewer repetitions.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.tree import DecisionTreeClassifier

from workbench.evaluation import (
    GroupScores,
    RunPredictions,
    Verdict,
    compare_groups,
    compare_runs,
    fold_assignments,
    score_intervals,
)

N_FEATURES = 5


def linear_population(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A noisy linear boundary: no model is truly better than another of the same kind."""
    x = rng.normal(size=(n, N_FEATURES))
    logit = x @ np.linspace(1.5, 0.3, N_FEATURES)
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def bent_population(n: int, rng: np.random.Generator, bend: float) -> tuple[np.ndarray, np.ndarray]:
    """A boundary bent by a square in the second feature. Trained on 400 rows, a linear model scores about 0.66 and
    a depth-4 tree about 0.81 at bend 2.5; at bend 1.2, 0.69 and 0.73."""
    x = rng.normal(size=(n, N_FEATURES))
    logit = 1.5 * x[:, 0] + bend * (x[:, 1] ** 2 - 1)
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def group_scores(make_model, x: np.ndarray, y: np.ndarray, assignments, name: str) -> GroupScores:
    scores = {}
    for member, train, test in assignments.splits():
        model = make_model().fit(x[train], y[train])
        scores[member] = float(np.mean(model.predict(x[test]) == y[test]))
    return GroupScores(name, name, "accuracy", assignments.key, scores, assignments.test_share())


def false_alarms(comparisons: int, rows: int = 300, repeats: int = 10, seed: int = 0) -> dict:
    """SGD logistic regression against itself with another shuffling seed: verdicts over fresh samples."""
    rng = np.random.default_rng(seed)
    verdicts: Counter[str] = Counter()
    for i in range(comparisons):
        x, y = linear_population(rows, rng)
        folds = fold_assignments(y, repeats, seed=i, task="binary")
        a = group_scores(lambda s=i: SGDClassifier(loss="log_loss", max_iter=5, tol=None, random_state=s),
                         x, y, folds, "seed A")
        b = group_scores(lambda s=i: SGDClassifier(loss="log_loss", max_iter=5, tol=None, random_state=s + 10_000),
                         x, y, folds, "seed B")
        verdicts[compare_groups(a, b).verdict] += 1
    return {"comparisons": comparisons, "rows": rows, "repeats": repeats,
            "clearly_better_rate": verdicts[Verdict.CLEARLY_BETTER] / comparisons,
            "verdicts": {str(v): verdicts[v] for v in Verdict}}


def single_run_false_alarms(comparisons: int, rows: int = 2000, seed: int = 4) -> dict:
    """The same two seeds as single runs on one shared test split (15% of rows): paired bootstrap and McNemar."""
    rng = np.random.default_rng(seed)
    verdicts: Counter[str] = Counter()
    for i in range(comparisons):
        x, y = linear_population(rows, rng)
        train, test = fold_assignments(y, 1, seed=i, task="binary", scheme="repeated_holdout").split(0, 0)
        runs = []
        for name, model_seed in (("seed A", i), ("seed B", i + 10_000)):
            model = SGDClassifier(loss="log_loss", max_iter=5, tol=None, random_state=model_seed)
            proba = model.fit(x[train], y[train]).predict_proba(x[test])
            runs.append(RunPredictions(name, name, "binary", "test", y[test], proba))
        verdicts[compare_runs(*runs, "accuracy", seed=i).verdict] += 1
    return {"comparisons": comparisons, "rows": rows, "clearly_better_rate": verdicts[Verdict.CLEARLY_BETTER] / comparisons,
            "verdicts": {str(v): verdicts[v] for v in Verdict}}


def planted_gap(comparisons: int, rows: int = 500, repeats: int = 10, bend: float = 2.5, seed: int = 1) -> dict:
    """Logistic regression (linear) against a depth-4 decision tree (non-linear) on the bent boundary."""
    rng = np.random.default_rng(seed)
    verdicts: Counter[str] = Counter()
    found = 0
    for i in range(comparisons):
        x, y = bent_population(rows, rng, bend)
        folds = fold_assignments(y, repeats, seed=i, task="binary")
        linear = group_scores(LogisticRegression, x, y, folds, "linear")
        tree = group_scores(lambda s=i: DecisionTreeClassifier(max_depth=4, random_state=s), x, y, folds, "tree")
        comparison = compare_groups(linear, tree)
        verdicts[comparison.verdict] += 1
        found += comparison.verdict == Verdict.CLEARLY_BETTER and comparison.a == "tree"
    return {"comparisons": comparisons, "rows": rows, "repeats": repeats, "bend": bend, "found_rate": found / comparisons,
            "verdicts": {str(v): verdicts[v] for v in Verdict}}


def coverage(trials: int, rows: int = 500, seed: int = 2) -> dict:
    """A fixed classifier (the true boundary's sign, with its own probability) on fresh test samples: how often the
    95% interval holds its true accuracy and AUC, measured on a million rows."""
    rng = np.random.default_rng(seed)
    weights = np.linspace(1.5, 0.3, N_FEATURES)

    def sample(n):
        x, y = linear_population(n, rng)
        p = 1 / (1 + np.exp(-(x @ weights) * 0.7))  # a calibrated-looking but imperfect probability
        return y, np.stack([1 - p, p], axis=1)

    y_big, p_big = sample(1_000_000)
    from workbench.metrics import classification_metrics
    truth = classification_metrics(y_big, p_big, 2)
    held = Counter()
    for i in range(trials):
        y, proba = sample(rows)
        intervals = score_intervals("binary", y, proba, seed=i)
        for metric in ("accuracy", "roc_auc", "log_loss"):
            held[metric] += intervals[metric].low <= truth[metric] <= intervals[metric].high
    return {"trials": trials, "rows": rows, **{f"{m}_true": round(truth[m], 4) for m in ("accuracy", "roc_auc")},
            **{f"{m}_coverage": held[m] / trials for m in ("accuracy", "roc_auc", "log_loss")}}


def bootstrap_seconds(rows: int = 100_000, seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for task, k in (("binary", 2), ("multiclass", 4)):
        y = rng.integers(0, k, rows)
        logits = rng.normal(size=(rows, k))
        logits[np.arange(rows), y] += 1
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        start = time.perf_counter()
        score_intervals(task, y, proba)
        out[task] = round(time.perf_counter() - start, 3)
    y = rng.normal(size=rows)
    start = time.perf_counter()
    score_intervals("regression", y, y + rng.normal(size=rows))
    out["regression"] = round(time.perf_counter() - start, 3)
    return {"rows": rows, **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=200)
    parser.add_argument("--coverage", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    result = {"false_alarms": false_alarms(args.comparisons, repeats=args.repeats),
              "single_run_false_alarms": single_run_false_alarms(args.comparisons),
              "planted_gap": planted_gap(args.comparisons, repeats=args.repeats),
              # A gap of about 4 points: how often the corrected test finds a small real gap.
              "small_gap": planted_gap(args.comparisons, rows=1000, repeats=args.repeats, bend=1.2),
              "coverage": coverage(args.coverage), "bootstrap_seconds": bootstrap_seconds()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
