"""The trainer: fit -> run_epoch -> train_step, and evaluate. Small functions; side effects in callbacks.

Data becomes tensors once and moves to the device once. A batch is a slice of a random permutation
(no DataLoader), the loss is summed on the device and read once per epoch (no host sync per step),
evaluation runs in large batches under inference_mode, and CUDA uses bf16 autocast.
"""

from __future__ import annotations

import copy
import ctypes
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from workbench.callbacks import CallbackList, EarlyStopping, EpochRecord, RunCancelled
from workbench.devices import best_device, cpu_has_native_bf16
from workbench.errors import UserError
from workbench.store.entities import RunStatus

EVAL_BATCH = 8192
# batch_size 0 (auto): 256 rows per update, doubled on large tables. Each doubling keeps ~200+ updates per epoch and
# multiplies the learning rate by sqrt(2), the square-root scaling rule for Adam (Malladi et al., 2022). On the
# 200,000-row benchmark task, batch 1024 at twice the learning rate reached the validation accuracy of batch 256 in
# 0.5-0.9x its time (two seeds, two target scores).
AUTO_BATCH_BY_ROWS = ((200_000, 1024), (100_000, 512), (0, 256))
AUTO_BATCH_BASE = 256
# Under 4,096 training rows the automatic batch shrinks (down to 32 rows) to keep 16 updates per epoch. On the bundled
# samples (default MLP, mean of three splits) it moved wine 0.975 -> 0.988 and digits 0.962 -> 0.965, diabetes rmse
# 60.0 -> 57.1, breast_cancer 0.946 -> 0.938 (one test row of 86 in one split).
MIN_BATCHES_PER_EPOCH = 16
MIN_AUTO_BATCH = 32
MAX_CPU_THREADS = 8  # small tabular models stop gaining from more threads well before this
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_allocator_tuned = False


def tune_cpu_allocator() -> None:
    """Keep freed activation buffers in the heap instead of handing them back to the OS (glibc, Linux only).

    By default glibc serves every block above its mmap threshold (128 KiB at first, adapting up to 32 MiB) with a
    fresh mmap, and trims the heap once 128 KiB+ is free at its top, so each training step's activations and
    gradients (a 4096 x 512 float32 batch is 8 MiB) come back as new zero pages: one page fault per 4 KiB. On a
    CPU that made element-wise ops (ReLU, dropout, Adam) 10-20x slower than their arithmetic. Blocks up to 32 MiB
    now come from the heap, which keeps up to 512 MiB of free space for reuse. Process-wide; done once, on the
    first CPU training; peak memory is unchanged (the freed space is reused, not added to).
    """
    global _allocator_tuned
    if _allocator_tuned:
        return
    _allocator_tuned = True
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
        libc.mallopt(_M_TRIM_THRESHOLD, 512 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc (e.g. musl): keep its defaults
        pass


def limit_cpu_threads() -> int:
    """At most the cores this process may use (and at most 8): more threads than cores slows tiny models down."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, min(available, MAX_CPU_THREADS, torch.get_num_threads()))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads


def select_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device(best_device())
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("A CUDA GPU was asked for, but this machine has none; choose 'auto' or 'cpu'.")
    mps = getattr(torch.backends, "mps", None)
    if requested == "mps" and not (mps and mps.is_available()):
        raise UserError("An Apple GPU (MPS) was asked for, but this machine has none; choose 'auto' or 'cpu'.")
    return torch.device(requested)


@dataclass
class Tensors:
    """One split's inputs and targets, already on the training device."""

    x_num: torch.Tensor
    x_cat: torch.Tensor
    y: torch.Tensor

    @classmethod
    def from_arrays(cls, x_num: np.ndarray, x_cat: np.ndarray, y: np.ndarray, device: torch.device) -> Tensors:
        y_tensor = torch.as_tensor(y)
        y_tensor = y_tensor.float() if y_tensor.is_floating_point() else y_tensor.long()
        return cls(torch.as_tensor(x_num, dtype=torch.float32).to(device),
                   torch.as_tensor(x_cat, dtype=torch.long).to(device), y_tensor.to(device))

    def __len__(self) -> int:
        return self.x_num.shape[0]


@dataclass
class Objective:
    """What is learned and how it is judged: loss on model outputs, and the validation metric."""

    task: str
    y_mean: float = 0.0
    y_std: float = 1.0

    @property
    def metric_name(self) -> str:
        return "rmse" if self.task == "regression" else "accuracy"

    @property
    def higher_is_better(self) -> bool:
        return self.task != "regression"

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        output = output.float()
        if self.task == "binary":
            return nn.functional.binary_cross_entropy_with_logits(output.squeeze(1), y.float())
        if self.task == "multiclass":
            return nn.functional.cross_entropy(output, y)
        return nn.functional.mse_loss(output.squeeze(1), (y - self.y_mean) / self.y_std)

    def metric(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "binary":
            return ((output.squeeze(1) > 0).long() == y).float().mean()
        if self.task == "multiclass":
            return (output.argmax(1) == y).float().mean()
        prediction = output.squeeze(1).float() * self.y_std + self.y_mean
        return torch.sqrt(torch.mean((prediction - y) ** 2))


@dataclass
class FitResult:
    status: RunStatus  # succeeded, diverged, cancelled (or failed: out of memory at the smallest batch)
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    batch_size: int = 0
    lr: float = 0.0  # the learning rate it started with (auto batch sizes scale it)
    mixed_precision: str = "off"  # "on" when it trained under bf16 autocast
    error: str | None = None


class WeightAverage:
    """An exponential moving average of the weights (Polyak averaging). The average, not the last step's weights, is
    what each epoch validates, what early stopping keeps and what is saved: it smooths out the noise of the last
    updates. The horizon is set in epochs so it means the same on any table; early steps use a shorter one
    ((1 + t) / (10 + t)) so the random initial weights fade quickly. On the 200k-row benchmark task (default MLP, bf16)
    a half-epoch horizon reached 0.881 validation accuracy in 5 epochs instead of 7."""

    def __init__(self, model: nn.Module, horizon_epochs: float, batches_per_epoch: int):
        """`model`: the module being trained, not a torch.compile wrapper (see `unwrapped`)."""
        self.average = copy.deepcopy(model).requires_grad_(False)
        self.decay = 1.0 - 1.0 / max(1.0, horizon_epochs * batches_per_epoch)
        self.updates = 0
        self._averaged, self._live = self._tensors(self.average), self._tensors(model)  # made once: update() is per step

    @staticmethod
    def _tensors(module: nn.Module) -> list[torch.Tensor]:
        buffers = [b for b in module.buffers() if b.is_floating_point()]  # batch norm's running statistics
        return [p.detach() for p in module.parameters()] + buffers

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average towards the live weights; called after each optimizer step."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._averaged, self._live, 1.0 - decay)


def unwrapped(model: nn.Module) -> nn.Module:
    """The module itself: torch.compile wraps it (same weights, state_dict keys prefixed '_orig_mod.')."""
    return getattr(model, "_orig_mod", model)


def batch_and_lr(params: dict, n_rows: int) -> tuple[int, float]:
    """The batch size and starting learning rate a run uses: as set, or for batch_size 0, chosen from the rows."""
    if params["batch_size"]:
        return min(params["batch_size"], n_rows), params["lr"]
    batch_size = next(size for rows, size in AUTO_BATCH_BY_ROWS if n_rows >= rows)
    if batch_size > AUTO_BATCH_BASE:
        return batch_size, float(f"{params['lr'] * math.sqrt(batch_size / AUTO_BATCH_BASE):.4g}")
    # Small tables: at least MIN_BATCHES_PER_EPOCH updates per epoch, so that early stopping's patience (in epochs)
    # still means many updates; the learning rate is kept as set.
    fitting = 2 ** int(math.log2(max(1, n_rows // MIN_BATCHES_PER_EPOCH)))
    return min(n_rows, AUTO_BATCH_BASE, max(MIN_AUTO_BATCH, fitting)), params["lr"]


def make_optimizer(model: nn.Module, params: dict) -> torch.optim.Optimizer:
    # Fused Adam/AdamW: one kernel for the whole update; on CUDA and, since torch 2.4, on the CPU.
    fused = {"fused": True} if next(model.parameters()).device.type in ("cuda", "cpu") else {}
    if params["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=0.9, weight_decay=params["weight_decay"])
    if params["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"], **fused)
    return torch.optim.AdamW(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"], **fused)


def make_scheduler(optimizer: torch.optim.Optimizer, params: dict):
    if params["lr_schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params["epochs"])
    if params["lr_schedule"] == "plateau":
        mode = "max" if params.get("_higher_is_better", True) else "min"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5,
                                                          patience=max(2, params["patience"] // 4))
    return None


def autocast_for(device: torch.device, params: dict):
    """bf16 autocast: 'on', or 'auto' on CUDA and on CPUs with native bf16 (weights, optimizer and loss stay fp32).
    On the 2-core AVX512-BF16 benchmark CPU a 200k-row epoch of the default MLP took 0.95 s instead of 1.25 s."""
    mode = params["mixed_precision"]
    if device.type not in ("cuda", "cpu") or mode == "off":
        return nullcontext()
    if mode == "on" or device.type == "cuda" or cpu_has_native_bf16():
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def l1_penalty(model: nn.Module) -> torch.Tensor:
    return sum(p.abs().sum() for name, p in model.named_parameters() if p.dim() > 1)


@torch.no_grad()
def clip_grad_norm(optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    """nn.utils.clip_grad_norm_ over the optimizer's parameters, the same arithmetic without its per-call checks and
    grouping by device and dtype (ours share one of each): 70 us instead of 145 us a step, 5% of a batch-256 step of
    the default MLP. Checked against the library in the tests."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    total_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total_norm + 1e-6), max=1.0))


def train_step(model: nn.Module, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor, objective: Objective,
               optimizer: torch.optim.Optimizer, params: dict, autocast) -> torch.Tensor:
    with autocast:
        loss = objective.loss(model(x_num, x_cat), y)
    total = loss + params["l1"] * l1_penalty(model) if params["l1"] > 0 else loss
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    if params["grad_clip"] > 0:
        clip_grad_norm(optimizer, params["grad_clip"])
    optimizer.step()
    return loss.detach()


def batch_starts(n_rows: int, batch_size: int) -> list[int]:
    """Where each batch of an epoch starts. A last batch of one row breaks batch norm and adds noise: it is folded
    into the previous batch."""
    return [s for s in range(0, n_rows, batch_size) if n_rows - s > 1 or s == 0]


def run_epoch(model: nn.Module, train: Tensors, objective: Objective, optimizer, params: dict, batch_size: int,
              epoch: int, generator: torch.Generator, autocast, callbacks: CallbackList,
              average: WeightAverage | None = None) -> torch.Tensor:
    """One pass over the training rows in a random order; returns the mean loss as a device tensor."""
    model.train()
    n = len(train)
    order = torch.randperm(n, generator=generator).to(train.x_num.device)
    loss_sum = torch.zeros((), device=train.x_num.device)
    starts = batch_starts(n, batch_size)
    for batch, start in enumerate(starts):
        end = starts[batch + 1] if batch + 1 < len(starts) else n
        index = order[start:end]  # index_select: half the cost of x[index] for a small batch
        loss = train_step(model, train.x_num.index_select(0, index), train.x_cat.index_select(0, index),
                          train.y.index_select(0, index), objective, optimizer, params, autocast)
        if average is not None:
            average.update()
        loss_sum += loss * (end - start)
        callbacks.on_batch_end(epoch, batch)
    return loss_sum / n


@torch.inference_mode()
def predict_outputs(model: nn.Module, x_num: torch.Tensor, x_cat: torch.Tensor, autocast=None) -> torch.Tensor:
    model.eval()
    outputs = []
    for start in range(0, x_num.shape[0], EVAL_BATCH):
        with autocast or nullcontext():
            outputs.append(model(x_num[start:start + EVAL_BATCH], x_cat[start:start + EVAL_BATCH]).float())
    return torch.cat(outputs) if outputs else torch.zeros((0, 1))


def evaluate(model: nn.Module, data: Tensors, objective: Objective, autocast) -> tuple[float, float]:
    """Validation loss and metric, read back to the host once."""
    output = predict_outputs(model, data.x_num, data.x_cat, autocast)
    loss, metric = objective.loss(output, data.y), objective.metric(output, data.y)
    values = torch.stack([loss.float(), metric.float()]).tolist()
    return values[0], values[1]


def fit(model: nn.Module, train: Tensors, val: Tensors, objective: Objective, params: dict,
        callbacks: CallbackList) -> FitResult:
    """Train with early stopping on the validation metric; on CUDA out of memory, retry with half the batch."""
    batch_size, lr = batch_and_lr(params, len(train))
    params = {**params, "lr": lr}
    initial = copy.deepcopy(model.state_dict())
    while True:
        try:
            return _fit(model, train, val, objective, params, batch_size, callbacks)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if batch_size <= 16:
                return FitResult(RunStatus.FAILED, error="The GPU ran out of memory even with a batch of 16 rows; "
                                 "try a smaller model or the CPU.")
            batch_size //= 2
            model.load_state_dict(initial)


def _fit(model: nn.Module, train: Tensors, val: Tensors, objective: Objective, params: dict, batch_size: int,
         callbacks: CallbackList) -> FitResult:
    device = train.x_num.device
    if device.type == "cpu":
        tune_cpu_allocator()
        limit_cpu_threads()
    generator = torch.Generator().manual_seed(params["seed"])
    optimizer = make_optimizer(model, params)
    scheduler = make_scheduler(optimizer, {**params, "_higher_is_better": objective.higher_is_better})
    autocast = autocast_for(device, params)
    stopper = EarlyStopping(params["patience"], objective.higher_is_better)
    plain = unwrapped(model)
    best_state = copy.deepcopy(plain.state_dict())
    result = FitResult(RunStatus.SUCCEEDED, batch_size=batch_size, lr=params["lr"],
                       mixed_precision="on" if isinstance(autocast, torch.autocast) else "off")
    batches = len(batch_starts(len(train), batch_size))
    average = WeightAverage(plain, params["weight_averaging"], batches) if params["weight_averaging"] > 0 else None
    judged = average.average if average is not None else model  # the weights validated, kept and saved
    callbacks.on_train_begin(params["epochs"], batches)
    try:
        for epoch in range(1, params["epochs"] + 1):
            started = time.perf_counter()
            train_loss = run_epoch(model, train, objective, optimizer, params, batch_size, epoch, generator,
                                   autocast, callbacks, average).item()
            if not math.isfinite(train_loss):
                result.status = RunStatus.DIVERGED
                result.error = (f"The training loss became {train_loss} at epoch {epoch}: the model diverged. "
                                "Try a lower learning rate or keep gradient clipping on.")
                break
            val_loss, val_metric = evaluate(judged, val, objective, autocast)
            lr = optimizer.param_groups[0]["lr"]
            record = EpochRecord(epoch, train_loss, val_loss, val_metric, objective.metric_name, lr,
                                 time.perf_counter() - started)
            result.history.append(record)
            if math.isfinite(val_metric) and stopper.update(epoch, val_metric, val_loss):
                best_state = copy.deepcopy(unwrapped(judged).state_dict())
                result.best_epoch = epoch
            callbacks.on_epoch_end(record)
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(val_metric)
            elif scheduler is not None:
                scheduler.step()
            if stopper.should_stop:
                break
    except RunCancelled as exc:
        result.status, result.error = RunStatus.CANCELLED, str(exc) or "Cancelled by the user."
    if params["restore_best"] and result.best_epoch:
        plain.load_state_dict(best_state)
    elif average is not None:
        plain.load_state_dict(average.average.state_dict())
    callbacks.on_train_end(result.status)
    return result
