"""Linear / logistic regression: one linear layer on one-hot and scaled inputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workbench.models.layers import ActivationSize
from workbench.models.params import LEARNING_RATE_HELP, NeuralParams, param


@dataclass(frozen=True)
class LinearParams(NeuralParams):
    lr: float = param(1e-2, LEARNING_RATE_HELP, label="Learning rate", min=1e-6, max=1.0)


class LinearModel(nn.Module):
    def __init__(self, n_numeric: int, cardinalities: list[int], n_outputs: int, params: LinearParams):
        super().__init__()
        self.linear = nn.Linear(n_numeric, n_outputs)

    def activation_size(self) -> ActivationSize:
        n_in, n_out = self.linear.in_features, self.linear.out_features
        return ActivationSize(training=2 * n_in + 2 * n_out, inference=n_in + n_out)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.linear(x_num)
