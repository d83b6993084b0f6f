"""The trainer: reproducible on the CPU, early stopping, divergence, cancellation, out-of-memory retry."""

from __future__ import annotations

import copy
import json
import math
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import pytest
import torch

from workbench import devices, tasks, training
from workbench.callbacks import Callback, RunCancelled, TrainerState, WeightAveraging
from workbench.devices import autocast_for, cpu_has_native_bf16, select_device
from workbench.errors import UserError
from workbench.models.mlp import MLP, MLPParams
from workbench.models.params import as_dict
from workbench.models.registry import resolve_params
from workbench.runconfig import RunConfig
from workbench.runner import execute
from workbench.tasks import Objective
from workbench.training import Tensors, batch_and_lr, evaluate, fit


def tensors(n=400, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] - x[:, 1] > 0).astype("int64")
    return Tensors.from_arrays(x * scale, np.zeros((n, 0), dtype="int64"), y, torch.device("cpu"))


def train_mlp(params_override=None, callbacks=(), train=None, val=None, task="binary"):
    params = resolve_params("mlp", {"epochs": 8, "hidden_sizes": "16", **(params_override or {})})
    torch.manual_seed(params.seed)
    model = MLP(4, [], 1, params)
    return model, fit(model, train or tensors(), val or tensors(seed=1), Objective(task), params, callbacks)


def test_seeded_cpu_runs_are_reproducible(binary_frame, tmp_path):
    config = RunConfig("d", "label", "mlp", params={"epochs": 5, "seed": 3})
    a = execute(config, binary_frame, tmp_path / "a")
    b = execute(config, binary_frame, tmp_path / "b")
    assert [r.train_loss for r in a.history] == [r.train_loss for r in b.history]
    assert a.metrics == b.metrics
    c = execute(RunConfig("d", "label", "mlp", params={"epochs": 5, "seed": 4}), binary_frame, tmp_path / "c")
    assert [r.train_loss for r in c.history] != [r.train_loss for r in a.history]


def test_history_has_one_record_per_epoch():
    _, result = train_mlp()
    assert result.status == "succeeded"
    assert [r.epoch for r in result.history] == list(range(1, 9))
    record = result.history[-1]
    assert record.metric_name == "accuracy" and 0 <= record.val_metric <= 1
    assert record.lr == pytest.approx(MLPParams.lr) and record.seconds > 0
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_early_stopping_stops_and_restores_the_best_weights():
    # Random labels: validation cannot keep improving, so patience ends the run early.
    rng = np.random.default_rng(0)
    noise = Tensors.from_arrays(rng.normal(size=(300, 4)).astype("float32"), np.zeros((300, 0), "int64"),
                                rng.integers(0, 2, 300), torch.device("cpu"))
    model, result = train_mlp({"epochs": 200, "patience": 3}, train=noise)
    assert len(result.history) < 200
    assert len(result.history) == result.best_epoch + 3
    best = max(result.history, key=lambda r: (r.val_metric, -r.val_loss))
    assert best.epoch == result.best_epoch


def test_nan_loss_ends_diverged():
    huge = tensors(scale=1e30)
    _, result = train_mlp({"lr": 1.0, "optimizer": "sgd", "grad_clip": 0.0}, train=huge, val=huge)
    assert result.status == "diverged"
    assert "diverged" in result.error and "learning rate" in result.error


def test_diverged_run_through_the_runner_saves_nothing(binary_frame, tmp_path, monkeypatch):
    monkeypatch.setattr(tasks.Objective, "loss", lambda self, output, y, *smoothing: output.sum() * float("nan"))
    outcome = execute(RunConfig("d", "label", "mlp", params={"epochs": 5}), binary_frame, tmp_path / "run")
    assert outcome.status == "diverged" and outcome.epochs_run == 0
    assert "diverged" in outcome.error
    assert not (tmp_path / "run").exists()


class CancelAfter(Callback):
    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_end(self, record):
        if record.epoch >= self.epochs:
            raise RunCancelled("Cancelled by the user.")


def test_cancel_from_a_callback_keeps_the_history():
    _, result = train_mlp({"epochs": 50}, callbacks=[CancelAfter(2)])
    assert result.status == "cancelled"
    assert [r.epoch for r in result.history] == [1, 2]


class CountBatches(Callback):
    def __init__(self):
        self.begin, self.batches = None, 0

    def on_train_begin(self, total_epochs, batches_per_epoch):
        self.begin = (total_epochs, batches_per_epoch)

    def on_batch_end(self, epoch, batch):
        self.batches += 1


def test_progress_callbacks_see_every_batch():
    counter = CountBatches()
    train_mlp({"epochs": 3, "batch_size": 100}, callbacks=[counter])
    assert counter.begin == (3, 4)
    assert counter.batches == 12


def test_out_of_memory_retries_with_a_smaller_batch(monkeypatch):
    real_fit, sizes = training._fit, []

    def flaky(model, train, val, objective, params, batch_size, callbacks):
        sizes.append(batch_size)
        if batch_size > 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real_fit(model, train, val, objective, params, batch_size, callbacks)

    monkeypatch.setattr(training, "_fit", flaky)
    _, result = train_mlp({"batch_size": 256, "epochs": 2})
    assert sizes == [256, 128, 64]
    assert result.status == "succeeded" and result.batch_size == 64


def test_automatic_batch_size_grows_with_the_rows_and_scales_the_learning_rate():
    params = resolve_params("mlp", {"lr": 0.002})
    assert params.batch_size == 0
    assert batch_and_lr(params, 8_191) == (256, 0.002)
    assert batch_and_lr(params, 8_192) == (512, 0.004)
    assert batch_and_lr(params, 150_000) == (512, 0.004)
    assert batch_and_lr(params, 1_000_000) == (1024, pytest.approx(0.004))
    assert batch_and_lr(replace(params, batch_size=300), 1_000_000) == (300, 0.002)  # a set size is kept as set


def test_automatic_batch_size_keeps_16_updates_per_epoch_on_small_tables():
    params = resolve_params("mlp", {"lr": 0.002})
    assert batch_and_lr(params, 4096) == (256, 0.002)
    assert batch_and_lr(params, 2000) == (64, 0.002)  # 2000 / 16 = 125 rows, rounded down to a power of two
    assert batch_and_lr(params, 400) == (32, 0.002)  # never below 32 rows
    assert batch_and_lr(params, 20) == (20, 0.002)  # a tiny table is one batch


def test_weight_average_fades_the_start_and_then_follows_with_its_horizon():
    model = torch.nn.Linear(2, 1)
    torch.nn.init.zeros_(model.weight)
    average = WeightAveraging(horizon_epochs=0.5)
    state = TrainerState(model, None, None, None, batch_size=1, batches_per_epoch=200, judged=model)
    average.bind(state)
    average.on_train_begin(total_epochs=10, batches_per_epoch=200)  # about 100 updates
    assert average.decay == pytest.approx(0.99)
    assert state.judged is average.average  # the average is what each epoch validates
    torch.nn.init.ones_(model.weight)
    average.on_batch_end(1, 0)  # the first updates use a short horizon: decay (1 + 1) / (10 + 1)
    assert average.average.weight.detach() == pytest.approx(torch.full((1, 2), 9 / 11))
    for batch in range(2000):
        average.on_batch_end(1, batch)
    assert average.average.weight.detach() == pytest.approx(torch.ones((1, 2)))
    assert model.weight.requires_grad and not average.average.weight.requires_grad
    torch.nn.init.zeros_(model.weight)
    average.on_train_end("succeeded")  # the average is what the run keeps
    assert model.weight.detach() == pytest.approx(torch.ones((1, 2)))


@pytest.mark.parametrize("restore_best", [True, False])
def test_the_weights_kept_are_the_weights_that_were_validated(restore_best):
    """With weight averaging the average is validated, so the average (best or last) is what comes back."""
    val = tensors(seed=1)
    model, result = train_mlp({"epochs": 6, "weight_averaging": 1.0, "restore_best": restore_best,
                               "mixed_precision": "off"}, val=val)
    kept = result.history[result.best_epoch - 1] if restore_best else result.history[-1]
    val_loss, _ = evaluate(model, val, Objective("binary"), nullcontext())
    assert val_loss == pytest.approx(kept.val_loss, rel=1e-5)
    _, unaveraged = train_mlp({"epochs": 6, "weight_averaging": 0.0, "mixed_precision": "off"}, val=val)
    assert [r.val_loss for r in unaveraged.history] != [r.val_loss for r in result.history]


def test_mixed_precision_auto_is_on_for_cpus_with_native_bf16(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_params("mlp", {}).mixed_precision == "auto"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert isinstance(autocast_for(cpu, "auto"), torch.autocast)
    assert not isinstance(autocast_for(cpu, "off"), torch.autocast)
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert not isinstance(autocast_for(cpu, "auto"), torch.autocast)
    assert isinstance(autocast_for(cpu, "on"), torch.autocast)


def test_a_run_records_the_batch_size_learning_rate_and_precision_it_used():
    params = resolve_params("mlp", {"epochs": 1, "lr": 0.01, "hidden_sizes": "16"})
    result = fit(MLP(4, [], 1, params), tensors(n=20_000), tensors(seed=1), Objective("binary"), params)
    assert (params.batch_size, params.lr, params.mixed_precision) == (0, 0.01, "auto")  # the caller's, unchanged
    assert (result.batch_size, result.lr) == (512, 0.02)
    ran = result.ran(params)
    assert (ran.batch_size, ran.lr, ran.mixed_precision) == (512, 0.02, result.mixed_precision)
    assert replace(ran, batch_size=0, lr=0.01, mixed_precision="auto") == params  # nothing else differs
    assert result.history[0].lr == 0.02
    assert result.mixed_precision == ("on" if cpu_has_native_bf16() else "off")
    _, result = train_mlp({"epochs": 1, "mixed_precision": "off"})
    assert result.mixed_precision == "off"


def test_cuda_asked_without_a_gpu_is_a_user_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(UserError, match="no"):
        select_device("cuda")


def test_regression_objective_maps_back_to_target_units():
    objective = Objective("regression", y_mean=10.0, y_std=2.0)
    output = torch.tensor([[0.0], [1.0]])
    assert math.isclose(objective.metric(output, torch.tensor([10.0, 12.0])).item(), 0.0, abs_tol=1e-6)


@pytest.mark.parametrize("max_norm", [0.01, 100.0])  # clipped, and left alone
def test_clip_grad_norm_matches_the_library(max_norm):
    from workbench.training import clip_grad_norm

    torch.manual_seed(0)
    ours = MLP(6, [], 3, resolve_params("mlp", {"hidden_sizes": [16, 16], "dropout": 0.0}))
    library = copy.deepcopy(ours)
    x, x_cat = torch.randn(64, 6), torch.zeros((64, 0), dtype=torch.long)
    for model in (ours, library):
        model(x, x_cat).square().mean().backward()
    norm = torch.nn.utils.clip_grad_norm_(library.parameters(), max_norm)
    clip_grad_norm(torch.optim.AdamW(ours.parameters()), max_norm)
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours.parameters(), library.parameters(), strict=True))
    clipped = torch.nn.utils.get_total_norm([p.grad for p in ours.parameters()])
    assert math.isclose(clipped, min(norm, max_norm), rel_tol=1e-4)


class PruneAt(Callback):
    """A pruning rule as the search issue will add one: it reads the trainer's state and ends the run."""

    def __init__(self, epoch):
        self.epoch, self.seen = epoch, []

    def on_epoch_end(self, record):
        self.seen.append((len(self.trainer.history), self.trainer.best_epoch, self.trainer.batch_size))
        if record.epoch == self.epoch:
            self.trainer.should_stop = True


def test_a_callback_sees_the_trainer_state_and_can_end_training():
    pruner = PruneAt(3)
    _, result = train_mlp({"epochs": 50, "batch_size": 100}, callbacks=[pruner])
    assert result.status == "succeeded" and [r.epoch for r in result.history] == [1, 2, 3]
    assert [seen[0] for seen in pruner.seen] == [1, 2, 3]
    assert all(1 <= best <= epochs and batch == 100 for epochs, best, batch in pruner.seen)


def test_callbacks_that_act_per_epoch_are_not_called_per_step(monkeypatch):
    """The step loop calls on_batch_end only on the callbacks that override it (here: none, weight averaging off)."""
    calls = []
    monkeypatch.setattr(Callback, "on_batch_end", lambda self, epoch, batch: calls.append(type(self).__name__))
    _, result = train_mlp({"epochs": 3, "weight_averaging": 0, "lr_schedule": "cosine", "patience": 2},
                          callbacks=[PruneAt(99)])
    assert len(result.history) == 3 and calls == []


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_learning_rate_schedules(schedule):
    rng = np.random.default_rng(0)
    noise, other_noise = (Tensors.from_arrays(rng.normal(size=(300, 4)).astype("float32"), np.zeros((300, 0), "int64"),
                                              rng.integers(0, 2, 300), torch.device("cpu")) for _ in range(2))
    # labels that are noise on both sides: nothing learned carries over, so validation stops improving
    _, result = train_mlp({"epochs": 12, "patience": 0, "lr_schedule": schedule, "lr": 0.01}, train=noise,
                          val=other_noise)
    rates = [r.lr for r in result.history]
    assert rates[0] == pytest.approx(0.01) and all(b <= a for a, b in zip(rates, rates[1:], strict=False))
    if schedule == "cosine":  # half way down at the middle of the planned epochs
        assert rates[6] == pytest.approx(0.005)
    else:  # halved after validation stopped improving for max(2, patience // 4) epochs
        assert set(rates) <= {0.01 / 2**k for k in range(12)} and rates[-1] < 0.01


# -- expected training time (workbench.timing) ------------------------------------------------------------------------


def test_expected_time_grows_with_the_table_and_the_epochs():
    """The estimate's shape (how close it comes to a real run is measured by `make bench`'s estimates part: a timed
    assertion on a shared 2-core machine would fail by load, not by a bug)."""
    from workbench import timing

    for model, params in (("logistic_regression", {}), ("mlp", {"epochs": 4, "patience": 0})):
        small, large = (timing.expected_seconds(model, params, n, 6, "binary") for n in (2_000, 200_000))
        assert 0 < small < large < float("inf"), (model, small, large)
    few, many = (timing.expected_seconds("mlp", {"epochs": e, "patience": 0}, 5_000, 6, "binary") for e in (4, 40))
    assert many == pytest.approx(10 * few)
    assert timing.expected_epochs(200, 16) == timing.EXPECTED_BEST_EPOCH + 16 and timing.expected_epochs(10, 16) == 10


def test_the_estimate_times_a_classical_fit_on_the_threads_its_real_fit_gets(monkeypatch):
    """Below devices.SMALL_TABLE_ROWS a scikit-learn fit runs on one thread; timed on two, gradient boosting's
    estimate for 6,000 rows was 20x its real fit."""
    from contextlib import contextmanager

    from workbench import timing

    asked = []

    @contextmanager
    def recorded(n_rows):
        asked.append(n_rows)
        yield

    monkeypatch.setattr(devices, "classical_threads", recorded)
    timing._classical_seconds_per_row.cache_clear()
    params = json.dumps(as_dict(resolve_params("gradient_boosting", {"max_iter": 5})))
    assert timing._classical_seconds_per_row("gradient_boosting", params, 4, "binary", 600) > 0
    assert asked == [600]
    timing._classical_seconds_per_row.cache_clear()


def test_expected_time_words():
    from workbench.timing import about

    assert [about(s) for s in (0.2, 4.6, 59, 61, 150, 3600 * 2 + 600)] == [
        "under 1 s", "about 5 s", "about 59 s", "about 1 min", "about 2 min", "about 2 h 10 min"]


def test_step_flops_count_the_matrix_products_of_a_training_step():
    params = resolve_params("mlp", {"hidden_sizes": "8", "numeric_embeddings": "none", "batch_norm": "true"})
    model = MLP(4, [], 1, params)
    model.train()
    running_mean = model.body[1].running_mean.clone()
    assert training.step_flops(model, tensors(), 32) == 3 * 2 * (4 * 8 + 8 * 1) * 32  # forward, and twice that back
    assert model.training and torch.equal(model.body[1].running_mean, running_mean)  # counting moved no statistics


def test_small_steps_train_on_one_thread_and_large_ones_on_every_thread(monkeypatch):
    """A step under devices.ONE_THREAD_BELOW_FLOPS is all barrier waits on several threads; afterwards the process
    has its threads back (scoring many rows shares them well)."""
    if devices.limit_cpu_threads() < 2:
        pytest.skip("needs 2 cores")
    seen = []

    class Threads(Callback):
        def on_epoch_end(self, record):
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    train_mlp({"epochs": 2}, callbacks=[Threads()])
    assert seen == [1, 1] and torch.get_num_threads() == before
    monkeypatch.setattr(devices, "ONE_THREAD_BELOW_FLOPS", 0.0)
    seen.clear()
    train_mlp({"epochs": 2}, callbacks=[Threads()])
    assert seen == [before, before] and torch.get_num_threads() == before
