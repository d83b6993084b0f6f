"""Saved runs: safe formats only, identical predictions in a new process, schema checks on new tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.errors import UserError
from workbench.predict import load_model
from workbench.runconfig import RunConfig
from workbench.runner import execute

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["mlp", "transformer", "gradient_boosting", "logistic_regression"])
def trained(request, multiclass_frame, tmp_path):
    params = {"epochs": 5} if request.param in ("mlp", "transformer") else {}
    run_dir = tmp_path / request.param
    outcome = execute(RunConfig("d", "label", request.param, params=params), multiclass_frame, run_dir)
    assert outcome.status == "succeeded"
    return run_dir


def test_run_folder_holds_only_safe_formats(trained):
    files = {p.name for p in trained.iterdir()}
    assert "config.json" in files and "preprocessor.skops" in files
    assert files & {"weights.safetensors", "model.skops"}
    assert not any(name.endswith((".pkl", ".pt", ".pth", ".joblib")) for name in files)


def test_saved_run_predicts_identically_in_a_new_process(trained, multiclass_frame, tmp_path):
    rows = multiclass_frame.drop(columns=["label"]).head(50)
    here = load_model(trained).predict(rows)
    rows_path, out_path = tmp_path / "rows.parquet", tmp_path / "out.parquet"
    rows.to_parquet(rows_path)
    code = ("import sys, pandas as pd; from workbench.predict import load_model;"
            "load_model(sys.argv[1]).predict(pd.read_parquet(sys.argv[2])).to_parquet(sys.argv[3])")
    subprocess.run([sys.executable, "-c", code, str(trained), str(rows_path), str(out_path)], cwd=ROOT, check=True,
                   timeout=120)
    there = pd.read_parquet(out_path)
    pd.testing.assert_frame_equal(here, there)
    proba = here[[c for c in here.columns if c.startswith("proba_")]]
    assert list(proba.columns) == ["proba_class_0", "proba_class_1", "proba_class_2"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert set(here["prediction"]) <= {"class_0", "class_1", "class_2"}


def test_schema_checks(trained, multiclass_frame):
    model = load_model(trained)
    rows = multiclass_frame.drop(columns=["label"]).head(5).copy()
    with pytest.raises(UserError, match="missing the column 'x2'"):
        model.predict(rows.drop(columns=["x2"]))
    rows["extra"] = 1  # extra columns are ignored
    rows.loc[rows.index[0], "colour"] = "ultraviolet"  # an unseen category still predicts
    out = model.predict(rows)
    assert len(out) == 5 and out["prediction"].notna().all()
    rows["x1"] = rows["x1"].astype(object)
    rows.loc[rows.index[1], "x1"] = "lots"
    assert model.predict(rows)["warnings"].tolist()[:2] == ["'colour': 'ultraviolet' was never seen in training",
                                                           "'x1': 'lots' is not a number"]  # flagged, not refused


def test_regression_predictions_are_in_target_units(regression_frame, tmp_path):
    execute(RunConfig("d", "y", "mlp", params={"epochs": 30}), regression_frame, tmp_path / "r")
    out = load_model(tmp_path / "r").predict(regression_frame.head(200))
    assert abs(out["prediction"].mean() - regression_frame["y"].head(200).mean()) < 1.0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["task"] == "regression"
