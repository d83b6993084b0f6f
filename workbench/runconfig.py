"""The run configuration: the one object that travels from the form to the worker and back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.errors import UserError

TASKS = ("auto", "binary", "multiclass", "regression")
IMPUTATIONS = ("mean", "median", "most_frequent")
SCALINGS = ("auto", "standard", "minmax", "quantile", "robust")
CATEGORICAL_ENCODINGS = ("auto", "onehot", "embedding")
MAX_REPEATS = 50


@dataclass
class SplitConfig:
    """Train/validation/test fractions and the seed that fixes which rows go where. With `order_by` (a date column)
    the split follows time instead: training on the earliest rows, validation on the next, test on the latest; rows
    with no date there are left out (nothing of unknown time is trained or tested on)."""

    train: float = 0.70
    val: float = 0.15
    test: float = 0.15
    seed: int = 0
    order_by: str | None = None

    def validate(self) -> None:
        if self.order_by is not None and (not isinstance(self.order_by, str) or not self.order_by):
            raise UserError("The column to order the split by must be a column name.")
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise UserError(f"The {name} share must be between 0 and 1, not {value}.")
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise UserError("The train, validation and test shares must add up to 1.")


@dataclass
class PrepConfig:
    """Preprocessing choices; 'auto' picks what suits the model family."""

    impute_numeric: str = "median"
    scaling: str = "auto"  # the model's own choice (mlp: robust), else neural: quantile-normal; others: standard
    categorical: str = "auto"  # neural (except linear): embedding; others: one-hot
    datetime_parts: bool = True

    def validate(self) -> None:
        if self.impute_numeric not in IMPUTATIONS:
            raise UserError(f"Imputation must be one of {', '.join(IMPUTATIONS)}.")
        if self.scaling not in SCALINGS:
            raise UserError(f"Scaling must be one of {', '.join(SCALINGS)}.")
        if self.categorical not in CATEGORICAL_ENCODINGS:
            raise UserError(f"Categorical encoding must be one of {', '.join(CATEGORICAL_ENCODINGS)}.")


@dataclass
class RunConfig:
    """Everything needed to reproduce a run. Stored as JSON; a later run can be cloned from it."""

    dataset_id: str
    target: str
    model: str
    task: str = "auto"
    exclude: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    split: SplitConfig = field(default_factory=SplitConfig)
    prep: PrepConfig = field(default_factory=PrepConfig)
    repeats: int = 1  # above 1: a run group, one member run per repeat (workbench.jobs.submit_run)

    def validate(self) -> None:
        if self.task not in TASKS:
            raise UserError(f"Task must be one of {', '.join(TASKS)}, not '{self.task}'.")
        if not isinstance(self.repeats, int) or isinstance(self.repeats, bool) or not 1 <= self.repeats <= MAX_REPEATS:
            raise UserError(f"Repeats must be a whole number from 1 to {MAX_REPEATS}, not {self.repeats}.")
        if self.repeats > 1 and self.split.order_by is not None:
            raise UserError("Repeats test on random folds and a time-ordered split is one fixed split; choose one.")
        self.split.validate()
        self.prep.validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = dict(data)
        data["split"] = SplitConfig(**data.get("split", {}))
        data["prep"] = PrepConfig(**data.get("prep", {}))
        return cls(**data)
