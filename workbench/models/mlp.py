"""Multi-layer perceptron over scaled numbers and learned category embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workbench.models.layers import (
    ACTIVATIONS,
    ActivationSize,
    CategoricalEmbeddings,
    activation_and_dropout,
    init_weights,
    numbered_sequential,
)
from workbench.models.params import LEARNING_RATE_HELP, NeuralParams, param


@dataclass(frozen=True)
class MLPParams(NeuralParams):
    # 2e-3 rather than the shared 1e-3: on the benchmark's 200k-row task it reaches the same validation accuracy in
    # 6 epochs instead of 10, and it scores the same on the bundled samples (make bench, "quality").
    lr: float = param(2e-3, LEARNING_RATE_HELP, label="Learning rate", min=1e-6, max=1.0)
    hidden_sizes: list[int] = param([256, 256], "Neurons in each hidden layer, e.g. 256,256 for two layers.",
                                    label="Hidden layer sizes", min=1, max=8192, kind="int_list")
    activation: str = param("relu", "The non-linearity between layers.", label="Activation",
                           advanced=True, choices=tuple(ACTIVATIONS))
    dropout: float = param(0.1, "Share of neurons switched off at random while training, against overfitting.",
                           label="Dropout", min=0.0, max=0.9)
    batch_norm: bool = param(False, "Normalise each layer's outputs per batch; can speed up training.",
                            label="Batch normalisation", advanced=True)
    init: str = param("he", "How weights start: He suits ReLU, Xavier suits tanh/sigmoid.",
                      label="Weight initialisation", advanced=True, choices=("he", "xavier", "default"))


class MLP(nn.Module):
    def __init__(self, n_numeric: int, cardinalities: list[int], n_outputs: int, params: MLPParams):
        super().__init__()
        self.embeddings = CategoricalEmbeddings(cardinalities)
        slots: list[nn.Module | None] = []
        width = n_numeric + self.embeddings.out_dim
        for size in params.hidden_sizes:
            slots.append(nn.Linear(width, size))
            if params.batch_norm:
                slots.append(nn.BatchNorm1d(size))
            slots += activation_and_dropout(params.activation, params.dropout)
            width = size
        self.body = numbered_sequential(slots)
        self.head = nn.Linear(width, n_outputs)
        init_weights(self.body, params.init, params.activation)

    def activation_size(self) -> ActivationSize:
        """Per hidden layer: its output, the dropout mask and what the next layer reads (batch norm: two more);
        the backward pass holds about two layers' gradients at once."""
        layers = [m for m in self.body if isinstance(m, nn.Linear)]
        per_layer = 5 if any(isinstance(m, nn.BatchNorm1d) for m in self.body) else 3
        widths = [self.head.in_features if not layers else layers[0].in_features] + [m.out_features for m in layers]
        return ActivationSize(training=2 * widths[0] + per_layer * sum(widths[1:]) + 2 * max(widths),
                              inference=widths[0] + 2 * max(widths))

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x_num, self.embeddings(x_cat)], dim=1) if self.embeddings.out_dim else x_num
        return self.head(self.body(x))
