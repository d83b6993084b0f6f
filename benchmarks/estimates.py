"""The Train form's expected training time against the time the run then takes, on the same table, right after."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.conftest import make_classification_frame
from workbench import timing
from workbench.runconfig import RunConfig
from workbench.runner import execute

MODELS = (("logistic_regression", {}), ("gradient_boosting", {}), ("random_forest", {}), ("mlp", {}))


def measure(rows: int = 6000) -> dict:
    frame = make_classification_frame(n=rows, seed=3)
    out = {}
    for model, params in MODELS:
        expected = timing.expected_seconds(model, params, len(frame), frame.shape[1] - 1, "binary")
        with tempfile.TemporaryDirectory() as tmp:
            outcome = execute(RunConfig(dataset_id="bench", target="label", model=model, params=params), frame,
                              Path(tmp) / "run")
        measured = sum(record.seconds for record in outcome.history)
        out[model] = {"expected_s": round(expected, 2), "measured_s": round(measured, 2),
                      "ratio": round(expected / measured, 2) if measured else None}
    return {"rows": rows, "by_model": out}
