"""What a task learns and how it is judged: the one owner of task semantics.

The loss and validation metric on network outputs, the metric's direction, the primary metric, target scaling for
regression, turning outputs into predictions (class probabilities, or values in the target's units), and scoring
predictions (metrics, curves, the trivial baseline) for the task. The trainer, the runner, predict and compare ask
an `Objective` or the functions here; none of them branches on the task itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench import metrics


class Task(StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"


# Metrics where a smaller number is better; every other metric is better when larger.
LOWER_IS_BETTER = {"log_loss", "loss", "rmse", "mse", "mae", "mape", "brier", "brier_score", "max_error",
                   "median_absolute_error", "mean_absolute_error", "mean_squared_error"}


def higher_is_better(metric: str) -> bool:
    name = metric.lower()
    return not (name in LOWER_IS_BETTER or name.endswith(("_loss", "_error")))


def primary_metric(task: str) -> str:
    """The metric a run is judged by: validated each epoch, kept by early stopping, shown first when comparing."""
    return "rmse" if task == Task.REGRESSION else "accuracy"


def baseline_name(task: str) -> str:
    """What the trivial model of `task` predicts, in words."""
    return "mean" if task == Task.REGRESSION else "majority class"


@dataclass(frozen=True)
class Objective:
    """One task on one training set: what the network learns (its loss) and how each epoch is judged.

    A regression network learns the standardised target (`y_mean`, `y_std`, fitted on the training rows) and its
    outputs are mapped back to the target's units for metrics and predictions."""

    task: Task
    n_classes: int = 0  # multiclass: how many classes (binary: always 2; regression: 0)
    y_mean: float = 0.0
    y_std: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task(self.task))  # a plain "binary" is taken too
        if self.task != Task.MULTICLASS:
            object.__setattr__(self, "n_classes", 2 if self.task == Task.BINARY else 0)

    @classmethod
    def for_training(cls, task: str, y_train: np.ndarray, n_classes: int = 0) -> Objective:
        """The objective of `task` with its target scaling fitted on the training targets."""
        if task == Task.REGRESSION:
            return cls(task, 0, float(np.mean(y_train)), float(np.std(y_train)) or 1.0)
        return cls(task, n_classes)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Objective:
        """From a saved run's config.json (see `to_config`)."""
        return cls(config["task"], len(config.get("classes") or []), float(config.get("y_mean", 0.0)),
                   float(config.get("y_std", 1.0)))

    def to_config(self) -> dict[str, Any]:
        return {"task": str(self.task), "n_outputs": self.n_outputs, "y_mean": self.y_mean, "y_std": self.y_std}

    @property
    def n_outputs(self) -> int:
        """Outputs of the network: one logit (binary), one per class (multiclass), one value (regression)."""
        return self.n_classes if self.task == Task.MULTICLASS else 1

    @property
    def metric_name(self) -> str:
        return primary_metric(self.task)

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.metric_name)

    # -- on network outputs (torch, on the training device) ------------------------------------------------------
    # An ensemble network (TabM) outputs (batch, k, n_outputs), one output per member. Each member learns on its own
    # (the loss is the mean of the members' losses, not the loss of their mean), and the network's prediction, which
    # the metric judges, is the mean of the members' predictions: probabilities for classification, not logits
    # (Gorishniy et al. 2025).

    def members_mean(self, output: torch.Tensor) -> torch.Tensor:
        """An ensemble's (batch, k, n_outputs) as one network's (batch, n_outputs) output of the members' mean
        prediction: the logit of the mean probability (binary), the log of the mean probabilities (multiclass:
        their softmax is those probabilities), or the mean value. Any other output is returned as it is."""
        if output.dim() != 3:
            return output
        if self.task == Task.BINARY:  # log(mean p) - log(mean (1 - p)): the log k of each mean cancels
            return (torch.logsumexp(nn.functional.logsigmoid(output), dim=1)
                    - torch.logsumexp(nn.functional.logsigmoid(-output), dim=1))
        if self.task == Task.MULTICLASS:
            return torch.logsumexp(torch.log_softmax(output, dim=-1), dim=1) - math.log(output.shape[1])
        return output.mean(dim=1)

    def loss(self, output: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        """The training loss; `label_smoothing` (classification only; the training steps pass it, validation does
        not) mixes each target with the uniform distribution over the classes, as torch's cross_entropy does."""
        if output.dim() == 3:  # each member's loss on the same rows, averaged over the rows and the members
            return self.loss(output.flatten(0, 1), y.repeat_interleave(output.shape[1]), label_smoothing)
        output = output.float()
        if self.task == Task.BINARY:
            target = y.float() * (1.0 - label_smoothing) + 0.5 * label_smoothing
            return nn.functional.binary_cross_entropy_with_logits(output.squeeze(1), target)
        if self.task == Task.MULTICLASS:
            return nn.functional.cross_entropy(output, y, label_smoothing=label_smoothing)
        return nn.functional.mse_loss(output.squeeze(1), (y - self.y_mean) / self.y_std)

    def metric(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        output = self.members_mean(output)
        if self.task == Task.BINARY:
            return ((output.squeeze(1) > 0).long() == y).float().mean()
        if self.task == Task.MULTICLASS:
            return (output.argmax(1) == y).float().mean()
        prediction = output.squeeze(1).float() * self.y_std + self.y_mean
        return torch.sqrt(torch.mean((prediction - y) ** 2))

    def predictions(self, output: np.ndarray) -> np.ndarray:
        """Network outputs to class probabilities (n, n_classes), or values (n,) in the target's units."""
        output = np.asarray(output, dtype="float64")
        if output.ndim == 3:
            output = self.members_mean(torch.from_numpy(output).double()).numpy()
        if self.task == Task.BINARY:
            with np.errstate(over="ignore"):  # a huge negative logit: exp overflows to inf, p is 0 as it should be
                p = 1.0 / (1.0 + np.exp(-output[:, 0]))
            return np.stack([1 - p, p], axis=1)
        if self.task == Task.MULTICLASS:
            shifted = np.exp(output - output.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)
        return output[:, 0] * self.y_std + self.y_mean

    def estimator_predictions(self, estimator: Any, x: np.ndarray) -> np.ndarray:
        """The same predictions from a fitted scikit-learn estimator, with a probability column for every class,
        also for classes absent from the training rows (which its `predict_proba` leaves out). A random forest
        predicts on one thread: on several it adds its trees up in the order the threads finish, so the same rows got
        predictions differing in the last bit (19 of 20 calls on 3,000 rows), and one thread was no slower."""
        if getattr(estimator, "n_jobs", None) not in (None, 1):
            estimator.set_params(n_jobs=1)
        if self.task == Task.REGRESSION:
            return estimator.predict(x).astype("float64")
        proba = estimator.predict_proba(x)
        if proba.shape[1] == self.n_classes:
            return proba
        full = np.zeros((len(proba), self.n_classes), dtype=proba.dtype)
        full[:, estimator.classes_] = proba
        return full

    # -- on predictions (numpy, on the host) ----------------------------------------------------------------------

    def score(self, y: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
        if self.task == Task.REGRESSION:
            return metrics.regression_metrics(y, predictions)
        return metrics.classification_metrics(y, predictions, self.n_classes)

    def loss_and_metric(self, scores: dict[str, float]) -> tuple[float, float]:
        """The validation loss and metric from `score`'s figures (for models without network outputs)."""
        loss = scores["rmse"] ** 2 if self.task == Task.REGRESSION else scores["log_loss"]
        return loss, scores[self.metric_name]

    def baseline(self, y_train: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
        """The trivial model's scores on the test rows: the training mean, or the training class frequencies as
        probabilities (it predicts the majority class every time)."""
        if self.task == Task.REGRESSION:
            return self.score(y_test, np.full(len(y_test), float(np.mean(y_train))))
        frequencies = np.bincount(y_train, minlength=self.n_classes) / len(y_train)
        return self.score(y_test, np.tile(frequencies, (len(y_test), 1)))

    def curves(self, y: np.ndarray, predictions: np.ndarray, classes: list[str] | None) -> dict[str, Any]:
        if self.task == Task.REGRESSION:
            return metrics.regression_curves(y, predictions)
        return metrics.classification_curves(y, predictions, classes)
