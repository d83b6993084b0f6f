"""Task semantics in one place: what the network's outputs mean, how they are judged, and that every view of it
(the trainer's metric on outputs, the scores of predictions, the direction compare uses) agrees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.tasks import Objective, Task, baseline_name, higher_is_better, primary_metric


def outputs_and_targets(task: str, n: int = 300, seed: int = 0, n_classes: int = 4):
    rng = np.random.default_rng(seed)
    if task == "regression":
        y = rng.normal(50, 20, size=n)
        return Objective.for_training(task, y), rng.normal(scale=3, size=(n, 1)).astype("float32"), y
    k = 2 if task == "binary" else n_classes
    y = rng.integers(0, k, size=n)
    outputs = rng.normal(scale=4, size=(n, 1 if task == "binary" else k)).astype("float32")
    outputs[::7] *= 1e4  # huge logits must still give probabilities
    return Objective.for_training(task, y, k), outputs, y


@pytest.mark.parametrize("task", list(Task))
@pytest.mark.parametrize("seed", range(3))
def test_the_metric_on_outputs_is_the_metric_of_the_predictions(task, seed):
    """What the trainer validates each epoch (on device tensors) is the primary metric that the run is scored
    by (on the predictions saved and shown), and the objective's direction is that metric's direction."""
    objective, outputs, y = outputs_and_targets(task, seed=seed)
    predictions = objective.predictions(outputs)
    on_outputs = objective.metric(torch.as_tensor(outputs), torch.as_tensor(y)).item()
    scores = objective.score(y, predictions)
    assert on_outputs == pytest.approx(scores[objective.metric_name], rel=1e-4)
    assert objective.metric_name == primary_metric(task)
    assert objective.higher_is_better == higher_is_better(objective.metric_name) == (task != "regression")
    assert outputs.shape[1] == objective.n_outputs
    if task == "regression":
        assert predictions.shape == (len(y),)
    else:
        assert predictions.shape == (len(y), objective.n_classes) and np.isfinite(predictions).all()
        np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-9)


def test_regression_learns_the_standardised_target_and_predicts_in_its_units():
    y = np.array([10.0, 12.0, 14.0, 16.0])
    objective = Objective.for_training("regression", y)
    assert (objective.y_mean, objective.y_std) == (13.0, pytest.approx(np.std(y)))
    standardised = torch.as_tensor((y - 13.0) / np.std(y), dtype=torch.float32).unsqueeze(1)
    assert objective.loss(standardised, torch.as_tensor(y, dtype=torch.float32)).item() == pytest.approx(0, abs=1e-12)
    np.testing.assert_allclose(objective.predictions(standardised.numpy()), y, rtol=1e-6)
    assert Objective.for_training("regression", np.full(5, 3.0)).y_std == 1.0  # a constant target: no division by 0


@pytest.mark.parametrize("task", list(Task))
def test_the_saved_config_gives_the_same_objective(task):
    objective, _, _ = outputs_and_targets(task)
    classes = None if task == "regression" else [f"c{k}" for k in range(objective.n_classes)]
    assert Objective.from_config({**objective.to_config(), "classes": classes}) == objective


def test_baseline_is_majority_class_and_training_mean():
    y_train = np.array([0, 0, 0, 1])
    y_test = np.array([0, 1, 0, 0])
    assert Objective("binary").baseline(y_train, y_test)["accuracy"] == 0.75
    regression = Objective("regression").baseline(np.array([1.0, 3.0]), np.array([2.0, 2.0]))
    assert regression["rmse"] == 0.0 and regression["mae"] == 0.0
    assert (baseline_name("regression"), baseline_name("multiclass")) == ("mean", "majority class")


@pytest.mark.parametrize("metric,higher", [("accuracy", True), ("roc_auc", True), ("r2", True), ("rmse", False),
                                           ("log_loss", False), ("val_loss", False), ("max_error", False)])
def test_metric_directions(metric, higher):
    assert higher_is_better(metric) is higher


def test_an_estimator_that_never_saw_a_class_still_gives_every_class_a_column():
    from sklearn.linear_model import LogisticRegression

    x = np.arange(20, dtype="float64").reshape(-1, 1)
    estimator = LogisticRegression().fit(x, np.where(x[:, 0] < 10, 0, 2))  # class 1 of 3 is not in these rows
    proba = Objective("multiclass", 3).estimator_predictions(estimator, x)
    assert proba.shape == (20, 3) and (proba[:, 1] == 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_a_forest_built_on_every_thread_predicts_the_same_rows_the_same_every_time(task):
    from workbench.models.classical import RandomForestParams, build_random_forest

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 8))
    y = x @ rng.normal(size=8) + rng.normal(size=3000)
    if task != "regression":
        y = np.digitize(y, np.quantile(y, [0.33, 0.66]))
    forest = build_random_forest(task, RandomForestParams(n_estimators=50)).fit(x, y)
    objective = Objective(task, 0 if task == "regression" else 3)
    first = objective.estimator_predictions(forest, x)
    for _ in range(10):
        assert np.array_equal(objective.estimator_predictions(forest, x), first)
