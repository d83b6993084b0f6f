"""FT-Transformer (Gorishniy et al., 2021): a token per feature plus [CLS], through a Transformer encoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workbench.errors import UserError
from workbench.models.layers import ActivationSize, FeatureTokenizer
from workbench.models.params import LEARNING_RATE_HELP, NeuralParams, param


@dataclass(frozen=True)
class TransformerParams(NeuralParams):
    d_model: int = param(64, "Size of each feature's token.", label="Token size", min=8, max=1024)
    n_heads: int = param(8, "Attention heads; must divide the token size.", label="Attention heads",
                          advanced=True, min=1, max=64)
    n_layers: int = param(3, "Number of attention layers, one after another.", label="Encoder layers", min=1, max=12)
    ffn_factor: float = param(4 / 3, "Width of each layer's feed-forward part, relative to the token size.",
                              label="Feed-forward width factor", advanced=True, min=0.5, max=8.0)
    attention_dropout: float = param(0.2, "Share of attention weights switched off at random while training.",
                                       label="Attention dropout", advanced=True, min=0.0, max=0.9)
    dropout: float = param(0.1, "Share of values in the feed-forward parts switched off at random while "
                         "training.", label="Dropout", advanced=True,
                         min=0.0, max=0.9)
    lr: float = param(1e-4 * 3, LEARNING_RATE_HELP, label="Learning rate", min=1e-6, max=1.0)
    weight_decay: float = param(1e-5, "L2 penalty that keeps weights small, against overfitting.",
                                label="Weight decay (L2)", advanced=True, min=0.0, max=1.0)

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise UserError(f"The token size d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads}).")


class FTTransformer(nn.Module):
    def __init__(self, n_numeric: int, cardinalities: list[int], n_outputs: int, params: TransformerParams):
        super().__init__()
        d = params.d_model
        self.tokens = FeatureTokenizer(n_numeric, cardinalities, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.uniform_(self.cls, -(d**-0.5), d**-0.5)
        layer = nn.TransformerEncoderLayer(
            d, params.n_heads, dim_feedforward=max(1, int(d * params.ffn_factor)), dropout=params.dropout,
            activation="gelu", batch_first=True, norm_first=True)
        layer.self_attn.dropout = params.attention_dropout
        self.encoder = nn.TransformerEncoder(layer, params.n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.ReLU(), nn.Linear(d, n_outputs))

    def activation_size(self) -> ActivationSize:
        """Per layer, attention holds heads x tokens^2 values several times over in training (scores, softmax,
        dropout mask, dropped weights) and twice in inference (scores and softmax); the token-sized tensors (norms,
        projections, residuals, dropout) about 20 times and the feed-forward part 3.5 times its width."""
        n, d = self.tokens.n_tokens + 1, self.tokens.d_token  # + [CLS]
        first = self.encoder.layers[0]
        heads, ffn, layers = first.self_attn.num_heads, first.linear1.out_features, len(self.encoder.layers)
        attention = 3.5 * heads * n * n * layers
        return ActivationSize(training=4 * n * d + layers * (20 * n * d + 3.5 * ffn * n) + attention,
                              inference=2 * heads * n * n + 8 * n * d + 2 * ffn * n, attention=attention)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(x_num, x_cat)
        tokens = torch.cat([self.cls.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return self.head(self.encoder(tokens)[:, 0])
