"""Pieces shared by the neural models: activations, init, categorical embeddings, feature tokens."""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn


class _Mish(torch.autograd.Function):
    """x tanh(softplus(x)) = x (1 - q^2) / (1 + q^2) with q = 1 - sigmoid(x), from element-wise passes that torch
    vectorises on the CPU; its slope is bend + x sigmoid(x) (1 - bend^2), from what the forward pass kept. torch's
    own mish took 1.6 ms forward and backward on a 1024 x 256 float32 batch (one core; ReLU 0.1 ms), this 0.36 ms;
    equal to 1e-6 in float32."""

    @staticmethod
    def forward(ctx, x):
        s = torch.sigmoid(x)
        q_squared = torch.rsub(s, 1).square_()
        bend = torch.rsub(q_squared, 1).div_(q_squared.add_(1))
        ctx.save_for_backward(x, s, bend)
        return x * bend

    @staticmethod
    def backward(ctx, grad):
        x, s, bend = ctx.saved_tensors
        return torch.rsub(bend.square(), 1).mul_(s).mul_(x).add_(bend).mul_(grad)


class Mish(nn.Module):
    """Mish (RealMLP's activation for regression); half-width inputs in float32 (bfloat16 element-wise passes are
    slower on the CPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Mish.apply(x.float() if x.element_size() < 4 else x)


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "mish": Mish, "selu": nn.SELU, "tanh": nn.Tanh,
               "sigmoid": nn.Sigmoid}


@dataclass(frozen=True)
class ActivationSize:
    """Values per row that a model holds besides its weights (each neural model's `activation_size()`, for the memory
    estimate of workbench.memory): in one training step, what autograd keeps for the backward pass plus the
    gradients it passes back; in inference, the most that a forward pass holds at once. Counted as float32 (bf16
    autocast keeps some of them in half the size), from the tensors each layer makes; checked against measured peaks
    in tests/test_memory.py."""

    training: float
    inference: float
    attention: float = 0.0  # the part of `training` that attention between the feature tokens takes


# torch shifts int64 right arithmetically (copying the sign bit); xorshift needs a logical shift, so the copies are cleared
_LOW_57_BITS = (1 << 57) - 1
_INT_OF_WIDTH = {2: torch.int16, 4: torch.int32}  # float16/bfloat16, float32


class RandomWords:
    """Random 64-bit words for CPU dropout masks, about 5x cheaper than torch's generator (0.18 vs 1.0 ms for the
    262,144 words a 4096 x 512 mask needs): one xorshift64 generator (Marsaglia 2003, shifts 13/7/17) per word, all
    stepped together by a few vectorised integer ops. They are seeded from torch's generator, so torch.manual_seed
    still makes training repeatable. Good enough for dropout; not a statistical-quality generator."""

    def __init__(self):
        self._state = torch.empty(0, dtype=torch.int64)
        self._shifted = torch.empty(0, dtype=torch.int64)

    def next(self, n: int) -> torch.Tensor:
        """`n` new words; the tensor returned is the generators' state: read it, never write to it."""
        if self._state.numel() < n:
            # reseed all (a larger batch than before); a zero state would stay zero, hence the low bit set
            self._state = torch.empty(n, dtype=torch.int64).random_(-(2**63), 2**63 - 1).bitwise_or_(1)
            self._shifted = torch.empty_like(self._state)
        state, shifted = self._state[:n], self._shifted[:n]
        state.bitwise_xor_(torch.bitwise_left_shift(state, 13, out=shifted))
        state.bitwise_xor_(torch.bitwise_right_shift(state, 7, out=shifted).bitwise_and_(_LOW_57_BITS))
        state.bitwise_xor_(torch.bitwise_left_shift(state, 17, out=shifted))
        return state


@functools.cache
def _scale_bits(drop_below: int, dtype: torch.dtype) -> int:
    """The bit pattern of 256 / (256 - drop_below) in `dtype`, as the integer of the same width."""
    return torch.tensor(256 / (256 - drop_below), dtype=dtype).view(_INT_OF_WIDTH[dtype.itemsize]).item()


def dropout_mask(x: torch.Tensor, p: float, words: torch.Tensor, relu: bool) -> torch.Tensor:
    """What dropout multiplies `x` (float16/bfloat16/float32) by: 1 / (1 - p) where kept, else 0; with `relu`, also
    0 where x < 0, so that one multiplication does ReLU and dropout (at x = +0 the output is 0 as well, and the gradient
    passes as for a kept positive: a subgradient; one more pass to give ReLU's 0 there cost 15-40% of the mask's time). Element i gets byte i of `words` (at least
    ceil(numel / 8) of them), so p is rounded to a multiple of 1/256.

    Built from integer ops on the bit patterns, in x's width: on the CPU torch's comparisons and bool casts cost
    several times more. A signed byte (-128..127) minus (round(p * 256) - 128) is negative exactly for the dropped
    share, OR-ing x's bits adds x's sign, and an arithmetic shift turns the sign into all-ones or zeros."""
    int_dtype = _INT_OF_WIDTH[x.element_size()]
    drop_below = round(p * 256)
    n = x.numel()
    mask = torch.empty(n, dtype=int_dtype).copy_(words.view(torch.int8)[:n]).sub_(drop_below - 128)
    if relu:
        mask.bitwise_or_(x.detach().reshape(-1).view(int_dtype))
    mask.bitwise_right_shift_(8 * x.element_size() - 1).bitwise_not_().bitwise_and_(_scale_bits(drop_below, x.dtype))
    return mask.view(x.dtype).view(x.shape)


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper mask on the CPU (see `dropout_mask`), where torch draws one random number per
    element: on a 4096 x 512 activation that costs as much as the matmul before it. Elsewhere torch's own dropout."""

    def __init__(self, p: float):
        super().__init__(p)
        self.words = RandomWords()

    def _cpu_mask(self, x: torch.Tensor, relu: bool) -> torch.Tensor | None:
        if not self.training or round(self.p * 256) == 0 or x.device.type != "cpu" \
                or not x.is_floating_point() or x.element_size() not in _INT_OF_WIDTH:
            return None
        return dropout_mask(x, self.p, self.words.next((x.numel() + 7) // 8), relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self._cpu_mask(x, relu=False)
        return super().forward(x) if mask is None else x * mask  # a float mask: the backward is one multiply too


class ReLUDropout(Dropout):
    """ReLU, then dropout. On the CPU both are one multiplication by a mask that is also 0 where x < 0: the backward
    pass is one multiplication as well, and no ReLU output is kept for it. On the benchmark's 3 x 512 MLP at batch
    4096 (bf16) it took the training step from 45-50 ms to 40-47 ms."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self._cpu_mask(x, relu=True)
        return nn.Dropout.forward(self, torch.relu(x)) if mask is None else x * mask


class _PeriodicLinear(torch.autograd.Function):
    """PBLD's trained part, number by number, batch last: cos(2 pi w x + b) at F frequencies, then a linear map to S
    values. x (n, 1, batch), w and b (n, F, 1), weight (n, S, F), bias (n, S, 1) -> (n, S, batch). Written by hand,
    backward included, because autograd's own made the default MLP's step on 50 numbers at batch 1024 take 10.5 ms
    (2 CPU cores; without embeddings 1.4 ms): a new tensor for each of a sine, a negation and four products, and
    matrix products on the strided gradient of the concatenation. Here: the cosine and the sine are the only passes
    that cost, and the small matrices multiply (n, F, batch) blocks, which is 5x faster than (n, batch, F)."""

    @staticmethod
    def forward(ctx, x, frequencies, phases, weight, bias):
        angles = torch.addcmul(phases, frequencies, x, value=2 * math.pi)
        periodic = torch.cos(angles)
        ctx.save_for_backward(x, frequencies, weight, angles, periodic)
        return torch.baddbmm(bias, weight, periodic)

    @staticmethod
    def backward(ctx, grad):
        x, frequencies, weight, angles, periodic = ctx.saved_tensors
        grad = grad.contiguous()
        # d cos = -sin: the minus and 2 pi go on the small results, not on the (n, F, batch) block
        grad_angles = torch.sin(angles).mul_(weight.transpose(1, 2) @ grad)
        grad_x = (frequencies.transpose(1, 2) @ grad_angles).mul_(-2 * math.pi) if ctx.needs_input_grad[0] else None
        return (grad_x, (grad_angles @ x.transpose(1, 2)).mul_(-2 * math.pi), grad_angles.sum(2, keepdim=True).neg_(),
                grad @ periodic.transpose(1, 2), grad.sum(2, keepdim=True))


class PeriodicBiasLinearDense(nn.Module):
    """RealMLP's number embeddings ("PBLD", Holzmueller et al. 2024, their defaults): per number x, cos(2 pi w x + b)
    at `n_frequencies` learned frequencies w ~ N(0, sigma) and phases b, a linear map of those to `size` - 1 values,
    and x itself ("dense": the number passes through unchanged). (batch, n) -> (batch, n, size). Much lighter than
    rtdl's PLR (48 frequencies to 24 values): the first layer reads 4 values a number instead of 24."""

    def __init__(self, n_features: int, n_frequencies: int = 16, size: int = 4, sigma: float = 0.1):
        super().__init__()
        bound = 1 / math.sqrt(n_frequencies)
        self.frequencies = nn.Parameter(sigma * torch.randn(n_features, 1, n_frequencies))
        self.phases = nn.Parameter(math.pi * (2 * torch.rand(n_features, 1, n_frequencies) - 1))
        self.weight = nn.Parameter(bound * (2 * torch.rand(n_features, n_frequencies, size - 1) - 1))
        self.bias = nn.Parameter(bound * (2 * torch.rand(n_features, 1, size - 1) - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        # batch last (see _PeriodicLinear); the saved shapes stay as they were, these are views
        by_number, frequencies, phases = x.T.contiguous().unsqueeze(1), self.frequencies.mT, self.phases.mT
        weight, bias = self.weight.mT, self.bias.mT
        # in float32 under mixed precision too: the matrices are small, casting them to bf16 cost more than it saved
        with torch.autocast(x.device.type, enabled=False):
            if torch.is_grad_enabled() and self.frequencies.requires_grad:
                values = _PeriodicLinear.apply(by_number, frequencies, phases, weight, bias)
            else:  # predicting and exporting: plain operations
                periodic = torch.cos(torch.addcmul(phases, frequencies, by_number, value=2 * math.pi))
                values = torch.baddbmm(bias, weight, periodic)
        return torch.cat([x.unsqueeze(-1), values.permute(2, 0, 1)], dim=-1)


def activation_and_dropout(activation: str, p: float) -> list[nn.Module | None]:
    """The slots after a layer: [activation, dropout], or [ReLUDropout, None] (the same two slots, see
    `numbered_sequential`); no dropout slot when p is 0."""
    if p == 0:
        return [ACTIVATIONS[activation]()]
    if activation == "relu":
        return [ReLUDropout(p), None]
    return [ACTIVATIONS[activation](), Dropout(p)]


def numbered_sequential(slots: list[nn.Module | None]) -> nn.Sequential:
    """An nn.Sequential whose modules are named by their slot, skipping empty (None) slots. ReLU and dropout used to
    be two modules and are now one: the layers after them keep the names they had, so saved weights still load."""
    return nn.Sequential(OrderedDict((str(i), module) for i, module in enumerate(slots) if module is not None))


def init_weights(module: nn.Module, scheme: str, activation: str = "relu") -> None:
    """He (Kaiming) for ReLU-like layers, Xavier for tanh/sigmoid, or PyTorch's default."""
    if scheme == "default":
        return
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            if scheme == "he":
                # "linear" is LeCun's init, which SELU needs to keep its outputs standardised
                relu_like = activation in ("relu", "gelu", "mish")
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu" if relu_like else "linear")
            else:
                nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain(
                    activation if activation in ("tanh", "sigmoid", "relu", "selu") else "relu"))
            nn.init.zeros_(layer.bias)


def embedding_dim(cardinality: int) -> int:
    """A common rule of thumb (fast.ai): grows slowly with the number of categories, capped at 32."""
    return int(min(32, round(1.6 * cardinality**0.56)))


class OneHot(nn.Module):
    """A category's codes as one-hot columns: a fixed embedding table (the identity), not learned."""

    def __init__(self, cardinality: int):
        super().__init__()
        self.register_buffer("eye", torch.eye(cardinality), persistent=False)
        self.embedding_dim = cardinality

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.eye[codes]


class CategoricalEmbeddings(nn.Module):
    """One embedding table per categorical column, concatenated; columns with fewer than `one_hot_below` codes are
    one-hot columns instead (0: none)."""

    def __init__(self, cardinalities: list[int], one_hot_below: int = 0):
        super().__init__()
        self.tables = nn.ModuleList(OneHot(c) if c < one_hot_below else nn.Embedding(c, embedding_dim(c))
                                    for c in cardinalities)
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
        self.n_tokens, self.d_token = n_numeric + len(cardinalities), d_token

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        tokens = [x_num.unsqueeze(-1) * self.numeric_weight + self.numeric_bias]
        tokens += [table(x_cat[:, i]).unsqueeze(1) for i, table in enumerate(self.categorical)]
        return torch.cat(tokens, dim=1)  # (batch, n_features, d_token)
