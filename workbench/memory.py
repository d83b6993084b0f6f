"""The peak memory of a neural run, estimated before it starts, against the memory that is free for it.

A run that cannot fit is refused with one sentence that says what to change: before it is queued (from the table's
shape, in runner.validate_config) and again before training (from the prepared shapes, in runner.execute), instead
of being killed by the kernel halfway (a default transformer on 2,001 columns once reached 21.8 GB that way).

The estimate adds up the prepared data tensors and the larger of two peaks: the preparation (the column
transformations fitted on the training rows, which copy them a few times), and training: the weights (with their
gradients, the optimizer's state and the copies training keeps) plus the activations of one training step at the
batch size or of one evaluation batch, whichever is larger. Parameters are counted exactly, by building the model on PyTorch's "meta" device (shapes
only, no memory); activations come from each model's `activation_size()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil
import torch
from pandas.api import types as ptypes
from torch import nn

from workbench.errors import UserError
from workbench.models.params import NeuralParams
from workbench.models.registry import ModelSpec
from workbench.prepare import DATE_PARTS, FIT_SAMPLE_ROWS, MAX_CATEGORIES, TRANSFORM_CHUNK_ROWS, resolve_categorical
from workbench.runconfig import RunConfig
from workbench.tasks import Task
from workbench.training import batch_and_lr, evaluation_rows

BYTES_PER_VALUE = 4  # float32; int64 category codes count twice
FREE_SHARE = 0.9  # a run may plan to use this share of the free memory; the rest is left for everything else
SMALLEST_GPU_BATCH = 16  # on CUDA, training.fit halves the batch down to this when it runs out of memory
SAMPLE_ROWS = 2000  # rows of the table looked at to count the categories of a column
# Fitting the column transformations holds about this many float64 copies of the rows it is fitted on (the rows
# taken, as model input, with tie-breaking noise, and the transformers' own copies); transforming a chunk of rows
# holds its input and output about twice.
PREPARATION_COPIES = 5
CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Shapes:
    """The data as the model sees it."""

    n_columns: int  # input columns (dates count once per part)
    n_numeric: int  # width of the numeric matrix
    cardinalities: list[int]  # one embedding table per categorical column
    n_outputs: int
    n_rows: int  # rows prepared (training, validation and test)
    n_train: int
    n_evaluated: int  # rows of the largest evaluated split (validation or test)

    @property
    def n_tokens(self) -> int:
        return self.n_numeric + len(self.cardinalities)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs at its peak, by part."""

    preparation: int  # fitting the column transformations
    weights: int  # parameters, gradients, optimizer state, and the copies training keeps
    activations: int  # one training step at `batch_size` rows
    evaluation: int  # one evaluation batch
    data: int  # the prepared input tensors
    batch_size: int
    attention: int  # the part of `activations` that attention between the feature tokens takes
    n_tokens: int

    @property
    def training(self) -> int:
        return self.weights + max(self.activations, self.evaluation)

    @property
    def total(self) -> int:
        return self.data + max(self.preparation, self.training)


def table_shapes(table: pd.DataFrame, config: RunConfig, spec: ModelSpec, task: Task) -> Shapes:
    """The shapes the prepared data will about have, from the table alone (before the preparation runs): every
    column but the target and the excluded ones is taken as a feature (identifiers and free text, which preparation
    leaves out, are counted too), and a text column as a category with the values of its first rows."""
    onehot = resolve_categorical(config.prep, spec.categorical, []) == "onehot"
    head = table.head(SAMPLE_ROWS)
    n_columns, n_numeric, cardinalities = 0, 0, []
    for name in table.columns:
        if name == config.target or name in config.exclude:
            continue
        column = table[name]
        n_columns += 1
        if ptypes.is_datetime64_any_dtype(column):
            n_numeric += len(DATE_PARTS) + 1
            n_columns += len(DATE_PARTS)
        elif ptypes.is_numeric_dtype(column) or ptypes.is_bool_dtype(column):
            n_numeric += 1
        else:
            kept = min(int(head[name].nunique()) + 1, MAX_CATEGORIES)  # + missing, or the rare-category group
            if onehot:
                n_numeric += kept
            else:
                cardinalities.append(kept + 1)  # + code 0 for categories never seen in training
    n_rows = int(table[config.target].notna().sum())
    n_outputs = int(table[config.target].nunique()) if task == Task.MULTICLASS else 1
    return Shapes(n_columns, n_numeric, cardinalities, n_outputs, n_rows, max(1, int(n_rows * config.split.train)),
                  max(1, int(n_rows * max(config.split.val, config.split.test)) + 1))


def build_on_meta(spec: ModelSpec, params: NeuralParams, shapes: Shapes) -> nn.Module:
    """The model with shapes but no memory: its parameters and activation sizes can be counted for free."""
    with torch.device("meta"):
        return spec.build(shapes.n_numeric, shapes.cardinalities, shapes.n_outputs, params)


def weight_copies(params: NeuralParams) -> int:
    """The weights, their gradients, the optimizer's state (momentum; Adam's two moments), the weight average,
    the best epoch's weights, and the initial weights `fit` keeps for a retry after running out of GPU memory."""
    optimizer_state = 1 if params.optimizer == "sgd" else 2
    return 2 + optimizer_state + (params.weight_averaging > 0) + params.restore_best + 1


def estimate(spec: ModelSpec, params: NeuralParams, shapes: Shapes) -> MemoryEstimate:
    model = build_on_meta(spec, params, shapes)
    n_parameters = sum(p.numel() for p in model.parameters())
    size = model.activation_size()
    batch_size, _ = batch_and_lr(params, shapes.n_train)
    eval_rows = min(evaluation_rows(model), shapes.n_evaluated)
    codes = 2 * len(shapes.cardinalities)  # int64
    return MemoryEstimate(
        preparation=max(min(shapes.n_train, FIT_SAMPLE_ROWS) * shapes.n_columns * PREPARATION_COPIES,
                        min(shapes.n_rows, TRANSFORM_CHUNK_ROWS) * (shapes.n_columns + shapes.n_numeric) * 2)
        * 2 * BYTES_PER_VALUE,  # float64
        weights=n_parameters * BYTES_PER_VALUE * weight_copies(params),
        activations=int(batch_size * size.training * BYTES_PER_VALUE),
        evaluation=int(eval_rows * size.inference * BYTES_PER_VALUE),
        data=shapes.n_rows * (shapes.n_numeric + codes + 2) * BYTES_PER_VALUE,
        batch_size=batch_size, attention=int(batch_size * size.attention * BYTES_PER_VALUE),
        n_tokens=shapes.n_tokens)


def free_bytes(device: torch.device) -> int | None:
    """Memory free for a run on `device`: the GPU's free memory; on the CPU, the system's available memory, or less
    where a container (cgroup v2) limits this process. None where it cannot be known (Apple's MPS)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    free = psutil.virtual_memory().available
    try:
        limit = (CGROUP / "memory.max").read_text().strip()
        if limit != "max":
            free = min(free, int(limit) - int((CGROUP / "memory.current").read_text()))
    except (OSError, ValueError):  # no cgroup v2 files here
        pass
    return free


def needed_bytes(estimate: MemoryEstimate, device: torch.device, prepared: bool) -> int:
    """What the run will still take on `device`, before (`prepared` False) or after its data was prepared (on the
    CPU, training then uses the prepared arrays where they are). On CUDA only training counts (the preparation is
    on the host), and only at the smallest batch: training goes on with smaller batches after running out of GPU
    memory."""
    if device.type == "cuda":
        activations = estimate.activations * min(estimate.batch_size, SMALLEST_GPU_BATCH) // max(1, estimate.batch_size)
        return estimate.data + estimate.weights + max(activations, estimate.evaluation)
    return estimate.training if prepared else estimate.total


def check(estimate: MemoryEstimate, device: torch.device, prepared: bool = False) -> None:
    """Refuses a run that will not fit in the memory free for it, in one sentence that says what to change."""
    free = free_bytes(device)
    if free is None:
        return
    needed = needed_bytes(estimate, device, prepared)
    if needed <= FREE_SHARE * free:
        return
    parts = {
        "preparing the data": 0 if prepared else estimate.preparation,
        "the weights and the optimizer's state": estimate.weights,
        f"the activations of a batch of {estimate.batch_size:,} rows": estimate.activations,
        "an evaluation batch": estimate.evaluation,
        "the prepared data": 0 if prepared else estimate.data,
    }
    if estimate.attention > estimate.activations / 2:
        parts[f"attention between {estimate.n_tokens:,} feature tokens at a batch of {estimate.batch_size:,} rows"] = \
            parts.pop(f"the activations of a batch of {estimate.batch_size:,} rows")
    most = max(parts, key=parts.__getitem__)
    where = "GPU memory" if device.type == "cuda" else "memory"
    raise UserError(f"This run would need about {_size(needed)} of {where} but {_size(free)} is free, most of it for "
                    f"{most}; exclude some columns, pick a smaller model or set a smaller batch_size.")


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.1f} GB" if n_bytes >= 2**30 else f"{max(1, round(n_bytes / 2**20)):,} MB"
