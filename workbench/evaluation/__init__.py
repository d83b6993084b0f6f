"""Honest comparison, as pure functions over arrays and plain records (nothing here reads or writes the store):

- bootstrap: `score_intervals` — a 95% interval on every test score of a run (seeded, vectorised bootstrap);
- folds: `fold_assignments` — the fixed test rows of each member of a repeated run (a serialisable record);
- paired: `compare_groups` (corrected resampled t-test) and `compare_runs` (paired bootstrap, McNemar) -> `Comparison`;
- verdicts: the four verdicts and the plain-words sentence of a comparison;
- ranking: `rank` (tied with best, Holm-corrected) and `leaderboard` (best of each model, ties, cost).
"""

from workbench.evaluation.bootstrap import Interval, score_intervals
from workbench.evaluation.folds import FoldAssignments, Scheme, assignment_seed, fold_assignments
from workbench.evaluation.paired import (
           Comparison,
           GroupScores,
           NotComparable,
           RunPredictions,
           compare_groups,
           compare_runs,
           group_interval,
)
from workbench.evaluation.ranking import Entry, LeaderboardRow, Ranking, leaderboard, rank
from workbench.evaluation.verdicts import Verdict

__all__ = ["Comparison", "Entry", "FoldAssignments", "GroupScores", "Interval", "LeaderboardRow", "NotComparable",
           "Ranking", "RunPredictions", "Scheme", "Verdict", "assignment_seed", "compare_groups", "compare_runs",
           "fold_assignments", "group_interval", "leaderboard", "rank", "score_intervals"]
