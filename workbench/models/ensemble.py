"""`ensemble`: a weighted average of finished runs, chosen by greedy ensemble selection with replacement (Caruana,
Niculescu-Mizil, Crew and Ksikes, ICML 2004; as in AutoGluon).

Selection works on the members' stored validation predictions (probabilities, or values in the target's units):
start from the best single member, then, each round, add the member (again, if it is the best choice) whose addition
gives the averaged predictions the best validation score. A member's weight is how often it was picked over the
picks kept. Rounds go on to `max_rounds`; the picks kept are those of the round that scored best (the earliest of
equal scores, so the smallest such ensemble): the ensemble never scores below its best member on the validation rows.

A score is (the task's metric in its direction, then minus the loss), the order in which the trainer ranks epochs:
accuracy first and log loss among equal accuracies, or minus the RMSE.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.models.params import param
from workbench.tasks import Task

MEMBERS_DIR = "members"  # the members' saved models, copied into the ensemble's run folder
RUN_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
PROBABILITY_FLOOR = 1e-15  # log loss of a probability of 0 is infinite; as scikit-learn, clip it
SIGNIFICANT_DIGITS = 10  # of a selection score


@dataclass(frozen=True)
class EnsembleParams:
    members: str = param("", "The finished runs to choose from, as run ids separated by commas. Empty: every finished "
                         "run on the same dataset, target and test rows.", label="Runs to choose from",
                         placeholder="every finished run on these rows")
    max_rounds: int = param(50, "How many times a run is picked (a run can be picked again, which weighs it more); "
                            "the round that scored best on the validation rows is kept.", label="Selection rounds",
                            min=1, max=1000)

    def run_ids(self) -> list[str]:
        """The explicit member run ids, in the order given, each once; [] for 'every eligible run'."""
        return list(dict.fromkeys(part.strip() for part in self.members.split(",") if part.strip()))


def score(task: str, y: np.ndarray, predictions: np.ndarray) -> tuple[float, float]:
    """(metric, -loss) with higher better: (accuracy, -log loss) for classification; (-RMSE, -MSE) for regression.
    To SIGNIFICANT_DIGITS: picking a member again leaves the average as it was but for rounding, and such noise
    must not make a later round, with more picks, look better than the same ensemble found earlier."""
    if Task(task) == Task.REGRESSION:
        mse = float(np.mean((predictions - y) ** 2))
        return _rounded(-float(np.sqrt(mse))), _rounded(-mse)
    rows = np.arange(len(y))
    accuracy = float(np.mean(predictions.argmax(axis=1) == y))
    log_loss = float(-np.mean(np.log(np.clip(predictions[rows, y], PROBABILITY_FLOOR, None))))
    return _rounded(accuracy), _rounded(-log_loss)


def _rounded(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def average(predictions: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted average of members' predictions (values, or probabilities: each row's made to sum to 1 again,
    as a member that computed in float32 leaves them off by about 1e-7); weights that sum to 1."""
    mean = sum(w * np.asarray(p, dtype="float64") for p, w in zip(predictions, weights, strict=True) if w > 0)
    return mean / mean.sum(axis=1, keepdims=True) if mean.ndim == 2 else mean


@dataclass
class Selection:
    counts: np.ndarray  # per member, how often it was picked in the rounds kept
    scores: list[tuple[float, float]] = field(default_factory=list)  # the ensemble's score after each round
    best_round: int = 1  # rounds kept (1-based)

    @property
    def weights(self) -> np.ndarray:
        return self.counts / self.counts.sum()


def select(task: str, y: np.ndarray, predictions: Sequence[np.ndarray], max_rounds: int,
           on_round: Callable[[int, tuple[float, float]], None] | None = None) -> Selection:
    """Greedy selection with replacement of `predictions` (one array per member, on the validation rows `y`).
    `on_round(round, score)` is called after each round (progress; it may raise to stop)."""
    if len(predictions) < 1:
        raise ValueError("selection needs at least one member")
    stacked = np.stack([np.asarray(p, dtype="float64") for p in predictions])
    total = np.zeros_like(stacked[0])  # the sum of the picked members' predictions
    picks: list[int] = []
    scores: list[tuple[float, float]] = []
    for round_ in range(1, max_rounds + 1):
        n = len(picks) + 1
        candidates = [score(task, y, (total + member) / n) for member in stacked]
        best = max(range(len(stacked)), key=lambda i: candidates[i])  # the first of equal scores
        picks.append(best)
        total += stacked[best]
        scores.append(candidates[best])
        if on_round is not None:
            on_round(round_, candidates[best])
    best_round = max(range(len(scores)), key=lambda r: scores[r]) + 1  # the earliest of equal scores
    counts = np.bincount(picks[:best_round], minlength=len(stacked)).astype("float64")
    return Selection(counts, scores, best_round)


@dataclass
class Ensemble:
    """A trained ensemble: its members' run ids and weights, and where their saved models are (at training time
    the member runs' own folders; once saved, the copies in the ensemble's folder)."""

    run_ids: list[str]
    models: list[str]  # each member's catalog model
    weights: list[float]
    folders: list[Path]

    def to_config(self) -> list[dict[str, Any]]:
        return [{"run_id": r, "model": m, "weight": w}
                for r, m, w in zip(self.run_ids, self.models, self.weights, strict=True)]

    @classmethod
    def from_config(cls, members: list[dict[str, Any]], folder: Path) -> Ensemble:
        """A saved ensemble: `to_config()`'s list, the members' models copied under `folder`/MEMBERS_DIR."""
        if not all(isinstance(m["run_id"], str) and RUN_ID.fullmatch(m["run_id"]) for m in members):
            raise ValueError("a member's run id is not a plain name")  # it names a folder: never '..' or a path
        return cls([m["run_id"] for m in members], [m["model"] for m in members],
                   [float(m["weight"]) for m in members], [folder / MEMBERS_DIR / m["run_id"] for m in members])

    def summary(self) -> str:
        """The weights in words (the run's notes)."""
        parts = sorted(zip(self.weights, self.models, self.run_ids, strict=True), key=lambda item: -item[0])
        return "Ensemble weights: " + ", ".join(f"{m} {r} {w:.0%}" for w, m, r in parts) + "."
