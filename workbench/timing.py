"""How long a model will take to train on a table, on this machine, before it starts.

The speed comes from a short calibration, cached per process: the model itself (with the settings asked for and the
table's width) trains for a few steps on random rows of that width, and the time scales with the table's rows. Why a
calibration rather than the durations of this store's finished runs: it answers for every model before any run has
finished, it follows the settings (a wider network, more trees), and it measures the machine as it is now (a busy
machine trains slowly, and so will the run). A calibration costs well under a second for most models.

Neural runs usually stop early: the estimate assumes the best epoch comes at about EXPECTED_BEST_EPOCH and early
stopping waits its patience after it, within the planned epochs.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import replace
from typing import Any

import numpy as np

from workbench.models.params import as_dict
from workbench.models.registry import get_model, resolve_params
from workbench.tasks import Task

EXPECTED_BEST_EPOCH = 24
CALIBRATION_SECONDS = 0.3  # neural: time steps for about this long
MIN_CALIBRATION_STEPS, MAX_CALIBRATION_STEPS = 2, 50
WARM_UP_STEPS, WARM_UP_SECONDS = 8, 1.0
# Validation after each epoch (a forward pass over about a fifth as many rows as training) and the per-step weight
# averaging: about this much on top of the training steps.
EPOCH_OVERHEAD = 1.1
CLASSICAL_CALIBRATION_ROWS = 2000
CALIBRATION_TREES = 30  # forests: fitted with this many trees, and the time scaled to the trees asked for
DEFAULT_TRAIN_SHARE = 0.70
ENSEMBLE_SECONDS = 1.0  # about what an ensemble's selection over its runs' kept predictions takes


def expected_seconds(model: str, params: dict[str, Any], n_rows: int, n_columns: int, task: str,
                     train_share: float = DEFAULT_TRAIN_SHARE) -> float:
    """About how many seconds training `model` with `params` (overrides of its defaults) takes on a table of `n_rows`
    rows and `n_columns` feature columns for `task` (binary, multiclass or regression), the preprocessing excluded."""
    spec = get_model(model)
    resolved = resolve_params(model, params)
    if spec.family == "ensemble":  # a selection over stored predictions, not a fit
        return ENSEMBLE_SECONDS
    n_train = max(2, int(n_rows * train_share))
    n_features = max(1, n_columns)
    if spec.family == "neural":
        from workbench.training import batch_and_lr

        # The pace of a step does not depend on how many epochs run: one calibration serves every epoch setting.
        key = json.dumps(as_dict(replace(resolved, epochs=1, patience=0, seed=0)), sort_keys=True)
        batch_size = batch_and_lr(resolved, n_train)[0]
        step_s = _neural_step_seconds(model, key, n_features, str(task), batch_size)
        epoch_s = EPOCH_OVERHEAD * step_s * math.ceil(n_train / batch_size)
        return epoch_s * expected_epochs(resolved.epochs, resolved.patience)
    key = json.dumps(as_dict(resolved), sort_keys=True)
    return _classical_seconds_per_row(model, key, n_features, str(task), n_train) * n_train


def expected_epochs(epochs: int, patience: int) -> int:
    return epochs if patience == 0 else min(epochs, EXPECTED_BEST_EPOCH + patience)


def about(seconds: float) -> str:
    """A rough duration in words: 'about 5 s', 'about 2 min', 'about 1 h 10 min'."""
    if seconds < 1:
        return "under 1 s"
    if seconds < 60:
        return f"about {seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


def _synthetic(n_rows: int, n_features: int, task: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random rows whose target depends on a few features, non-linearly, plus noise: trees and early stopping do
    about the work they do on a real table."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, n_features)).astype("float32")
    signal = x[:, 0] + (x[:, 1] * x[:, 2] if n_features > 2 else 0) + 0.5 * rng.normal(size=n_rows)
    if task == Task.REGRESSION:
        return x, signal.astype("float64")
    if task == Task.MULTICLASS:
        return x, np.digitize(signal, [-0.7, 0.7]).astype("int64")
    return x, (signal > 0).astype("int64")


@functools.lru_cache(maxsize=256)
def _neural_step_seconds(model: str, params_key: str, n_features: int, task: str, batch_size: int) -> float:
    """Seconds per optimizer step of the real training step, at the run's batch size, on random rows: the median of
    steps timed for about CALIBRATION_SECONDS (at least MIN_CALIBRATION_STEPS), after a warm-up. The first steps of
    a model are much slower than the rest (kernels picked, memory allocated: on a 2-core CPU the default MLP's first
    four steps took 0.2 s each, then 1 ms), so the warm-up runs WARM_UP_STEPS steps or WARM_UP_SECONDS, whichever
    ends first (a big model's steps are slow anyway). A smaller batch would not do: on a CPU with bf16 autocast a
    32-row step of the same MLP took 0.19 s, a 256-row one 1 ms."""
    import torch

    from workbench.devices import autocast_for, select_device
    from workbench.tasks import Objective
    from workbench.training import Tensors, make_optimizer, step_threads, train_step

    spec = get_model(model)
    params = spec.params(**json.loads(params_key))
    x, y = _synthetic(batch_size, n_features, task)
    objective = Objective.for_training(task, y, n_classes=3)
    device = select_device(params.device)
    x_num = torch.as_tensor(x, device=device)
    x_cat = torch.zeros((batch_size, 0), dtype=torch.long, device=device)
    target = torch.as_tensor(y, device=device)
    target = target.float() if target.is_floating_point() else target.long()

    def steps(least: int, most: int, seconds: float) -> list[float]:
        times: list[float] = []
        started = time.perf_counter()
        while len(times) < most and (len(times) < least or time.perf_counter() - started < seconds):
            step_started = time.perf_counter()
            train_step(network, x_num, x_cat, target, objective, optimizer, params, autocast)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - step_started)
        return times

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = spec.build(n_features, [], objective.n_outputs, params).to(device).train()
        optimizer = make_optimizer(network, params)
        autocast = autocast_for(device, params.mixed_precision)
        # on the threads training will use (a small step trains on one)
        with step_threads(network, Tensors(x_num, x_cat, target), batch_size):
            steps(1, WARM_UP_STEPS, WARM_UP_SECONDS)
            return float(np.median(steps(MIN_CALIBRATION_STEPS, MAX_CALIBRATION_STEPS, CALIBRATION_SECONDS)))


@functools.lru_cache(maxsize=256)
def _classical_seconds_per_row(model: str, params_key: str, n_features: int, task: str, n_train: int) -> float:
    """Seconds per training row of one timed fit on random rows of the table's width (after a tiny warm-up fit that
    starts the thread pools), on the threads the real fit of `n_train` rows gets (`devices.classical_threads`: on
    two threads instead of one, gradient boosting's estimate for 6,000 rows was 3.6 s against 0.18). A forest is
    fitted with CALIBRATION_TREES trees and its time scaled to its own."""
    from workbench.devices import classical_threads

    spec = get_model(model)
    params = spec.params(**json.loads(params_key))
    trees = getattr(params, "n_estimators", None)
    if trees:
        params = replace(params, n_estimators=min(trees, CALIBRATION_TREES))
    n_rows = max(20, min(n_train, CLASSICAL_CALIBRATION_ROWS))
    with classical_threads(n_train):
        spec.build(task, params).fit(*_synthetic(50, n_features, task))
        x, y = _synthetic(n_rows, n_features, task)
        estimator = spec.build(task, params)
        started = time.perf_counter()
        estimator.fit(x, y)
        seconds = time.perf_counter() - started
    return seconds * (trees / params.n_estimators if trees else 1.0) / n_rows
