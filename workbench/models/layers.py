"""Pieces shared by the neural models: activations, init, categorical embeddings, feature tokens."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper mask on the CPU, where torch draws one random number per element: on a 4096 x 512
    activation that costs as much as the matmul before it (16 ms vs 16 ms on the 2-core benchmark machine). Here
    each element gets one random byte, eight from each 64-bit draw (1 ms); p is rounded to a multiple of 1/256.
    Other devices use torch's own dropout. Seeded like torch's: the same seed gives the same masks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        drop_below = round(self.p * 256)
        if drop_below == 0:
            return x
        words = torch.empty((x.numel() + 7) // 8, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
        byte = words.view(torch.uint8)[: x.numel()].view_as(x)
        # A float mask: autograd keeps it for the backward pass, which is one multiplication too.
        return x * keep_mask(byte, drop_below, x.dtype)


def keep_mask(byte: torch.Tensor, drop_below: int, dtype: torch.dtype) -> torch.Tensor:
    """0 where byte < drop_below, else 256 / (256 - drop_below), in `dtype`, from arithmetic alone: on the CPU torch's
    comparisons and bool casts cost 3-5x more. For 16-bit floats (autocast) the mask is built as bits in int16, where
    (drop_below - 1 - byte) >> 15 is all ones exactly where byte >= drop_below: half the time of float32 arithmetic
    and a cast (0.3 vs 0.6 ms on 4096 x 512); float32 itself is faster the plain way (int32 shifts are slow)."""
    scale = 256 / (256 - drop_below)
    if dtype.itemsize == 2:
        scale_bits = torch.tensor(scale, dtype=dtype).view(torch.int16).item()
        mask = torch.rsub(byte.to(torch.int16), drop_below - 1)
        return mask.bitwise_right_shift_(15).bitwise_and_(scale_bits).view(dtype)
    return byte.to(dtype).sub_(drop_below - 1).clamp_(0, 1).mul_(scale)  # exact: bytes are small integers


def init_weights(module: nn.Module, scheme: str, activation: str = "relu") -> None:
    """He (Kaiming) for ReLU-like layers, Xavier for tanh/sigmoid, or PyTorch's default."""
    if scheme == "default":
        return
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            if scheme == "he":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu" if activation in ("relu", "gelu") else "linear")
            else:
                nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain(
                    activation if activation in ("tanh", "sigmoid", "relu") else "relu"))
            nn.init.zeros_(layer.bias)


def embedding_dim(cardinality: int) -> int:
    """A common rule of thumb (fast.ai): grows slowly with the number of categories, capped at 32."""
    return int(min(32, round(1.6 * cardinality**0.56)))


class CategoricalEmbeddings(nn.Module):
    """One embedding table per categorical column, concatenated."""

    def __init__(self, cardinalities: list[int]):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(c, embedding_dim(c)) for c in cardinalities)
        self.out_dim = sum(t.embedding_dim for t in self.tables)

    def forward(self, x_cat: torch.Tensor) -> torch.Tensor:
        if not len(self.tables):
            return x_cat.new_zeros((x_cat.shape[0], 0), dtype=torch.float32)
        return torch.cat([table(x_cat[:, i]) for i, table in enumerate(self.tables)], dim=1)


class FeatureTokenizer(nn.Module):
    """One d-dimensional token per feature (FT-Transformer): numeric x -> x * w_j + b_j; category -> embedding."""

    def __init__(self, n_numeric: int, cardinalities: list[int], d_token: int):
        super().__init__()
        self.numeric_weight = nn.Parameter(torch.empty(n_numeric, d_token))
        self.numeric_bias = nn.Parameter(torch.empty(n_numeric, d_token))
        bound = d_token**-0.5
        nn.init.uniform_(self.numeric_weight, -bound, bound)
        nn.init.uniform_(self.numeric_bias, -bound, bound)
        self.categorical = nn.ModuleList(nn.Embedding(c, d_token) for c in cardinalities)
        for table in self.categorical:
            nn.init.uniform_(table.weight, -bound, bound)
        self.n_tokens = n_numeric + len(cardinalities)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        tokens = [x_num.unsqueeze(-1) * self.numeric_weight + self.numeric_bias]
        tokens += [table(x_cat[:, i]).unsqueeze(1) for i, table in enumerate(self.categorical)]
        return torch.cat(tokens, dim=1)  # (batch, n_features, d_token)
