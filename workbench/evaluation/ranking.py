"""More than two: rank by mean, and mark every item that is not clearly worse than the best as tied with it
(pairwise tests against the best, Holm-corrected), so a single winner is named only when the evidence shows one.
And the leaderboard: the best of each model with its interval, its tie mark and its cost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from workbench.evaluation import bootstrap
from workbench.evaluation.paired import (
    Comparison,
    GroupScores,
    NotComparable,
    RunPredictions,
    compare_groups,
    compare_runs,
    group_interval,
)
from workbench.evaluation.verdicts import SIGNIFICANCE
from workbench.tasks import higher_is_better

Item = GroupScores | RunPredictions


@dataclass(frozen=True)
class RankedItem:
    id: str
    name: str
    kind: str  # "group" or "run"
    n: int  # members, or test rows
    mean: float
    ci_low: float
    ci_high: float
    rank: int  # 1 = best mean
    tied_with_best: bool
    p_value: float | None  # against the best, Holm-adjusted (None for the best itself)


@dataclass(frozen=True)
class Ranking:
    metric: str
    higher_is_better: bool
    items: list[RankedItem]
    pairs: list[Comparison]  # the best against each other item
    tied_with_best: list[str]
    refused: dict[str, str]  # id -> why it was left out
    sentence: str

    def to_dict(self) -> dict:
        out = asdict(self)
        out["pairs"] = [p.to_dict() for p in self.pairs]
        return out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the given order."""
    p = np.asarray(p_values, dtype="float64")
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    out = np.empty_like(p)
    out[order] = adjusted
    return out.tolist()


def rank(items: Sequence[Item], metric: str, band: float | None = None, *,
         n_resamples: int = bootstrap.N_RESAMPLES, seed: int = 0) -> Ranking:
    """Groups compare by the corrected t-test, single runs by the paired bootstrap. Only items tested on the same rows
    as most of the others are ranked; the rest are refused with a reason."""
    if not items:
        raise ValueError("nothing to rank")
    direction = higher_is_better(metric)
    keys = [_pairing_key(item) for item in items]
    common, _ = Counter(keys).most_common(1)[0]
    refused = {item.id: f"{item.name} was tested on different rows from the others, so it is not ranked with them."
               for item, key in zip(items, keys, strict=True) if key != common}
    ranked = [item for item, key in zip(items, keys, strict=True) if key == common]
    intervals = {item.id: _interval(item, metric, n_resamples, seed) for item in ranked}
    ranked.sort(key=lambda item: -intervals[item.id].point if direction else intervals[item.id].point)
    best, others = ranked[0], ranked[1:]
    pairs = [_compare(best, other, metric, band, n_resamples, seed) for other in others]
    # The pair's a is the one ahead; with equal means it may be the other item, and the test is the same.
    adjusted = holm([p.p_value for p in pairs]) if pairs else []
    tied = [best.id] + [other.id for other, p in zip(others, adjusted, strict=True) if p >= SIGNIFICANCE]
    rows = [RankedItem(item.id, item.name, _kind(item), _size(item), intervals[item.id].point,
                       intervals[item.id].low, intervals[item.id].high, position + 1, item.id in tied,
                       None if position == 0 else adjusted[position - 1])
            for position, item in enumerate(ranked)]
    return Ranking(metric, direction, rows, pairs, tied, refused, _summary(rows, refused))


def _pairing_key(item: Item) -> str:
    return f"group:{item.scheme_key}" if isinstance(item, GroupScores) else f"run:{item.test_key}"


def _kind(item: Item) -> str:
    return "group" if isinstance(item, GroupScores) else "run"


def _size(item: Item) -> int:
    return len(item.scores) if isinstance(item, GroupScores) else len(item.y)


def _interval(item: Item, metric: str, n_resamples: int, seed: int) -> bootstrap.Interval:
    if isinstance(item, GroupScores):
        return group_interval(item)
    intervals = bootstrap.score_intervals(item.task, item.y, item.predictions, n_resamples=n_resamples, seed=seed)
    if metric not in intervals:
        raise NotComparable(f"'{metric}' is not a score of {item.name}.")
    return intervals[metric]


def _compare(a: Item, b: Item, metric: str, band: float | None, n_resamples: int, seed: int) -> Comparison:
    if isinstance(a, GroupScores):
        return compare_groups(a, b, band)
    return compare_runs(a, b, metric, band, n_resamples=n_resamples, seed=seed)


def _summary(rows: list[RankedItem], refused: dict[str, str]) -> str:
    tied = [r.name for r in rows if r.tied_with_best]
    if len(rows) == 1:
        text = f"Only {rows[0].name} can be ranked."
    elif len(tied) == 1:
        text = f"{tied[0]} is the best: every other one is clearly worse."
    elif len(tied) == len(rows):
        text = "No single winner: none of them is clearly worse than the best."
    else:
        text = f"No single winner: {', '.join(tied[:-1])} and {tied[-1]} are tied for best; the rest are clearly worse."
    if refused:
        text += f" {len(refused)} left out: tested on different rows."
    return text


# -- leaderboard ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """A finished run or group: what the leaderboard reads. `split_scores` and `scheme_key` (groups only) let ties
    be tested; cost is the training time in seconds (a group's: all members together)."""

    id: str
    kind: str  # "group" or "run"
    model: str
    name: str
    dataset_id: str
    target: str
    metric: str
    mean: float
    ci_low: float
    ci_high: float
    cost_seconds: float
    scheme_key: str | None = None
    split_scores: dict[str, float] | None = None
    test_share: float = 0.25


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    model: str
    id: str
    kind: str
    name: str
    mean: float
    ci_low: float
    ci_high: float
    cost_seconds: float
    tied_with_best: bool | None  # None: could not be tested against the best; `note` says why
    note: str = ""


def leaderboard(entries: Sequence[Entry], dataset_id: str, target: str, metric: str) -> list[LeaderboardRow]:
    """The best run or group of each model on one dataset and target, best first. Tie marks come from the corrected
    t-test of the groups tested on the same folds as the best group; the best row is always marked."""
    direction = higher_is_better(metric)
    chosen = [e for e in entries if e.dataset_id == dataset_id and e.target == target and e.metric == metric]
    best_of_model: dict[str, Entry] = {}
    for entry in chosen:
        held = best_of_model.get(entry.model)
        # Prefer the better mean; at equal means a group (measured on more rows) over a single run.
        if held is None or _better(entry, held, direction):
            best_of_model[entry.model] = entry
    ordered = sorted(best_of_model.values(), key=lambda e: (-e.mean if direction else e.mean, e.kind != "group"))
    ties = _group_ties(ordered, metric)
    return [LeaderboardRow(position + 1, e.model, e.id, e.kind, e.name, e.mean, e.ci_low, e.ci_high,
                           e.cost_seconds, True if position == 0 else ties.get(e.id),
                           "" if position == 0 or e.id in ties else _untested(e, ordered[0]))
            for position, e in enumerate(ordered)]


def _untested(entry: Entry, best: Entry) -> str:
    if best.kind != "group" or not best.split_scores:
        return "The best is a single run: repeat it to test the others against it."
    if entry.kind != "group" or not entry.split_scores:
        return "A single run: repeat it to test it against the best."
    return "Tested on other folds than the best, so it cannot be paired with it."


def _better(entry: Entry, held: Entry, direction: bool) -> bool:
    if entry.mean != held.mean:
        return entry.mean > held.mean if direction else entry.mean < held.mean
    return entry.kind == "group" and held.kind != "group"


def _group_ties(ordered: list[Entry], metric: str) -> dict[str, bool]:
    testable = [e for e in ordered if e.kind == "group" and e.split_scores and e.scheme_key]
    if not ordered or not testable or testable[0].id != ordered[0].id:
        return {}  # the best is a single run: nothing to pair the groups with
    scores = [GroupScores(e.id, e.name, metric, e.scheme_key, e.split_scores, e.test_share) for e in testable
              if e.scheme_key == testable[0].scheme_key]
    ranking = rank(scores, metric)
    return {item.id: item.tied_with_best for item in ranking.items}
