"""Predict with a saved run: check a new table against the training schema, then predict."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pandas.api import types as ptypes

from workbench.artifacts import load_run
from workbench.errors import UserError
from workbench.prepare import Preprocessor
from workbench.safe_csv import to_safe_csv
from workbench.store.entities import RunStatus
from workbench.tasks import Objective
from workbench.training import predict_outputs

__all__ = ["TrainedModel", "export_run", "load_model", "load_model_for_run", "predict_for_run", "to_safe_csv"]


@dataclass
class TrainedModel:
    config: dict[str, Any]
    preprocessor: Preprocessor
    model: Any

    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def classes(self) -> list[str] | None:
        return self.config.get("classes")

    @property
    def input_columns(self) -> list[str]:
        return self.preprocessor.input_columns

    def check_schema(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Missing columns are named; extra ones are ignored; values are coerced to the training types."""
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            names = ", ".join(f"'{c}'" for c in missing[:5])
            raise UserError(f"The file is missing the column{'s' if len(missing) > 1 else ''} {names} "
                            "that the model was trained on.")
        features = self.preprocessor.features
        checked = frame[self.input_columns].copy()
        for name in features.numeric + features.boolean:
            if not (ptypes.is_numeric_dtype(checked[name]) or ptypes.is_bool_dtype(checked[name])):
                coerced = pd.to_numeric(checked[name], errors="coerce")
                bad = coerced.isna() & checked[name].notna()
                if bad.any():
                    raise UserError(f"Column '{name}' should hold numbers, but has values like "
                                    f"'{checked[name][bad].iloc[0]}'.")
                checked[name] = coerced
        return checked

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities (n, n_classes) or regression predictions (n,)."""
        x_num, x_cat = self.preprocessor.transform(self.check_schema(frame))
        objective = Objective.from_config(self.config)
        if isinstance(self.model, torch.nn.Module):
            return objective.predictions(predict_outputs(self.model, torch.as_tensor(x_num), torch.as_tensor(x_cat)).numpy())
        return objective.estimator_predictions(self.model, x_num)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The input columns plus `prediction` and, for classification, `proba_<class>` columns."""
        values = self.predict_proba(frame)
        out = frame.copy()
        if self.task == "regression":
            out["prediction"] = values
            return out
        out["prediction"] = np.asarray(self.classes, dtype=object)[values.argmax(axis=1)]
        for k, label in enumerate(self.classes):
            out[f"proba_{label}"] = values[:, k]
        return out


def load_model(run_dir: Path) -> TrainedModel:
    return TrainedModel(*load_run(Path(run_dir)))


def load_model_for_run(store, run_id: str) -> TrainedModel:
    run = store.get_run(run_id, with_epochs=False)
    if run.status != RunStatus.SUCCEEDED:
        raise UserError(f"Run {run_id} has not finished successfully ({run.status}); pick a finished run.")
    return load_model(store.settings.runs_dir / run_id)


def predict_for_run(store, run_id: str, frame: pd.DataFrame) -> pd.DataFrame:
    return load_model_for_run(store, run_id).predict(frame)


def export_run(store, run_id: str) -> bytes:
    """The saved model as a zip (config.json, skops and safetensors files) to keep or share."""
    load_model_for_run(store, run_id)  # refuses unfinished runs and damaged folders
    buffer = io.BytesIO()
    run_dir = store.settings.runs_dir / run_id
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(run_dir.iterdir()):
            archive.write(path, f"workbench-run-{run_id}/{path.name}")
    return buffer.getvalue()
