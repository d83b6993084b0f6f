"""Which rows each member of a repeated run is tested on: a plain record, fixed by the rows' targets, the scheme and
a seed, so every group trained with the same scheme on the same dataset and target is tested on the same rows.

Up to `KFOLD_MAX_ROWS` rows: repeated k-fold (5 folds x ceil(N/5) rounds, so every row is tested once per round;
stratified by class, or by quantile bin of a numeric target). Above: N hold-out splits, each with its own split seed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedShuffleSplit

from workbench.errors import UserError
from workbench.tasks import Task

N_FOLDS = 5
KFOLD_MAX_ROWS = 20_000
HOLDOUT_TEST_SHARE = 0.15  # as the default single split (runconfig.SplitConfig.test)
REGRESSION_BINS = 10
TRAINING = -1  # the fold of a row that a hold-out member trains on


class Scheme(StrEnum):
    AUTO = "auto"
    KFOLD = "repeated_kfold"
    HOLDOUT = "repeated_holdout"


@dataclass(frozen=True)
class FoldAssignments:
    """`folds[r][i]` is the fold row i is tested in during round r (k-fold: 0..k-1; hold-out: 0, or TRAINING).

    Members are (round, fold) pairs; `key` names the rows and the partition, so two groups can be paired exactly
    when their keys are equal. Rows are positions in the target column given to `fold_assignments`."""

    scheme: Scheme
    n_rows: int
    n_folds: int  # folds per round (1 for hold-out)
    n_rounds: int
    seed: int
    folds: list[list[int]]
    key: str

    @property
    def members(self) -> list[tuple[int, int]]:
        return [(r, f) for r in range(self.n_rounds) for f in range(self.n_folds)]

    def member_name(self, round_: int, fold: int) -> str:
        """A stable name of one member's test rows ('r0f3'): per-member scores are keyed by it."""
        return f"r{round_}f{fold}"

    def split(self, round_: int, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """(training rows, test rows) of one member, as sorted row positions."""
        assigned = np.asarray(self.folds[round_])
        return np.flatnonzero(assigned != fold), np.flatnonzero(assigned == fold)

    def splits(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        for r, f in self.members:
            yield (self.member_name(r, f), *self.split(r, f))

    def test_share(self) -> float:
        """Tested rows over trained rows, averaged over members: the n_test/n_train of the corrected t-test."""
        ratios = [len(test) / max(len(train), 1) for _, train, test in self.splits()]
        return float(np.mean(ratios))

    def to_dict(self) -> dict:
        return {"scheme": str(self.scheme), "n_rows": self.n_rows, "n_folds": self.n_folds,
                "n_rounds": self.n_rounds, "seed": self.seed, "folds": self.folds, "key": self.key}

    @classmethod
    def from_dict(cls, data: dict) -> FoldAssignments:
        return cls(Scheme(data["scheme"]), int(data["n_rows"]), int(data["n_folds"]), int(data["n_rounds"]),
                   int(data["seed"]), [list(map(int, r)) for r in data["folds"]], str(data["key"]))


def assignment_seed(dataset_id: str, target: str) -> int:
    """The seed of a dataset and target's fold assignments: every group on them gets the same folds."""
    return int.from_bytes(hashlib.sha256(f"{dataset_id}\x00{target}".encode()).digest()[:4], "big")


def resolve_scheme(n_rows: int, scheme: str = Scheme.AUTO) -> Scheme:
    scheme = Scheme(scheme)
    if scheme == Scheme.AUTO:
        return Scheme.KFOLD if n_rows <= KFOLD_MAX_ROWS else Scheme.HOLDOUT
    return scheme


def fold_assignments(y, n_repeats: int, seed: int, task: Task, scheme: str = Scheme.AUTO) -> FoldAssignments:
    """The test rows of each of `n_repeats` members (k-fold: rounded up to whole rounds of 5 folds).

    y: the target column (class labels or numbers, no missing values); `seed`: `assignment_seed(dataset, target)`,
    so the same table and scheme always give the same assignments. A hold-out member's round number is a good
    offset for its training seed (the issue asks for different split and training seeds above KFOLD_MAX_ROWS)."""
    if n_repeats < 1:
        raise UserError(f"Repeats must be at least 1, not {n_repeats}.")
    y = pd.Series(np.asarray(y)).reset_index(drop=True)
    if y.isna().any():
        raise ValueError("fold assignments need a target without missing values")
    scheme = resolve_scheme(len(y), scheme)
    strata = _strata(y, Task(task))
    n_folds = N_FOLDS if scheme == Scheme.KFOLD else 1
    if len(y) < 2 * N_FOLDS:
        raise UserError(f"Repeating needs at least {2 * N_FOLDS} rows with a target; this table has {len(y)}.")
    if scheme == Scheme.KFOLD:
        n_rounds = math.ceil(n_repeats / N_FOLDS)
        stratify = _stratifiable(strata, N_FOLDS)
        splitter = RepeatedStratifiedKFold(n_splits=N_FOLDS, n_repeats=n_rounds, random_state=seed)
        folds = np.empty((n_rounds, len(y)), dtype="int64")
        for i, (_, test) in enumerate(splitter.split(np.zeros(len(y)), stratify)):
            folds[i // N_FOLDS, test] = i % N_FOLDS
    else:
        n_rounds = n_repeats
        folds = np.full((n_rounds, len(y)), TRAINING, dtype="int64")
        for r in range(n_rounds):
            stratify = _stratifiable(strata, 2)
            splitter = StratifiedShuffleSplit(n_splits=1, test_size=HOLDOUT_TEST_SHARE, random_state=seed + r)
            _, test = next(splitter.split(np.zeros(len(y)), stratify))
            folds[r, test] = 0
    digest = hashlib.sha256()
    digest.update(f"{scheme}|{n_folds}|{seed}|".encode())
    digest.update(pd.util.hash_pandas_object(y.astype(str), index=False).to_numpy().tobytes())
    digest.update(folds.tobytes())
    return FoldAssignments(scheme, len(y), n_folds, n_rounds, seed, folds.tolist(), digest.hexdigest()[:16])


def _strata(y: pd.Series, task: Task) -> np.ndarray:
    """Class labels, or the quantile bin of a numeric target, as integer codes."""
    if task == Task.REGRESSION:
        bins = pd.qcut(y.astype("float64").rank(method="first"), REGRESSION_BINS, labels=False, duplicates="drop")
        return np.asarray(bins, dtype="int64")
    return pd.factorize(y.astype(str))[0]


def _stratifiable(strata: np.ndarray, parts: int) -> np.ndarray:
    """The strata where every one has at least `parts` rows; otherwise one stratum (a plain, unstratified split)."""
    counts = np.bincount(strata)
    return strata if counts[counts > 0].min() >= parts else np.zeros_like(strata)
