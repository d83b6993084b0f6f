"""Predict refuses or flags what does not fit the training schema: no silent wrong predictions (issue 15 item 7);
the best run of a dataset; the exported zip with its README and predict.py, run in a fresh process."""

from __future__ import annotations

import io
import math
import re
import subprocess
import sys
import zipfile
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import make_classification_frame, with_checkout_on_path
from workbench import datasets, jobs
from workbench.errors import UserError
from workbench.ingest import ingest_bytes
from workbench.predict import (
    best_run_ids,
    best_runs,
    comparable_group,
    export_run,
    load_model,
    load_model_for_run,
    to_safe_csv,
)
from workbench.runconfig import RunConfig
from workbench.runner import execute
from workbench.store import Run, RunStatus

N_ROWS = 40  # enough rows that the CSV reader reads a column with one typo as numbers, as it would a real file


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    frame = make_classification_frame(n=300)
    frame["signup"] = pd.date_range("2023-01-01", periods=len(frame), freq="D")
    run_dir = tmp_path_factory.mktemp("run") / "r"
    outcome = execute(RunConfig("d", "label", "logistic_regression"), frame, run_dir)
    assert outcome.status == "succeeded", outcome.error
    return load_model(run_dir)


def new_rows(n: int = N_ROWS) -> pd.DataFrame:
    frame = make_classification_frame(n=n, seed=1).drop(columns=["label"])
    frame["signup"] = pd.date_range("2024-03-01", periods=n, freq="D").strftime("%Y-%m-%d")
    return frame


def predict_csv(model, frame: pd.DataFrame):
    ingested = ingest_bytes(frame.to_csv(index=False).encode())
    return model.predict_rows(ingested.table, ingested.unread)


def test_clean_rows_have_no_notes_and_empty_warnings(model):
    result = predict_csv(model, new_rows())
    assert result.notes == []
    assert (result.table["warnings"] == "").all()
    proba = result.table[["proba_no", "proba_yes"]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_a_column_of_day_first_dates_is_read_day_first_at_prediction_too(tmp_path):
    """Trained on dates written 13/02/2023, a model reads 01/07/2024 as 1 July, even in a file where no day is above
    12 (pandas alone would read it as 7 January)."""
    frame = make_classification_frame(n=300)
    days = pd.date_range("2023-01-01", periods=len(frame), freq="D")
    frame["signup"] = days.strftime("%d/%m/%Y")
    frame["label"] = np.where(days.month <= 6, "first half", "second half")
    outcome = execute(RunConfig("d", "label", "gradient_boosting"), frame, tmp_path / "r")
    assert outcome.status == "succeeded", outcome.error
    assert "'signup' writes its dates day first; they were read as day/month/year." in outcome.notes
    rows = make_classification_frame(n=12, seed=1).drop(columns=["label"])
    rows["signup"] = [f"01/{month:02d}/2024" for month in range(1, 13)]
    result = predict_csv(load_model(tmp_path / "r"), rows)
    assert result.table["prediction"].tolist() == ["first half"] * 6 + ["second half"] * 6


def test_a_typo_in_a_number_is_flagged_not_silently_imputed(model):
    rows = new_rows().astype({"x1": object})
    rows.loc[7, "x1"] = "39.3x"
    result = predict_csv(model, rows)
    assert result.table["warnings"][7] == "'x1': '39.3x' is not a number"
    assert (result.table["warnings"].drop(index=7) == "").all()
    assert result.notes == ["Column 'x1' should hold numbers, but 1 row has other values (such as '39.3x'); "
                            "they were treated as missing and those rows are flagged."]


def test_a_date_in_a_number_column_is_flagged_and_never_becomes_nanoseconds(model):
    rows = new_rows().astype({"x2": object})
    rows.loc[3, "x2"] = "2024-01-02"
    result = predict_csv(model, rows)
    assert result.table["warnings"][3] == "'x2': '2024-01-02' is a date, not a number"
    assert "Column 'x2' should hold numbers, but 1 row has other values (such as '2024-01-02')" in result.notes[0]


def test_a_number_column_that_holds_only_dates_is_refused(model):
    rows = new_rows()
    rows["x1"] = pd.date_range("2024-01-01", periods=len(rows), freq="D").strftime("%Y-%m-%d")
    with pytest.raises(UserError, match=r"Column 'x1' should hold numbers, but none of its values do "
                                        r"\(such as '2024-01-01 00:00:00'"):
        predict_csv(model, rows)


def test_numbers_and_words_in_a_date_column_are_flagged(model):
    rows = new_rows()
    rows.loc[2, "signup"] = "12.5"
    rows.loc[4, "signup"] = "soon"
    result = predict_csv(model, rows)
    assert result.table["warnings"][2] == "'signup': '12.5' is a number, not a date"
    assert result.table["warnings"][4] == "'signup': 'soon' is not a date"
    assert any(n.startswith("Column 'signup' should hold dates, but 2 rows have other values") for n in result.notes)


def test_dates_pandas_cannot_hold_and_numbers_too_large_are_flagged_as_what_they_are(model):
    rows = new_rows().astype({"x1": object})
    rows.loc[1, "signup"] = "9999-12-31"
    rows.loc[3, "signup"] = "31/12/0001"
    rows.loc[5, "x1"] = "1e400"
    result = predict_csv(model, rows)
    assert result.table["warnings"][1] == "'signup': '9999-12-31' is a date outside the years 1678 to 2261, which cannot be held"
    assert result.table["warnings"][3] == "'signup': '31/12/0001' is a date outside the years 1678 to 2261, which cannot be held"
    assert result.table["warnings"][5] == "'x1': '1e400' is infinite or too large a number to hold"
    assert result.table["prediction"].notna().all()


OUTPUT_NAMES = ["prediction", "proba_yes", "proba_no", "warnings", "prediction (input)", "warnings (input 2)"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(OUTPUT_NAMES), min_size=1, max_size=4, unique=True), st.booleans())
def test_input_columns_named_as_the_models_outputs_are_kept_under_their_own_names(model, names, as_csv):
    """A file with a column called 'prediction' or 'warnings' kept it nowhere: the model's column replaced it."""
    rows = new_rows(5)
    for k, name in enumerate(names):
        rows[name] = [f"{name} {k} {i}" for i in range(len(rows))]
    result = predict_csv(model, rows) if as_csv else model.predict_rows(rows)
    table = result.table
    assert len(set(table.columns)) == len(table.columns)
    assert table.columns[-4:].tolist() == ["prediction", "proba_no", "proba_yes", "warnings"]
    assert set(table["prediction"]) <= {"yes", "no"} and (table["warnings"] == "").all()
    kept = table.drop(columns=result.outputs)
    assert sorted(kept.columns) == sorted(set(kept.columns))  # every input column is there, once
    for name in names:  # under its own name, or named apart, with its values
        assert kept[name if name not in result.renamed else result.renamed[name]].tolist() == rows[name].tolist()
    assert set(result.renamed) == {n for n in names if n in result.outputs}
    assert bool(result.renamed) == any("named apart" in n for n in result.notes)
    inputs = result.inputs()
    assert inputs.columns.tolist() == [str(c) for c in rows.columns] and inputs[names].equals(rows[names])


def test_a_model_trained_on_codes_reads_them_at_prediction_with_or_without_their_zeros(tmp_path):
    rows = "".join(f"{z},{i % 7},{'yes' if z.startswith('0') else 'no'}\n"
                   for i, z in enumerate(["01234", "00501", "90210", "12345"] * 15))
    table = ingest_bytes(("zip,n,y\n" + rows).encode()).table
    assert table["zip"].tolist()[:2] == ["01234", "00501"]
    outcome = execute(RunConfig("d", "y", "logistic_regression"), table, tmp_path / "run")
    assert outcome.status == "succeeded", outcome.error
    model = load_model(tmp_path / "run")
    for csv in (b"zip,n\n01234,1\n90210,2\n", b"zip,n\n90210,2\n12345,1\n"):  # codes, or numbers (no zeros)
        result = model.predict_csv(csv)
        assert (result.table["warnings"] == "").all(), result.table["warnings"].tolist()
    flagged = model.predict_csv(b"zip,n\n1234,3\n90210,2\n").table["warnings"]  # 1234 is not the code 01234
    assert "never seen in training" in flagged[0] and flagged[1] == ""


def test_unseen_categories_are_counted_and_named(model):
    rows = new_rows()
    rows.loc[[1, 5], "colour"] = "purple"
    rows.loc[6, "colour"] = "ultraviolet"
    result = predict_csv(model, rows)
    assert result.table["warnings"][5] == "'colour': 'purple' was never seen in training"
    assert "Column 'colour' has 2 categories the model never saw in training ('purple', 'ultraviolet') on 3 rows; " \
           "they are predicted as an unknown category and those rows are flagged." in result.notes


def test_a_row_with_every_feature_missing_is_flagged(model):
    rows = new_rows().astype({"flag": object})
    rows.loc[9, :] = np.nan
    result = predict_csv(model, rows)
    assert result.table["warnings"][9] == "every feature is missing"
    assert "1 row has every feature missing: the prediction there is only a guess for a typical row." in result.notes


def test_extra_columns_are_named(model):
    rows = new_rows().assign(label="yes", notes_column="x")
    result = predict_csv(model, rows)
    assert result.notes == ["The model does not use the columns 'label', 'notes_column'; they were ignored."]


def test_a_table_that_is_not_a_csv_is_checked_the_same_way(model):
    """The what-if form and the Python API pass frames: the same checks apply without the reader's notes."""
    rows = new_rows(3).astype({"x1": object, "signup": object})
    rows.loc[0, "x1"] = "lots"
    rows.loc[1, "x1"] = float("inf")
    rows.loc[2, "signup"] = 17
    result = model.predict_rows(rows)
    assert result.table["warnings"].tolist() == ["'x1': 'lots' is not a number", "'x1': 'inf' is infinite or too large a number to hold",
                                                 "'signup': '17' is a number, not a date"]
    assert result.table["prediction"].notna().all()


# -- the best run, and export with instructions -----------------------------------------------------


def scored_run(run_id: str, value: float | None, metric: str = "accuracy", target: str = "label",
               fingerprint: str = "fp", status: RunStatus = RunStatus.SUCCEEDED, dataset_id: str = "d") -> Run:
    return Run(id=run_id, dataset_id=dataset_id, status=status, model="mlp", target=target, task="binary", config={},
               params={}, device=None, created_at=datetime(2024, 1, 1), started_at=None, finished_at=None,
               heartbeat_at=None, worker_id=None, cancel_requested=False, epochs_planned=None, epochs_done=0,
               batches_per_epoch=None, batches_done=0, duration_s=None, primary_metric=metric, primary_value=value,
               split_fingerprint=fingerprint, metrics={}, baseline={}, curves={}, details={}, error=None)


@given(scores=st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32)), min_size=1,
                       max_size=8),
       metric=st.sampled_from(["accuracy", "rmse"]))
def test_the_best_run_respects_the_metric_direction_and_skips_runs_without_a_score(scores, metric):
    runs = [scored_run(f"r{i}", v, metric) for i, v in enumerate(scores)]
    runs.append(scored_run("failed", 1e9 if metric == "accuracy" else -1e9, metric, status=RunStatus.FAILED))
    best = best_runs(runs)
    finite = [(v, r.id) for v, r in zip(scores, runs, strict=False) if v is not None and math.isfinite(v)]
    if not finite:
        assert best == {}
        return
    [winner] = best.values()
    target = max(v for v, _ in finite) if metric == "accuracy" else min(v for v, _ in finite)
    assert winner.primary_value == target
    assert winner.id == next(i for v, i in finite if v == target)  # of equal scores, the first (newest) wins


def test_runs_are_ranked_only_against_runs_on_the_same_target_and_test_rows():
    runs = [scored_run("a", 0.9), scored_run("b", 0.95), scored_run("c", 0.99, fingerprint="other-rows"),
            scored_run("d", 0.5, target="churn"), scored_run("e", 10.0, metric="rmse"),
            scored_run("f", 2.0, metric="rmse"), scored_run("g", 1.0, dataset_id="other")]
    assert {r.id for r in best_runs(runs).values()} == {"b", "c", "d", "f", "g"}
    assert best_runs(runs)[comparable_group(runs[0])].id == "b"


def test_every_run_that_ties_the_best_is_best():
    runs = [scored_run("new", 0.9), scored_run("old", 0.9), scored_run("worse", 0.8), scored_run("none", None)]
    assert best_runs(runs)[comparable_group(runs[0])].id == "new"
    assert best_run_ids(runs) == {"new", "old"}


HOSTILE = "[click](http://evil.example) ![i](http://evil.example/i.png) ``tick`` <b>x</b>\u202e\n# heading"
RARE = "[rare](http://evil.example/r) `x`"  # a class label is data too


@pytest.fixture
def exported(store, tmp_path):
    """A run trained on a table with a date, gaps, an imbalanced target and a hostile column name; its export
    unzipped into a folder of its own (the project's files are nowhere in it)."""
    frame = make_classification_frame(n=200)
    frame["signup"] = pd.date_range("2023-01-01", periods=len(frame), freq="D").strftime("%Y-%m-%d")
    frame.loc[::4, "x2"] = np.nan
    frame[HOSTILE] = frame["x1"].round(1)
    frame["label"] = np.where(frame["x1"] > 1.2, RARE, "common")
    dataset_id = datasets.add_dataset(store, frame.to_csv(index=False).encode(), HOSTILE + ".csv").dataset.id
    run = jobs.submit_run(store, RunConfig(dataset_id, "label", "gradient_boosting"))
    jobs.run_worker(store, once=True)
    assert store.get_run(run.id).status == RunStatus.SUCCEEDED, store.get_run(run.id).error
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(io.BytesIO(export_run(store, run.id))) as archive:
        archive.extractall(folder)
    return store, run.id, folder / f"workbench-run-{run.id}"


def test_the_exported_predict_script_predicts_what_the_workbench_predicts_in_a_fresh_process(exported, tmp_path):
    store, run_id, folder = exported
    rows = make_classification_frame(n=30, seed=3).drop(columns=["label"]).astype({"colour": object, "x1": object})
    rows["signup"] = "2024-05-01"
    rows[HOSTILE] = 0.5
    rows["unused"] = "extra"
    rows.loc[0, "colour"] = "purple"  # never seen in training
    rows.loc[1, "x1"] = "39.3x"  # not a number
    data = rows.to_csv(index=False).encode()
    (tmp_path / "in.csv").write_bytes(data)
    done = subprocess.run([sys.executable, "predict.py", str(tmp_path / "in.csv"), str(tmp_path / "out.csv")],
                          cwd=folder, env=with_checkout_on_path(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    expected = load_model_for_run(store, run_id).predict_csv(data)
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == to_safe_csv(expected.table)
    assert done.stderr.splitlines() == [f"note: {note}" for note in expected.notes]
    assert any("'purple'" in n and "on 1 row" in n for n in expected.notes)
    assert any("'unused'" in n and "ignored" in n for n in expected.notes)
    predicted = pd.read_csv(tmp_path / "out.csv")
    assert len(predicted) == 30 and set(predicted["prediction"]) <= {RARE, "common"}
    assert predicted["warnings"].notna().sum() == 2  # the unseen category and the typo are flagged


def test_the_exported_predict_script_says_what_is_wrong_in_one_line(exported, tmp_path):
    _, _, folder = exported
    (tmp_path / "in.csv").write_text("x1,flag\n1,true\n")
    done = subprocess.run([sys.executable, str(folder / "predict.py"), "in.csv", "out.csv"], cwd=tmp_path,
                          env=with_checkout_on_path(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: The data to predict is missing the columns 'x2'") and done.stderr.count("\n") == 1
    assert not (tmp_path / "out.csv").exists()


def test_the_readme_says_what_the_model_is_and_shows_names_only_as_code(exported):
    store, run_id, folder = exported
    readme = (folder / "README.md").read_text(encoding="utf-8")
    run = store.get_run(run_id)
    assert readme.startswith("# Workbench model: gradient_boosting predicting `label`")
    assert f"binary classification; classes `` {RARE} ``, `common`." in readme
    assert f"| accuracy (the main metric), higher is better | {run.metrics['test']['accuracy']:.4f} |" in readme
    assert "| log_loss, lower is better |" in readme
    for column, kind in [("x1", "a number"), ("colour", "a category"), ("signup", "a date"),
                         ("flag", "true or false (or 1 or 0)")]:
        assert f"\n{column}: {kind}\n" in readme
    assert "python predict.py input.csv output.csv" in readme and "PYTHONPATH" in readme
    assert {"config.json", "preprocessor.skops", "model.skops", "README.md", "predict.py"} == {
        p.name for p in folder.iterdir()}
    # Outside code spans and code blocks no data name is left: a markdown viewer shows them as text.
    prose = re.sub(r"(?ms)^(`{3,}).*?^\1$", "", readme)
    prose = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", prose)
    assert "evil.example" not in prose and "<b>" not in prose and "\u202e" not in readme
    assert "\n# heading" not in readme
