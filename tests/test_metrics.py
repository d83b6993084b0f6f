"""Metrics agree with scikit-learn; curves are bounded in size."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from workbench import metrics


def test_binary_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p1 = np.clip(y * 0.6 + rng.random(500) * 0.5, 0, 1)
    proba = np.stack([1 - p1, p1], axis=1)
    got = metrics.classification_metrics(y, proba, 2)
    predicted = proba.argmax(1)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert got["f1"] == pytest.approx(skm.f1_score(y, predicted, average="macro"))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    assert set(got) == {"accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}


def test_multiclass_auc_is_one_vs_rest():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    proba = rng.dirichlet([1, 1, 1], 300)
    proba[np.arange(300), y] += 0.5
    proba /= proba.sum(1, keepdims=True)
    got = metrics.classification_metrics(y, proba, 3)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))


def test_regression_metrics_and_residuals():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([1.5, 2.0, 2.5, 4.0])
    got = metrics.regression_metrics(y, predicted)
    assert got["rmse"] == pytest.approx(np.sqrt(0.125)) and got["mae"] == pytest.approx(0.25)
    curves = metrics.regression_curves(y, predicted)
    assert curves["residual"] == [-0.5, 0.0, 0.5, 0.0]


def test_curves_are_thinned_and_confusion_matrix_is_complete():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 5000)
    proba = rng.dirichlet([1, 1, 1], 5000)
    curves = metrics.classification_curves(y, proba, ["a", "b", "c"])
    assert np.sum(curves["confusion_matrix"]) == 5000
    assert [c["label"] for c in curves["roc"]] == ["a", "b", "c"]
    assert all(len(c["fpr"]) <= metrics.MAX_CURVE_POINTS for c in curves["roc"])
    assert len(metrics.regression_curves(rng.random(5000), rng.random(5000))["actual"]) == metrics.MAX_RESIDUAL_POINTS
