"""An LSTM or GRU reading the per-feature embeddings one feature at a time."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workbench.models.layers import ActivationSize, Dropout, FeatureTokenizer
from workbench.models.params import NeuralParams, param


@dataclass(frozen=True)
class RNNParams(NeuralParams):
    cell: str = param("gru", "The recurrent cell: GRU is lighter, LSTM has more memory gates.",
                     label="Cell", advanced=True, choices=("gru", "lstm"))
    d_token: int = param(16, "Size of each feature's embedding.", label="Embedding size", advanced=True,
                          min=2, max=512)
    hidden_size: int = param(64, "Size of the recurrent state.", label="State size", min=2, max=2048)
    num_layers: int = param(1, "Stacked recurrent layers.", label="Recurrent layers", min=1, max=6)
    bidirectional: bool = param(True, "Read the features in both directions.", label="Both directions",
                                advanced=True)
    dropout: float = param(0.1, "Share of values switched off at random while training.", label="Dropout",
                           advanced=True, min=0.0, max=0.9)


class RNN(nn.Module):
    def __init__(self, n_numeric: int, cardinalities: list[int], n_outputs: int, params: RNNParams):
        super().__init__()
        self.tokens = FeatureTokenizer(n_numeric, cardinalities, params.d_token)
        cell = nn.GRU if params.cell == "gru" else nn.LSTM
        self.rnn = cell(params.d_token, params.hidden_size, num_layers=params.num_layers, batch_first=True,
                        bidirectional=params.bidirectional,
                        dropout=params.dropout if params.num_layers > 1 else 0.0)
        width = params.hidden_size * (2 if params.bidirectional else 1)
        self.dropout = Dropout(params.dropout)
        self.head = nn.Linear(width, n_outputs)

    def activation_size(self) -> ActivationSize:
        """The CPU recurrence runs one step per token; autograd keeps each step's gate values and states, about
        12 hidden-size vectors a step for a GRU and 9 for an LSTM (measured), per layer and direction."""
        n, d, rnn = self.tokens.n_tokens, self.tokens.d_token, self.rnn
        directions = 2 if rnn.bidirectional else 1
        per_step = (9 if rnn.mode == "LSTM" else 12) * rnn.hidden_size * directions * rnn.num_layers
        sequence = n * directions * rnn.hidden_size  # one layer's outputs
        return ActivationSize(training=3 * n * d + n * per_step + 2 * sequence, inference=3 * n * d + 2 * sequence)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(self.tokens(x_num, x_cat))
        return self.head(self.dropout(outputs.mean(dim=1)))
