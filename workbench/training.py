"""The trainer: fit -> run_epoch -> train_step, and evaluate. The loop only: its policies (weight averaging,
restoring the best weights, early stopping, the learning-rate schedule) are callbacks (workbench.callbacks), and
what a task learns and how it is judged is its Objective (workbench.tasks).

Data becomes tensors once and moves to the device once. A batch is a slice of a random permutation
(no DataLoader), the loss is summed on the device and read once per epoch (no host sync per step),
evaluation runs in large batches under inference_mode, and CUDA uses bf16 autocast.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from workbench.callbacks import (
    Callback,
    CallbackList,
    EarlyStopping,
    EpochRecord,
    LRSchedule,
    RestoreBestWeights,
    RunCancelled,
    TrainerState,
    WeightAveraging,
    unwrapped,
)
from workbench.devices import autocast_for, training_threads, tune_cpu_allocator
from workbench.models.params import NeuralParams
from workbench.store.entities import RunStatus
from workbench.tasks import Objective

EVAL_BATCH = 8192  # rows per evaluation batch, unless a model holds much per row (see evaluation_rows)
EVAL_MEMORY_BYTES = 256 * 2**20  # the most the activations of one evaluation batch may take
# batch_size 0 (auto): 256 rows per update, 512 from 8,192 and 1024 from 200,000 training rows, at twice the learning
# rate. On the 200,000-row benchmark task, batch 1024 at twice the learning rate reached the validation accuracy of
# batch 256 in 0.5-0.9x its time (two seeds, two target scores). On the 8 tables of 3,000-54,000 rows of the
# benchmark collection, batch 512 at twice the learning rate took 0.62x the time of batch 256 at the same score
# (-0.09% [-0.44, +0.27] mean change, 8 ties; the square-root rule's 1.41x: -0.15%, 7 ties and a loss; issue 21).
AUTO_BATCH_BY_ROWS = ((200_000, 1024), (8_192, 512), (0, 256))
AUTO_BATCH_LR_FACTOR = 2.0  # the learning rate of an automatic batch above AUTO_BATCH_BASE, times the set one
AUTO_BATCH_BASE = 256
# Under 4,096 training rows the automatic batch shrinks (down to 32 rows) to keep 16 updates per epoch. On the bundled
# samples (default MLP, mean of three splits) it moved wine 0.975 -> 0.988 and digits 0.962 -> 0.965, diabetes rmse
# 60.0 -> 57.1, breast_cancer 0.946 -> 0.938 (one test row of 86 in one split).
MIN_BATCHES_PER_EPOCH = 16
MIN_AUTO_BATCH = 32


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
class FitResult:
    status: RunStatus  # succeeded, diverged, cancelled (or failed: out of memory at the smallest batch)
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    batch_size: int = 0  # the batch size it trained with (automatic, or halved after running out of GPU memory)
    lr: float = 0.0  # the learning rate it started with (automatic batch sizes scale it)
    mixed_precision: str = "off"  # "on" when it trained under bf16 autocast
    error: str | None = None

    def ran(self, params: NeuralParams) -> NeuralParams:
        """`params` as they actually ran: with this fit's batch size, learning rate and mixed precision."""
        return replace(params, batch_size=self.batch_size, lr=self.lr, mixed_precision=self.mixed_precision)


def batch_and_lr(params: NeuralParams, n_rows: int) -> tuple[int, float]:
    """The batch size and starting learning rate a run uses: as set, or for batch_size 0, chosen from the rows."""
    if params.batch_size:
        return min(params.batch_size, n_rows), params.lr
    batch_size = next(size for rows, size in AUTO_BATCH_BY_ROWS if n_rows >= rows)
    if batch_size > AUTO_BATCH_BASE:
        return batch_size, float(f"{params.lr * AUTO_BATCH_LR_FACTOR:.4g}")
    # Small tables: at least MIN_BATCHES_PER_EPOCH updates per epoch, so that early stopping's patience (in epochs)
    # still means many updates; the learning rate is kept as set.
    fitting = 2 ** int(math.log2(max(1, n_rows // MIN_BATCHES_PER_EPOCH)))
    return min(n_rows, AUTO_BATCH_BASE, max(MIN_AUTO_BATCH, fitting)), params.lr


def parameter_groups(model: nn.Module, lr: float) -> list[dict]:
    """The model's parameters as optimizer groups: those a model learns faster (its `lr_factors()`) in groups of their
    own, whose learning rates the schedules then scale in proportion."""
    factors = model.lr_factors() if hasattr(model, "lr_factors") else {}
    faster = {id(p) for p in factors}
    groups = [{"params": [p for p in model.parameters() if id(p) not in faster], "lr": lr}]
    return groups + [{"params": [p], "lr": lr * factor} for p, factor in factors.items()]


def make_optimizer(model: nn.Module, params: NeuralParams) -> torch.optim.Optimizer:
    # Fused Adam/AdamW: one kernel for the whole update; on CUDA and, since torch 2.4, on the CPU.
    fused = {"fused": True} if next(model.parameters()).device.type in ("cuda", "cpu") else {}
    groups = parameter_groups(model, params.lr)
    if params.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=params.lr, momentum=0.9, weight_decay=params.weight_decay)
    adam = torch.optim.Adam if params.optimizer == "adam" else torch.optim.AdamW
    return adam(groups, lr=params.lr, betas=(0.9, params.adam_beta2), weight_decay=params.weight_decay, **fused)


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
               optimizer: torch.optim.Optimizer, params: NeuralParams, autocast) -> torch.Tensor:
    with autocast:
        loss = objective.loss(model(x_num, x_cat), y, params.label_smoothing)
    total = loss + params.l1 * l1_penalty(model) if params.l1 > 0 else loss
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    if params.grad_clip > 0:
        clip_grad_norm(optimizer, params.grad_clip)
    optimizer.step()
    return loss.detach()


def batch_starts(n_rows: int, batch_size: int) -> list[int]:
    """Where each batch of an epoch starts. A last batch of one row breaks batch norm and adds noise: it is folded
    into the previous batch."""
    return [s for s in range(0, n_rows, batch_size) if n_rows - s > 1 or s == 0]


def run_epoch(model: nn.Module, train: Tensors, objective: Objective, optimizer, params: NeuralParams,
              batch_size: int, epoch: int, generator: torch.Generator, autocast, callbacks: CallbackList) -> torch.Tensor:
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
        loss_sum += loss * (end - start)
        callbacks.on_batch_end(epoch, batch)
    return loss_sum / n


def evaluation_rows(model: nn.Module) -> int:
    """Rows per evaluation batch: EVAL_BATCH, or fewer where that would take more than EVAL_MEMORY_BYTES (a
    transformer over 200 feature tokens holds about 2 MB a row: 8,192 rows would take 16 GB)."""
    per_row = unwrapped(model).activation_size().inference * 4
    return int(max(1, min(EVAL_BATCH, EVAL_MEMORY_BYTES // per_row)))


@torch.inference_mode()
def predict_outputs(model: nn.Module, x_num: torch.Tensor, x_cat: torch.Tensor, autocast=None) -> torch.Tensor:
    model.eval()
    rows = evaluation_rows(model)
    outputs = []
    for start in range(0, x_num.shape[0], rows):
        with autocast or nullcontext():
            outputs.append(model(x_num[start:start + rows], x_cat[start:start + rows]).float())
    return torch.cat(outputs) if outputs else torch.zeros((0, 1))


def evaluate(model: nn.Module, data: Tensors, objective: Objective, autocast) -> tuple[float, float]:
    """Validation loss and metric, read back to the host once."""
    output = predict_outputs(model, data.x_num, data.x_cat, autocast)
    loss, metric = objective.loss(output, data.y), objective.metric(output, data.y)
    values = torch.stack([loss.float(), metric.float()]).tolist()
    return values[0], values[1]


def policies(params: NeuralParams) -> list[Callback]:
    """The trainer's policies that `params` turn on, in the order they act at each hook."""
    chosen: list[Callback] = []
    if params.weight_averaging > 0:
        chosen.append(WeightAveraging(params.weight_averaging))
    if params.restore_best:
        chosen.append(RestoreBestWeights())
    if params.patience > 0:
        chosen.append(EarlyStopping(params.patience))
    if params.lr_schedule != "none":
        chosen.append(LRSchedule(params.lr_schedule))
    return chosen


def precision(autocast) -> str:
    return "on" if isinstance(autocast, torch.autocast) else "off"


def fit(model: nn.Module, train: Tensors, val: Tensors, objective: Objective, params: NeuralParams,
        callbacks: Sequence[Callback] = ()) -> FitResult:
    """Train with the policies `params` ask for, then the given callbacks; on CUDA out of memory, retry with half
    the batch. `params` are not changed: what ran comes back in the result (see FitResult.ran)."""
    batch_size, lr = batch_and_lr(params, len(train))
    params = replace(params, lr=lr)
    initial = copy.deepcopy(model.state_dict())
    with step_threads(model, train, batch_size):
        while True:
            try:
                return _fit(model, train, val, objective, params, batch_size, callbacks)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                if batch_size <= 16:
                    return FitResult(RunStatus.FAILED, batch_size=batch_size, lr=lr,
                                     mixed_precision=precision(autocast_for(train.x_num.device,
                                                                            params.mixed_precision)),
                                     error="The GPU ran out of memory even with a batch of 16 rows; "
                                           "try a smaller model or the CPU.")
                batch_size //= 2
                model.load_state_dict(initial)


def step_threads(model: nn.Module, train: Tensors, batch_size: int):
    """The threads to train `model` on at `batch_size`: on the CPU `devices.training_threads` (one for a small step),
    on a GPU whatever the process has."""
    if train.x_num.device.type != "cpu":
        return nullcontext()
    return training_threads(step_flops(model, train, batch_size))


def step_flops(model: nn.Module, train: Tensors, batch_size: int) -> float:
    """About the floating-point operations of one training step: the forward pass's matrix products counted on two
    rows (in eval mode, so that no batch statistics move), times the batch, times 3 for the backward pass."""
    rows = min(2, len(train))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(train.x_num[:rows], train.x_cat[:rows])
    finally:
        model.train(was_training)
    return 3 * counter.get_total_flops() / rows * batch_size


def _fit(model: nn.Module, train: Tensors, val: Tensors, objective: Objective, params: NeuralParams, batch_size: int,
         callbacks: Sequence[Callback]) -> FitResult:
    device = train.x_num.device
    if device.type == "cpu":
        tune_cpu_allocator()
    generator = torch.Generator().manual_seed(params.seed)
    autocast = autocast_for(device, params.mixed_precision)
    state = TrainerState(model, make_optimizer(model, params), params, objective, batch_size,
                         batches_per_epoch=len(batch_starts(len(train), batch_size)), judged=model)
    hooks = CallbackList([*policies(params), *callbacks])
    hooks.bind(state)
    result = FitResult(RunStatus.SUCCEEDED, state.history, batch_size=batch_size, lr=params.lr,
                       mixed_precision=precision(autocast))
    best_score = None
    hooks.on_train_begin(params.epochs, state.batches_per_epoch)
    try:
        for epoch in range(1, params.epochs + 1):
            started = time.perf_counter()
            train_loss = run_epoch(model, train, objective, state.optimizer, params, batch_size, epoch, generator,
                                   autocast, hooks).item()
            if not math.isfinite(train_loss):
                result.status = RunStatus.DIVERGED
                result.error = (f"The training loss became {train_loss} at epoch {epoch}: the model diverged. "
                                "Try a lower learning rate or keep gradient clipping on.")
                break
            val_loss, val_metric = evaluate(state.judged, val, objective, autocast)
            record = EpochRecord(epoch, train_loss, val_loss, val_metric, objective.metric_name,
                                 state.optimizer.param_groups[0]["lr"], time.perf_counter() - started)
            state.history.append(record)
            score = (val_metric if objective.higher_is_better else -val_metric, -val_loss)
            if math.isfinite(val_metric) and (best_score is None or score > best_score):
                best_score, state.best_epoch = score, epoch
            hooks.on_epoch_end(record)
            if state.should_stop:
                break
    except RunCancelled as exc:
        result.status, result.error = exc.status, str(exc) or "Cancelled by the user."
    result.best_epoch = state.best_epoch
    hooks.on_train_end(result.status)
    return result
