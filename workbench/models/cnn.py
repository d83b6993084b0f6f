"""1-D convolutions over the sequence of per-feature embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workbench.models.layers import ActivationSize, FeatureTokenizer, ReLUDropout, numbered_sequential
from workbench.models.params import NeuralParams, param


@dataclass(frozen=True)
class CNNParams(NeuralParams):
    d_token: int = param(16, "Size of each feature's embedding.", label="Embedding size", advanced=True,
                          min=2, max=512)
    channels: int = param(64, "Filters per convolution layer.", label="Filters per layer", min=1, max=1024)
    kernel_size: int = param(3, "How many neighbouring features each filter looks at.",
                              label="Kernel size", advanced=True, min=1, max=15)
    depth: int = param(2, "Number of convolution layers.", label="Convolution layers", min=1, max=8)
    pooling: str = param("max", "How the feature axis is summarised at the end.", label="Pooling",
                         advanced=True, choices=("max", "avg"))
    dropout: float = param(0.1, "Share of values switched off at random while training.", label="Dropout",
                           advanced=True, min=0.0, max=0.9)


class CNN(nn.Module):
    def __init__(self, n_numeric: int, cardinalities: list[int], n_outputs: int, params: CNNParams):
        super().__init__()
        self.tokens = FeatureTokenizer(n_numeric, cardinalities, params.d_token)
        slots: list[nn.Module | None] = []
        width = params.d_token
        for _ in range(params.depth):
            slots += [nn.Conv1d(width, params.channels, params.kernel_size, padding="same"),
                      nn.BatchNorm1d(params.channels), ReLUDropout(params.dropout), None]
            width = params.channels
        self.body = numbered_sequential(slots)
        self.pool = nn.AdaptiveMaxPool1d(1) if params.pooling == "max" else nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(width, n_outputs)

    def activation_size(self) -> ActivationSize:
        """Tokens (n_tokens x d_token, built in three steps), then per convolution layer its output, batch norm's,
        the dropout mask and what the next layer reads, each n_tokens x channels."""
        n, d = self.tokens.n_tokens, self.tokens.d_token
        channels = [m.out_channels for m in self.body if isinstance(m, nn.Conv1d)]
        widest = n * max([d, *channels])
        return ActivationSize(training=3 * n * d + 4 * n * sum(channels) + 2 * widest, inference=n * d + 2 * widest)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        x = self.tokens(x_num, x_cat).transpose(1, 2)  # (batch, d_token, n_features)
        return self.head(self.pool(self.body(x)).squeeze(-1))
