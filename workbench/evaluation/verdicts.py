"""The verdict on a comparison, and the sentence that says it in plain words.

A comparison is always told from the side of the item that is ahead (`a`: the better mean or score; the given order
when they are exactly level), so four verdicts cover every case and "B is clearly worse" reads as "A is clearly
better". The rules, on the 95% interval of the difference a - b and the practical-equivalence band (±band):
- practically_same: the whole interval lies inside the band (a real but negligible gap counts as the same);
- clearly_better: the interval excludes 0 (p < 0.05, two-sided); only groups: single runs are at most
  probably_better, since their interval knows nothing of what another training seed would do;
- probably_better: the probability that a is really better is at least 80%;
- no_clear_winner: anything else (including too few repeats to measure the noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from scipy import stats

from workbench.tasks import higher_is_better

SIGNIFICANCE = 0.05
PROBABLY = 0.80
SUGGEST_MAX_RUNS = 50
# Metrics on a 0-1 scale that people read in percentage points.
POINT_METRICS = {"accuracy", "balanced_accuracy", "precision", "recall", "f1"}
# The practical-equivalence band per metric: ("absolute", width) in the metric's units, or ("relative", share) of
# the better of the two values. Adjustable per comparison (`band=`); unknown metrics get 1% relative.
EQUIVALENCE_BANDS = {
    "accuracy": ("absolute", 0.01), "balanced_accuracy": ("absolute", 0.01), "precision": ("absolute", 0.01),
    "recall": ("absolute", 0.01), "f1": ("absolute", 0.01), "roc_auc": ("absolute", 0.005),
    "r2": ("absolute", 0.01), "log_loss": ("relative", 0.01), "rmse": ("relative", 0.01),
    "mae": ("relative", 0.01),
}


class Verdict(StrEnum):
    CLEARLY_BETTER = "clearly_better"
    PROBABLY_BETTER = "probably_better"
    NO_CLEAR_WINNER = "no_clear_winner"
    PRACTICALLY_SAME = "practically_same"


def equivalence_band(metric: str, value_a: float, value_b: float, band: float | None = None) -> float:
    """The width of the band of differences that count as no real difference, in the metric's units."""
    if band is not None:
        return abs(float(band))
    kind, width = EQUIVALENCE_BANDS.get(metric, ("relative", 0.01))
    if kind == "absolute":
        return width
    better = max(value_a, value_b) if higher_is_better(metric) else min(value_a, value_b)
    return width * abs(better)


def decide(ci_low: float, ci_high: float, prob_a_better: float, band: float, measurable: bool = True) -> Verdict:
    """The verdict from a's side (a is ahead); `measurable` is False when the noise could not be estimated."""
    if not measurable:
        return Verdict.NO_CLEAR_WINNER
    if -band <= ci_low and ci_high <= band:
        return Verdict.PRACTICALLY_SAME
    if ci_low > 0 or ci_high < 0:
        return Verdict.CLEARLY_BETTER
    if prob_a_better >= PROBABLY:
        return Verdict.PROBABLY_BETTER
    return Verdict.NO_CLEAR_WINNER


def format_gap(metric: str, value: float, before_noun: bool = False) -> str:
    """A size of gap in words: '2.1 points' for 0-1 scores ('2.1-point' before a noun), else the number itself."""
    if metric in POINT_METRICS:
        return f"{abs(value) * 100:.1f}{'-point' if before_noun else ' points'}"
    return f"{abs(value):.3g}"


def _format_bound(metric: str, value: float) -> str:
    return f"{value * 100:.1f}" if metric in POINT_METRICS else f"{value:.3g}"


@dataclass(frozen=True)
class Wording:
    """What a sentence needs; gains are differences in the direction where larger means a is better."""

    a_name: str
    b_name: str
    metric: str
    gain: float
    gain_low: float
    gain_high: float
    noise: float  # half the width of the interval: how far the gap could move by luck
    prob_a_better: float
    band: float
    repeated: bool  # groups (the noise is run-to-run) or single runs (the noise is which test rows)
    suggested_repeats: int | None
    clear_on_these_rows: bool = False  # single runs: the gap is more than which rows were tested explains


def sentence(verdict: Verdict, w: Wording) -> str:
    gap = format_gap(w.metric, w.gain)
    likely = f"likely between {_format_bound(w.metric, w.gain_low)} and {_format_bound(w.metric, w.gain_high)}"
    if verdict == Verdict.CLEARLY_BETTER:
        return (f"{w.a_name} is better than {w.b_name} by {gap} ({likely}). "
                "A gap this large is very unlikely to be luck.")
    if verdict == Verdict.PRACTICALLY_SAME:
        return (f"{w.a_name} and {w.b_name} are practically the same: the gap of {gap} ({likely}) is within "
                f"±{format_gap(w.metric, w.band)}, which counts as no real difference.")
    advice = _advice(w)
    if verdict == Verdict.PROBABLY_BETTER and w.clear_on_these_rows:
        return (f"{w.a_name} is probably better than {w.b_name}: ahead by {gap} on these test rows ({likely}), more "
                f"than which rows were tested explains, but single runs cannot show that another seed would not "
                f"reverse it; {advice}")
    if verdict == Verdict.PROBABLY_BETTER:
        return (f"{w.a_name} is probably better than {w.b_name}, by {gap} ({likely}): a {w.prob_a_better:.0%} chance "
                f"that it is really ahead, but luck cannot be ruled out; {advice}")
    noise = f"the run-to-run noise of about {format_gap(w.metric, w.noise)}" if w.repeated else \
        f"the noise of about {format_gap(w.metric, w.noise)} from which rows were tested"
    gap = format_gap(w.metric, w.gain, before_noun=True)
    if not math.isfinite(w.noise):
        return f"No clear winner: the {gap} gap cannot be judged without repeats; {advice}"
    return f"No clear winner: the {gap} gap is smaller than {noise}; {advice}"


def _advice(w: Wording) -> str:
    if w.suggested_repeats is None:
        # The corrected noise never falls below spread x sqrt(n_test/n_train), however many repeats there are.
        return "more repeats alone are unlikely to tell them apart, because the gap is smaller than how much each " \
               "repeat's gap varies."
    return f"repeat both with {w.suggested_repeats} repeats to tell them apart."


def repeats_to_separate(gain: float, sd: float, test_share: float, current: int) -> int | None:
    """The fewest repeats (k-fold members, in whole rounds of 5) at which this gap, with this spread of per-member
    differences, would stand clear of the corrected t-test's noise; None if not within SUGGEST_MAX_RUNS."""
    if not math.isfinite(sd):  # single runs: the spread is unknown until there are repeats
        return 5
    if sd == 0 or gain == 0:
        return None
    for runs in range((current // 5 + 1) * 5, SUGGEST_MAX_RUNS + 1, 5):
        half_width = stats.t.ppf(1 - SIGNIFICANCE / 2, runs - 1) * sd * math.sqrt(1 / runs + test_share)
        if abs(gain) > half_width:
            return runs
    return None
