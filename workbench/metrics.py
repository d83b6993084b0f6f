"""scikit-learn metrics as plain dicts and curve points for the charts (which apply to a task: workbench.tasks)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

MAX_CURVE_POINTS = 200
MAX_RESIDUAL_POINTS = 1000


def classification_metrics(y: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    """y: class indices; proba: (n, n_classes) probabilities."""
    predicted = proba.argmax(axis=1)
    labels = list(range(n_classes))
    out = {
        "accuracy": skm.accuracy_score(y, predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(y, predicted),
        "precision": skm.precision_score(y, predicted, average="macro", labels=labels, zero_division=0),
        "recall": skm.recall_score(y, predicted, average="macro", labels=labels, zero_division=0),
        "f1": skm.f1_score(y, predicted, average="macro", labels=labels, zero_division=0),
        "log_loss": skm.log_loss(y, np.clip(proba, 1e-15, 1), labels=labels),
    }
    present = np.unique(y)
    if len(present) >= 2:
        if n_classes == 2:
            out["roc_auc"] = skm.roc_auc_score(y, proba[:, 1])
        elif len(present) == n_classes:
            out["roc_auc"] = skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels)
    return {k: float(v) for k, v in out.items()}


def regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, predicted))),
        "mae": float(skm.mean_absolute_error(y, predicted)),
        "r2": float(skm.r2_score(y, predicted)),
    }


def _thin(*arrays: np.ndarray) -> list[list[float]]:
    n = len(arrays[0])
    keep = np.unique(np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS)).round().astype(int)) if n else []
    return [np.asarray(a)[keep].round(5).tolist() for a in arrays]


def classification_curves(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Confusion matrix; ROC and PR points for the positive class (binary) or each class one-vs-rest."""
    predicted = proba.argmax(axis=1)
    curves: dict[str, Any] = {
        "labels": classes,
        "confusion_matrix": skm.confusion_matrix(y, predicted, labels=list(range(len(classes)))).tolist(),
        "roc": [], "pr": [],
    }
    targets = [1] if len(classes) == 2 else range(len(classes))
    for k in targets:
        positive = (y == k).astype(int)
        if positive.min() == positive.max():
            continue
        fpr, tpr, _ = skm.roc_curve(positive, proba[:, k])
        precision, recall, _ = skm.precision_recall_curve(positive, proba[:, k])
        fpr, tpr = _thin(fpr, tpr)
        recall, precision = _thin(recall[::-1], precision[::-1])
        curves["roc"].append({"label": classes[k], "fpr": fpr, "tpr": tpr,
                              "auc": float(skm.roc_auc_score(positive, proba[:, k]))})
        curves["pr"].append({"label": classes[k], "recall": recall, "precision": precision,
                             "average_precision": float(skm.average_precision_score(positive, proba[:, k]))})
    return curves


def regression_curves(y: np.ndarray, predicted: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """A sample of (actual, predicted, residual) for predicted-vs-actual and residual plots."""
    index = np.arange(len(y))
    if len(y) > MAX_RESIDUAL_POINTS:
        index = np.sort(np.random.default_rng(seed).choice(len(y), MAX_RESIDUAL_POINTS, replace=False))
    actual, pred = y[index], predicted[index]
    return {"actual": actual.round(6).tolist(), "predicted": pred.round(6).tolist(),
            "residual": (actual - pred).round(6).tolist()}
