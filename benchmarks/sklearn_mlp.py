"""2. scikit-learn's MLPClassifier / MLPRegressor (same hidden sizes) vs our trainer: time to the same
validation score. scikit-learn trains one epoch per `partial_fit` (its Adam, batch 200) until its validation score
stops improving; ours (workbench defaults, `workbench.training.fit`) then trains until it reaches that score."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.neural_network import MLPClassifier, MLPRegressor

from benchmarks.common import make_data, mlp_params, until_plateau
from benchmarks.time_to_quality import ours_until


def sklearn_until_plateau(data, hidden: list[int], patience: int = 2, max_epochs: int = 15) -> dict:
    cls = MLPClassifier if data.task != "regression" else MLPRegressor
    model = cls(hidden_layer_sizes=tuple(hidden), random_state=0)  # adam, lr 1e-3, batch min(200, n)
    classes = np.unique(data.y_train) if data.task != "regression" else None

    def epoch() -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # partial_fit warns that one epoch did not converge
            if classes is not None:
                model.partial_fit(data.x_train, data.y_train, classes=classes)
                return float((model.predict(data.x_val) == data.y_val).mean())
            model.partial_fit(data.x_train, data.y_train)
            return float(np.sqrt(np.mean((model.predict(data.x_val) - data.y_val) ** 2)))

    result = until_plateau(epoch, data.task, patience, max_epochs)
    result["settings"] = f"{cls.__name__}(hidden_layer_sizes={tuple(hidden)}), adam lr 1e-3, batch 200"
    return result


def measure(device: str = "cpu", rows: int = 200_000, features: int = 50, task: str = "binary",
            max_epochs: int = 15) -> dict:
    data = make_data(rows, features, task)
    hidden = mlp_params().hidden_sizes
    theirs = sklearn_until_plateau(data, hidden, max_epochs=max_epochs)
    mine = ours_until(data, theirs["best_score"], device, time_limit_s=max(60.0, 3 * theirs["seconds_to_best"]))
    out = {"device": device, "rows": rows, "features": features, "task": task, "hidden": hidden,
           "target_score": round(theirs["best_score"], 5), "sklearn": theirs, "ours": mine}
    out["speedup"] = round(theirs["seconds_to_best"] / mine["seconds"], 2) if mine["reached"] else None
    return out
