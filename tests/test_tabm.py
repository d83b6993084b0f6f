"""The `tabm` model: k members trained on the mean of their losses, predicting with the mean of their predictions
(probabilities, not logits), through every usual run path: train, score, save, load, predict, cancel."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.conftest import make_classification_frame, make_regression_frame
from tests.test_jobs import queue, start_worker, wait_for
from workbench import datasets, jobs
from workbench.models.registry import catalog, get_model, resolve_params
from workbench.predict import load_model
from workbench.prepare import prepare
from workbench.runconfig import RunConfig
from workbench.runner import execute, load_test_predictions
from workbench.store import RunStatus
from workbench.tasks import Objective, Task
from workbench.training import predict_outputs

TARGETS = {"binary": "label", "multiclass": "label", "regression": "y"}
# Smaller than the defaults (32 members of 3 x 512, checked in the form's test): a second or two per run here
SMALL = {"epochs": 30, "k": 8, "width": 64}


def messy_table(task: str, n: int = 240) -> pd.DataFrame:
    """The shared learnable tables with numbers missing, a unicode category and a date column."""
    frame = make_regression_frame(n) if task == "regression" else \
        make_classification_frame(n, n_classes=2 if task == "binary" else 3)
    rng = np.random.default_rng(1)
    frame.loc[rng.random(n) < 0.15, "x2"] = np.nan
    frame["colour"] = frame["colour"].replace({"green": "grün 緑"})
    frame["signup"] = (pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")) \
        .strftime("%Y-%m-%d")
    return frame


@dataclass
class TrainedRun:
    task: str
    frame: pd.DataFrame
    config: RunConfig
    outcome: object
    run_dir: Path
    predictions_path: Path


@pytest.fixture(scope="module", params=list(TARGETS))
def trained(request, tmp_path_factory) -> TrainedRun:
    task = request.param
    frame = messy_table(task)
    config = RunConfig("d", TARGETS[task], "tabm", params=SMALL)
    folder = tmp_path_factory.mktemp(f"tabm-{task}")
    outcome = execute(config, frame, folder / "run", predictions_path=folder / "test.npz")
    assert outcome.status == RunStatus.SUCCEEDED, outcome.error
    return TrainedRun(task, frame, config, outcome, folder / "run", folder / "test.npz")


def test_a_run_on_messy_data_beats_the_trivial_model_with_an_interval(trained):
    outcome = trained.outcome
    assert outcome.task == trained.task and outcome.epochs_run >= 1
    metric = outcome.primary_metric
    test, baseline = outcome.metrics["test"][metric], outcome.baseline["test"][metric]
    assert (test < baseline) if trained.task == "regression" else (test > baseline), (test, baseline)
    low, high = outcome.intervals["test"][metric]
    assert low <= test <= high
    assert outcome.params["k"] == SMALL["k"] and outcome.params["n_blocks"] == 3  # as they ran


def test_the_saved_run_predicts_its_test_rows_as_training_did(trained):
    """Save, load, predict: the loaded model's predictions of the test rows are the ones training scored."""
    y, at_training = load_test_predictions(trained.predictions_path)
    spec = get_model("tabm")
    prepared = prepare(trained.frame, trained.config.target, trained.task, [], trained.config.split,
                       trained.config.prep, spec.family, spec.categorical)
    rows = trained.frame.loc[prepared.row_ids["test"]].drop(columns=[trained.config.target])
    predicted = load_model(trained.run_dir).predict(rows)
    if trained.task == "regression":
        loaded = predicted["prediction"].to_numpy()
    else:
        loaded = predicted[[c for c in predicted.columns if c.startswith("proba_")]].to_numpy()
    np.testing.assert_allclose(loaded, at_training, rtol=1e-5, atol=1e-6)
    objective = Objective.from_config(load_model(trained.run_dir).config)
    assert objective.score(y, loaded)[trained.outcome.primary_metric] == \
        pytest.approx(trained.outcome.metrics["test"][trained.outcome.primary_metric])


def member_outputs(trained: TrainedRun) -> tuple[np.ndarray, np.ndarray, Objective]:
    """Each member's outputs on the first rows, (n, k, n_outputs), and the loaded model's predictions of them."""
    model = load_model(trained.run_dir)
    rows = trained.frame.drop(columns=[trained.config.target]).head(60)
    x_num, x_cat = model.preprocessor.transform(rows)
    outputs = predict_outputs(model.model, torch.as_tensor(x_num), torch.as_tensor(x_cat)).numpy()
    return outputs, model.predict_proba(rows), Objective.from_config(model.config)


def test_the_members_differ_and_the_prediction_is_the_mean_of_their_probabilities(trained):
    outputs, predictions, objective = member_outputs(trained)
    assert outputs.shape[:2] == (60, SMALL["k"])
    spread = outputs.std(axis=1).mean() / (np.abs(outputs).mean() + 1e-9)
    assert spread > 0.01, f"the members collapsed into one (relative spread {spread:.4f})"
    if trained.task == "regression":
        expected = outputs[:, :, 0].mean(axis=1) * objective.y_std + objective.y_mean
    elif trained.task == "binary":
        p = (1 / (1 + np.exp(-outputs[:, :, 0]))).mean(axis=1)
        expected = np.stack([1 - p, p], axis=1)
    else:
        exp = np.exp(outputs - outputs.max(axis=2, keepdims=True))
        expected = (exp / exp.sum(axis=2, keepdims=True)).mean(axis=1)
    np.testing.assert_allclose(predictions, expected, rtol=1e-6, atol=1e-7)


# -- the Objective on an ensemble's outputs ------------------------------------------------------------------------

member_logits = st.integers(1, 6).flatmap(lambda n: st.integers(1, 8).flatmap(lambda k: st.integers(2, 5).flatmap(
    lambda c: arrays(np.float64, (n, k, c), elements=st.floats(-30, 30)))))


def objective_for(task: str, n_classes: int) -> Objective:
    return Objective(Task(task), n_classes, y_mean=3.0, y_std=2.0)


@settings(max_examples=60, deadline=None)
@given(logits=member_logits, task=st.sampled_from(list(TARGETS)))
def test_ensemble_predictions_are_the_mean_of_the_members_predictions(logits, task):
    if task != "multiclass":
        logits = logits[:, :, :1]
    objective = objective_for(task, logits.shape[2])
    members = np.stack([objective.predictions(logits[:, j]) for j in range(logits.shape[1])], axis=1)
    np.testing.assert_allclose(objective.predictions(logits), members.mean(axis=1), rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(logits=member_logits, task=st.sampled_from(list(TARGETS)), seed=st.integers(0, 2**16))
def test_the_training_loss_is_the_mean_of_the_members_losses(logits, task, seed):
    if task != "multiclass":
        logits = logits[:, :, :1]
    objective = objective_for(task, logits.shape[2])
    rng = np.random.default_rng(seed)
    n = logits.shape[0]
    y = torch.as_tensor(rng.normal(size=n) if task == "regression" else rng.integers(0, max(2, logits.shape[2]), n))
    output = torch.as_tensor(logits, dtype=torch.float32)
    each = torch.stack([objective.loss(output[:, j], y) for j in range(output.shape[1])])
    assert objective.loss(output, y).item() == pytest.approx(each.mean().item(), rel=1e-5, abs=1e-6)


def test_the_metric_judges_the_mean_probability_not_the_mean_logit():
    """One confident member and three mildly against: the mean logit says yes, the mean probability says no."""
    logits = torch.tensor([[[8.0], [-1.0], [-1.0], [-1.0]]])
    assert logits.mean().item() > 0
    binary = Objective(Task.BINARY)
    assert binary.metric(logits, torch.tensor([0])).item() == 1.0
    assert binary.predictions(logits.numpy())[0, 1] == pytest.approx((1 / (1 + np.exp(-8.0)) + 3 / (1 + np.e)) / 4)
    # multiclass: class 0 wins on mean logits (4 > 2), class 1 on mean probabilities
    multi = torch.tensor([[[24.0, 0.0, 0.0], [-4.0, 0.0, -9.0], [-4.0, 0.0, -9.0], [0.0, 8.0, 0.0]]])
    assert multi.mean(dim=1).argmax().item() == 0
    assert Objective(Task.MULTICLASS, 3).metric(multi, torch.tensor([1])).item() == 1.0


# -- the form, the estimates, cancelling ---------------------------------------------------------------------------


def test_the_form_schema_has_a_label_and_help_for_every_setting():
    entry = next(e for e in catalog() if e["name"] == "tabm")
    assert entry["family"] == "neural" and entry["when_to_use"] and set(entry["tasks"]) == set(TARGETS)
    names = {p["name"]: p for p in entry["params"]}
    assert {"k", "width", "n_blocks", "dropout", "architecture", "numeric_embeddings", "lr", "epochs"} <= set(names)
    assert all(p["label"] and p["help"] for p in names.values())
    assert {p["name"] for p in entry["params"] if not p["advanced"]} == {"lr", "epochs", "patience", "k", "width"}
    defaults = resolve_params("tabm", {})
    assert (defaults.k, defaults.width, defaults.n_blocks, defaults.dropout, defaults.lr, defaults.weight_decay,
            defaults.patience) == (32, 512, 3, 0.1, 2e-3, 3e-4, 16)


@pytest.mark.parametrize("overrides", [{"architecture": "tabm-mini"}, {"numeric_embeddings": "periodic"}])
def test_the_advanced_choices_train_and_reload(overrides, tmp_path):
    frame = messy_table("binary", 120)
    config = RunConfig("d", "label", "tabm", params={"epochs": 2, "k": 4, "width": 16, **overrides})
    outcome = execute(config, frame, tmp_path / "run")
    assert outcome.status == RunStatus.SUCCEEDED, outcome.error
    probabilities = load_model(tmp_path / "run").predict_proba(frame.drop(columns=["label"]))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_the_memory_estimate_does_not_refuse_a_1000_row_table_and_the_time_estimate_is_a_number():
    from workbench import memory, timing
    from workbench.runner import validate_config

    frame = messy_table("multiclass", 1000)
    config = RunConfig("d", "label", "tabm")
    resolved = validate_config(config, frame)  # would raise UserError if refused
    spec = get_model("tabm")
    estimate = memory.estimate(spec, resolved.hyperparameters, memory.table_shapes(frame, config, spec, resolved.task))
    assert estimate.total < 512 * 2**20, estimate
    seconds = timing.expected_seconds("tabm", {}, 1000, 4, "multiclass")
    assert np.isfinite(seconds) and seconds > 0


def test_cancel_stops_a_tabm_run_in_seconds_and_keeps_its_history(store, home):
    frame = make_classification_frame(2000)
    dataset_id = datasets.add_dataset(store, frame.to_csv(index=False).encode(), "t.csv").dataset.id
    run_id = queue(store, dataset_id, "tabm", epochs=10_000, patience=0, k=8, width=64, batch_size=32)
    worker = start_worker(home)
    try:
        wait_for(lambda: store.get_run(run_id, with_epochs=False).epochs_done >= 1, timeout=120)
        asked = time.monotonic()
        jobs.cancel_run(store, run_id)
        run = wait_for(lambda: (r := store.get_run(run_id)).status == RunStatus.CANCELLED and r, timeout=30)
        assert time.monotonic() - asked < 10
        assert run.epochs and not (store.settings.runs_dir / run_id).exists()
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_the_train_page_shows_the_tabm_form_with_plain_labels_and_a_time_estimate(store, monkeypatch):
    from tests.test_pages import customers, page, texts

    monkeypatch.setattr(jobs.LocalExecutor, "ensure_running", lambda self: False)
    datasets.add_dataset(store, customers().to_csv(index=False).encode(), "tiny.csv")
    at = page("train").run()
    at.selectbox(key="model").select("tabm").run()
    assert not at.exception, at.exception
    labels = [w.label for w in at.number_input]
    assert {"Learning rate", "Ensemble members", "Layer width"} <= set(labels) and "k" not in labels
    assert "Expected training time on this table" in texts(at.caption)
