"""Saved runs: safe formats only, identical predictions in a new process, schema checks on new tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

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


SAVED_V1 = Path(__file__).parent / "data" / "saved_runs_v1"


@pytest.mark.parametrize("name", sorted(p.name for p in SAVED_V1.iterdir() if p.is_dir()))
def test_runs_saved_before_the_engine_refactor_load_and_predict_identically(name):
    """Folders written by the code at 85a5395 (tests/data/saved_runs_v1/make_saved_runs.py): every model, three
    tasks, missing values and dates; the predictions are those that code made, to a few float32 rounding steps (on
    another CPU (an AMD EPYC; CI passed to the bit on its own), the same weights give outputs differing in their
    last bits, 4e-8 of the value at most; a format or refactoring error moves them by far more)."""
    expected = pd.read_parquet(SAVED_V1 / f"{name}.predictions.parquet")
    predicted = load_model(SAVED_V1 / name).predict(pd.read_csv(SAVED_V1 / "rows.csv"))  # read as when it was made
    assert (predicted["warnings"] == "").all()  # rows of the training table: nothing to flag
    pd.testing.assert_frame_equal(predicted.drop(columns="warnings"), expected, check_exact=False, rtol=1e-6, atol=0)


# -- damaged run folders -----------------------------------------------------------------------------------------

RUN_FILES = {"mlp": ["config.json", "preprocessor.skops", "weights.safetensors"],
             "random_forest": ["config.json", "preprocessor.skops", "model.skops"]}


@pytest.fixture(scope="module")
def sound_runs(tmp_path_factory):
    """A neural and a classical run, and a neural run on other columns (for files swapped between runs)."""
    from tests.conftest import make_classification_frame

    root = tmp_path_factory.mktemp("sound")
    frame = make_classification_frame(n=200)
    for model, params in (("mlp", {"epochs": 1, "hidden_sizes": "8"}), ("random_forest", {"n_estimators": 3})):
        assert execute(RunConfig("d", "label", model, params=params), frame, root / model).status == "succeeded"
    other = frame.assign(x3=frame["x1"] * 2).drop(columns=["colour"])
    execute(RunConfig("d", "label", "mlp", params={"epochs": 1, "hidden_sizes": "16"}), other, root / "other")
    return root


def damage(path: Path, kind: str, fraction: float, junk: bytes, other_run: Path) -> None:
    data = path.read_bytes()
    if kind == "missing":
        path.unlink()
    elif kind == "truncated":
        path.write_bytes(data[: int(len(data) * fraction)])
    elif kind == "garbage":
        path.write_bytes(junk)
    elif kind == "garbage inside":  # the right start and end, junk in the middle
        cut = max(1, int(len(data) * fraction))
        path.write_bytes(data[:cut] + junk + data[cut + len(junk):])
    elif kind == "from another run":
        path.write_bytes((other_run / path.name).read_bytes())


@settings(max_examples=25, deadline=None, derandomize=True, database=None, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # no shrinking: the protection check stays fast
@given(model=st.sampled_from(sorted(RUN_FILES)), data=st.data(),
       kind=st.sampled_from(["missing", "truncated", "garbage", "garbage inside", "from another run"]),
       fraction=st.floats(0.0, 0.99), junk=st.binary(min_size=0, max_size=300))
def test_a_damaged_run_folder_is_refused_in_one_sentence(sound_runs, tmp_path, model, data, kind, fraction, junk):
    """Protection: artifacts.load_run turns any failure to read a run's files into one UserError. Each file, each
    kind of damage: missing, cut short, replaced by junk, junk inside, or the file of another run (weights of the
    wrong shapes, a preprocessing for other columns). Either it still loads and predicts (junk that changed
    nothing), or it is refused plainly; never another exception."""
    import shutil

    from tests.conftest import make_classification_frame

    name = data.draw(st.sampled_from(RUN_FILES[model]), label="file")
    run_dir = tmp_path / f"{model}-{kind}-{len(junk)}"
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(sound_runs / model, run_dir)
    other = sound_runs / ("other" if name != "model.skops" else "mlp")
    damage(run_dir / name, kind, fraction, junk, other)
    if kind == "from another run" and name == "model.skops":  # a neural run has no model.skops: use a classical one
        (run_dir / name).write_bytes((sound_runs / "random_forest" / "preprocessor.skops").read_bytes())
    try:
        predicted = load_model(run_dir).predict(make_classification_frame(n=20).drop(columns=["label"]))
    except UserError as exc:
        message = str(exc)
        assert message.endswith("train it again.") or "never writes" in message, message
        assert "\n" not in message and "Traceback" not in message
        if "damaged" in message:  # it names the file; files that do not fit together name one of them
            named = RUN_FILES[model] if kind == "from another run" else [name]
            assert any(f"run {run_dir.name} is damaged ({n} cannot be used)" in message for n in named), message
    else:
        assert kind in ("garbage inside", "truncated", "from another run") and len(predicted) == 20


def test_cli_predict_with_a_damaged_model_says_so_and_exits_2(store, home, tmp_path):
    """Protection: a damaged run is a user-facing error in the CLI (exit 2, `error: ...`), not an unexpected one."""
    from tests.conftest import make_classification_frame
    from workbench import datasets, jobs

    frame = make_classification_frame(n=120)
    dataset_id = datasets.add_dataset(store, frame.to_csv(index=False).encode(), "small.csv").dataset.id
    run = jobs.submit_run(store, RunConfig(dataset_id, "label", "mlp", params={"epochs": 1, "hidden_sizes": "8"}))
    jobs.run_worker(store, once=True)
    weights = store.settings.runs_dir / run.id / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    rows = tmp_path / "rows.csv"
    frame.drop(columns=["label"]).head(5).to_csv(rows, index=False)
    done = subprocess.run([sys.executable, "-m", "workbench", "predict", run.id, str(rows)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "WORKBENCH_HOME": str(home)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"error: The saved model of run {run.id} is damaged (weights.safetensors cannot "
                                   "be used); train it again.")
    assert done.stdout == ""
