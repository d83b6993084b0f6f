"""Run groups and single runs as things to compare: a group's mean, spread and interval per metric, "is A better
than B" for two items, a ranking with "tied with best" for more, and the leaderboard of a dataset and target.

Pure functions over store dataclasses, plus `load_items`, which reads the runs, groups and test predictions that a
comparison needs. The statistics are workbench.evaluation's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.compare import MetricsComparison, compare_metrics
from workbench.errors import UserError
from workbench.evaluation import (
    Entry,
    GroupScores,
    LeaderboardRow,
    NotComparable,
    Ranking,
    RunPredictions,
    compare_groups,
    compare_runs,
    group_interval,
    leaderboard,
    rank,
)
from workbench.store import Run, RunGroup, RunStatus, Store
from workbench.tasks import Task, baseline_name, higher_is_better, primary_metric

# The values a metric can take: a group's t interval (symmetric around the mean) is cut to them, so an accuracy of
# 0.98 over five repeats does not read as "up to 1.02".
METRIC_RANGES = {"accuracy": (0.0, 1.0), "balanced_accuracy": (0.0, 1.0), "precision": (0.0, 1.0),
                 "recall": (0.0, 1.0), "f1": (0.0, 1.0), "roc_auc": (0.0, 1.0), "r2": (-math.inf, 1.0),
                 "log_loss": (0.0, math.inf), "rmse": (0.0, math.inf), "mae": (0.0, math.inf)}


@dataclass(frozen=True)
class MetricSummary:
    """A group's figure for one metric over its finished members: mean, spread (sample sd) and 95% interval."""

    metric: str
    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class GroupSummary:
    group: RunGroup
    members: list[Run]
    metrics: dict[str, MetricSummary]  # test metrics, the primary one first
    cost_seconds: float  # training time of every finished member together

    @property
    def finished(self) -> list[Run]:
        return [r for r in self.members if r.status == RunStatus.SUCCEEDED and r.metrics.get("test")]

    @property
    def primary_metric(self) -> str:
        return primary_metric(self.group.task)

    def label(self) -> str:
        """How a group is named in pickers: 'group 3f2a1b · mlp · 5 repeats · accuracy 0.842 (0.81-0.87)'."""
        text = f"group {self.group.id} · {self.group.model} · {len(self.finished)} of {self.group.n_members} repeats"
        summary = self.metrics.get(self.primary_metric)
        if summary:
            text += f" · {summary.metric} {format_interval(summary.mean, summary.ci_low, summary.ci_high)}"
        return text


def format_interval(value: float | None, low: float | None = None, high: float | None = None) -> str:
    """'0.842 (0.81-0.87)'; the point alone when there is no interval (a run from before intervals were kept);
    '—' for no value. Scores of 10 and above (an RMSE in the target's units) keep their significant digits."""
    if value is None or not math.isfinite(value):
        return "—"
    small = abs(value) < 10
    point = f"{value:.3f}" if small else f"{value:.4g}"
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return point
    return f"{point} ({low:.2f}-{high:.2f})" if small else f"{point} ({low:.3g}-{high:.3g})"


def run_interval(run: Run, metric: str) -> tuple[float, float] | None:
    """A run's stored 95% interval of a test score; None for a run trained before intervals were kept."""
    bounds = (run.intervals or {}).get("test", {}).get(metric)
    return (float(bounds[0]), float(bounds[1])) if bounds and len(bounds) == 2 else None


def group_scores(group: RunGroup, members: Iterable[Run], metric: str) -> GroupScores:
    """The finished members' test scores keyed by member name: what the corrected t-test pairs."""
    scores = {r.member: float(r.metrics["test"][metric]) for r in members
              if r.status == RunStatus.SUCCEEDED and r.member and _finite(r.metrics.get("test", {}).get(metric))}
    return GroupScores(group.id, f"group {group.id} ({group.model})", metric, group.scheme_key, scores,
                       group.test_share)


def summarize(group: RunGroup, members: Sequence[Run]) -> GroupSummary:
    finished = [r for r in members if r.status == RunStatus.SUCCEEDED and r.metrics.get("test")]
    names = list(dict.fromkeys([primary_metric(group.task), *(m for r in finished for m in r.metrics["test"])]))
    metrics = {}
    for name in names:
        scores = group_scores(group, finished, name)
        if not scores.scores:
            continue
        interval = group_interval(scores)
        values = list(scores.scores.values())
        low, high = clip_interval(name, interval.low, interval.high)
        metrics[name] = MetricSummary(name, len(values), interval.point,
                                      float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                                      low if len(values) > 1 else math.nan,
                                      high if len(values) > 1 else math.nan)
    return GroupSummary(group, list(members), metrics, float(sum(r.duration_s or 0 for r in finished)))


def summarize_all(groups: Sequence[RunGroup], runs: Sequence[Run]) -> dict[str, GroupSummary]:
    """Every group's summary from runs already read (one list_runs, not one query per group)."""
    members: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: r.created_at):
        if run.group_id:
            members.setdefault(run.group_id, []).append(run)
    return {g.id: summarize(g, members.get(g.id, [])) for g in groups}


def scores_side_by_side(summaries: Sequence[GroupSummary], runs: Sequence[Run]) -> MetricsComparison:
    """The Scores tab for groups and single runs: one row per group (the mean over its finished repeats, with its
    95% interval), one per run, and the trivial baseline: for groups the mean of their members' baselines, once
    per fold scheme (groups on the same folds share it)."""
    singles = compare_metrics(runs) if runs else None
    rows: dict[str, dict[str, float]] = {}
    intervals: dict[str, dict[str, tuple[float, float]]] = {}
    for summary in summaries:
        label = f"group {summary.group.id[:6]} · {summary.group.model}"
        rows[label] = {m: s.mean for m, s in summary.metrics.items()}
        intervals[label] = {m: (s.ci_low, s.ci_high) for m, s in summary.metrics.items()
                            if math.isfinite(s.ci_low) and math.isfinite(s.ci_high)}
    if singles is not None:
        for label in singles.table.index.difference(singles.baseline_rows, sort=False):
            rows[label] = singles.table.loc[label].dropna().to_dict()
        intervals |= singles.intervals
    metrics = list(dict.fromkeys(m for values in rows.values() for m in values))
    best = {}
    for metric in metrics:
        scored = {label: values[metric] for label, values in rows.items() if _finite(values.get(metric))}
        if scored:
            top = (max if higher_is_better(metric) else min)(scored.values())
            best[metric] = [label for label, value in scored.items() if math.isclose(value, top, rel_tol=1e-12)]
    baselines: dict[str, dict[str, float]] = {}
    schemes = {s.group.scheme_key for s in summaries}
    for summary in summaries:
        per_member = [r.baseline["test"] for r in summary.finished if (r.baseline or {}).get("test")]
        if not per_member or not summary.finished:
            continue
        label = f"Baseline ({baseline_name(summary.group.task)}) · mean over the folds"
        if len(schemes) > 1:
            label += f" of group {summary.group.id[:6]}"
        baselines.setdefault(label, {m: float(np.mean([b[m] for b in per_member if _finite(b.get(m))]))
                                     for m in metrics if any(_finite(b.get(m)) for b in per_member)})
    if singles is not None:
        baselines |= {label: singles.table.loc[label].dropna().to_dict() for label in singles.baseline_rows}
    table = pd.DataFrame.from_dict(rows | baselines, orient="index", columns=metrics)
    return MetricsComparison(table, best, {m: higher_is_better(m) for m in metrics}, list(baselines),
                             singles.unscored if singles else [], intervals)


def clip_interval(metric: str, low: float, high: float) -> tuple[float, float]:
    """An interval cut to the values the metric can take (NaN stays NaN)."""
    floor, ceiling = METRIC_RANGES.get(metric, (-math.inf, math.inf))
    return float(np.clip(low, floor, ceiling)), float(np.clip(high, floor, ceiling))


def group_json(summary: GroupSummary) -> dict[str, Any]:
    """A group for JSON: its id, members and the mean, spread and interval per metric (None where unmeasured)."""
    return {
        "group_id": summary.group.id, "model": summary.group.model, "dataset_id": summary.group.dataset_id,
        "target": summary.group.target, "n_members": summary.group.n_members, "finished": len(summary.finished),
        "member_ids": [r.id for r in summary.members], "cost_s": round(summary.cost_seconds, 3),
        "metrics": {m: {"mean": _json(s.mean), "sd": _json(s.sd), "ci_low": _json(s.ci_low),
                        "ci_high": _json(s.ci_high), "n": s.n} for m, s in summary.metrics.items()},
    }


# -- comparing groups and runs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Items:
    """What was asked to be compared, as read from the store: group summaries and single runs, in the asked order."""

    ids: list[str]
    groups: dict[str, GroupSummary]
    runs: dict[str, Run]
    predictions: dict[str, tuple[np.ndarray, np.ndarray] | None]  # run id -> its stored test (y, predictions)

    def task(self) -> str:
        tasks = {g.group.task for g in self.groups.values()} | {r.task for r in self.runs.values()}
        return next(iter(tasks)) if len(tasks) == 1 else ""

    def default_metric(self) -> str:
        task = self.task()
        if not task:
            raise UserError("These runs solve different tasks, so they cannot be ranked on one metric.")
        return primary_metric(task)


def load_items(store: Store, ids: Sequence[str]) -> Items:
    """Each id is a group or a run. Runs are read with their stored test predictions (for the paired bootstrap)."""
    from workbench.jobs import test_predictions_path
    from workbench.runner import load_test_predictions

    ids = list(dict.fromkeys(ids))
    known_groups = {g.id: g for g in store.list_groups()}
    groups, runs, predictions = {}, {}, {}
    for item_id in ids:
        if item_id in known_groups:
            groups[item_id] = summarize(known_groups[item_id], store.group_runs(item_id))
        else:
            run = store.get_run(item_id, with_epochs=False)  # a plain sentence when there is no such run either
            runs[item_id] = run
            predictions[item_id] = load_test_predictions(test_predictions_path(store, run.id))
    return Items(ids, groups, runs, predictions)


def as_comparable(items: Items, metric: str) -> tuple[list[GroupScores | RunPredictions], dict[str, str]]:
    """Each item as the statistics see it; items that cannot take part are left out with the reason why."""
    comparable: list[GroupScores | RunPredictions] = []
    left_out: dict[str, str] = {}
    for item_id in items.ids:
        if item_id in items.groups:
            summary = items.groups[item_id]
            scores = group_scores(summary.group, summary.members, metric)
            if not scores.scores:
                left_out[item_id] = f"group {item_id} has no finished repeat with a test {metric} yet."
            else:
                comparable.append(scores)
            continue
        run, stored = items.runs[item_id], items.predictions[item_id]
        if run.status != RunStatus.SUCCEEDED or not run.metrics.get("test"):
            left_out[item_id] = f"run {item_id} has no test scores (it {run.status})."
        elif stored is None:
            left_out[item_id] = f"run {item_id} was trained before test predictions were kept, so it cannot be paired."
        else:
            comparable.append(RunPredictions(run.id, f"{run.model} · {run.id}", Task(run.task),
                                             run.split_fingerprint or "", stored[0], stored[1]))
    return comparable, left_out


def compare_items(items: Items, metric: str | None = None, band: float | None = None) -> Ranking:
    """Two items: is A better than B (NotComparable, with the reason, when they were tested on different rows).
    More: a ranking where every item not clearly worse than the best is tied with it."""
    metric = metric or items.default_metric()
    if len(items.ids) == 2 and len(items.groups) == 1:
        group, run = next(iter(items.groups)), next(iter(items.runs))
        raise NotComparable(f"group {group} is repeated and run {run} is a single run: repeat the run too (with the "
                            "same number of repeats) to compare them.")
    comparable, left_out = as_comparable(items, metric)
    if len(comparable) < 2:
        reasons = " ".join(left_out.values())
        raise NotComparable(f"At least two finished runs or groups are needed to compare. {reasons}".strip())
    if len(comparable) == 2:
        _pair(comparable[0], comparable[1], metric, band)  # raises NotComparable, saying why, for different rows
    ranking = rank(comparable, metric, band)
    if left_out:
        ranking.refused.update(left_out)
    return ranking


def _pair(a: GroupScores | RunPredictions, b: GroupScores | RunPredictions, metric: str, band: float | None) -> None:
    # Each raises NotComparable with its own reason; called only then, so nothing is computed twice.
    if isinstance(a, GroupScores) and isinstance(b, GroupScores) and a.scheme_key != b.scheme_key:
        compare_groups(a, b, band)
    if isinstance(a, RunPredictions) and isinstance(b, RunPredictions) and a.test_key != b.test_key:
        compare_runs(a, b, metric, band)


def comparison_json(ranking: Ranking) -> dict[str, Any]:
    """The CLI's `compare --json` shape; every pair is told from its `a` side (the item ahead)."""
    out: dict[str, Any] = {
        "metric": ranking.metric, "higher_is_better": ranking.higher_is_better,
        "items": [{"id": i.id, "kind": i.kind, "n": i.n, "mean": _json(i.mean),
                   **dict(zip(("ci_low", "ci_high"), map(_json, clip_interval(ranking.metric, i.ci_low, i.ci_high)),
                              strict=True))} for i in ranking.items],
        "pairs": [{"a": p.a, "b": p.b, "difference": _json(p.difference), "ci_low": _json(p.ci_low),
                   "ci_high": _json(p.ci_high), "p_value": _json(p.p_value), "prob_a_better": _json(p.prob_a_better),
                   "verdict": str(p.verdict)} for p in ranking.pairs],
        "tied_with_best": ranking.tied_with_best,
    }
    if ranking.refused:
        out["not_compared"] = ranking.refused
    return out


# -- leaderboard -------------------------------------------------------------------------------------------------------


def leaderboard_entries(groups: Mapping[str, GroupSummary], runs: Sequence[Run], metric: str) -> list[Entry]:
    """Finished groups (their members count only through the group) and finished single runs, as leaderboard
    entries: the group's mean and corrected interval, or the run's score and bootstrap interval."""
    entries = []
    for summary in groups.values():
        figure = summary.metrics.get(metric)
        if figure is None:
            continue
        scores = group_scores(summary.group, summary.members, metric)
        entries.append(Entry(summary.group.id, "group", summary.group.model, f"group {summary.group.id}",
                             summary.group.dataset_id, summary.group.target, metric, figure.mean,
                             figure.ci_low, figure.ci_high, summary.cost_seconds, summary.group.scheme_key,
                             scores.scores, summary.group.test_share))
    for run in runs:
        value = (run.metrics.get("test") or {}).get(metric)
        if run.group_id or run.status != RunStatus.SUCCEEDED or not _finite(value):
            continue
        low, high = run_interval(run, metric) or (math.nan, math.nan)
        entries.append(Entry(run.id, "run", run.model, f"{run.model} · {run.id}", run.dataset_id, run.target,
                             metric, float(value), low, high, float(run.duration_s or 0)))
    return entries


def dataset_leaderboard(runs: Sequence[Run], summaries: Mapping[str, GroupSummary], dataset_id: str, target: str,
                        metric: str | None = None) -> tuple[str, list[LeaderboardRow]]:
    """The best group or run of each model on one dataset and target, with its interval, tie mark and cost, from
    runs and group summaries already read (the Runs page has them)."""
    runs = [r for r in runs if r.dataset_id == dataset_id and r.target == target]
    if not runs:
        raise UserError(f"No run of dataset {dataset_id} predicts '{target}' yet.")
    metric = metric or primary_metric(runs[0].task)
    chosen = {k: g for k, g in summaries.items() if g.group.dataset_id == dataset_id and g.group.target == target}
    return metric, leaderboard(leaderboard_entries(chosen, runs, metric), dataset_id, target, metric)


def read_leaderboard(store: Store, dataset_id: str, target: str,
                     metric: str | None = None) -> tuple[str, list[LeaderboardRow]]:
    store.get_dataset(dataset_id)  # one plain sentence for an unknown dataset
    runs = store.list_runs(dataset_id=dataset_id)
    return dataset_leaderboard(runs, summarize_all(store.list_groups(dataset_id), runs), dataset_id, target, metric)


def leaderboard_json(metric: str, rows: Sequence[LeaderboardRow]) -> dict[str, Any]:
    return {"metric": metric, "higher_is_better": higher_is_better(metric),
            "rows": [{"rank": r.rank, "model": r.model, "id": r.id, "kind": r.kind, "mean": _json(r.mean),
                      "ci_low": _json(r.ci_low), "ci_high": _json(r.ci_high), "cost_s": round(r.cost_seconds, 3),
                      "tied_with_best": r.tied_with_best, "note": r.note} for r in rows]}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _json(value: float | None) -> float | None:
    return float(value) if _finite(value) else None
