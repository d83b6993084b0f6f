"""The Predict page: the dataset first, its best run preselected and marked, notes on what did not fit, the export
with its instructions, and never a traceback on messy files."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_regression_frame
from tests.test_page_data import assert_one_sentence_errors
from tests.test_pages import _no_background_worker, captured_downloads, customers, page, texts, train  # noqa: F401
from workbench import datasets


def selectbox(at, label: str):
    return next(s for s in at.selectbox if s.label == label)


def add(store, frame: pd.DataFrame, name: str) -> str:
    return datasets.add_dataset(store, frame.to_csv(index=False).encode(), name).dataset.id


@pytest.fixture
def customers_id(store) -> str:
    return add(store, customers(n=200), "customers.csv")


def test_the_best_run_is_preselected_and_marked_not_the_newest(store, customers_id):
    good = train(store, customers_id, C=1.0)
    weak = train(store, customers_id, C=1e-6)  # newest, and about as good as always guessing one class
    runs = {r.id: r for r in store.list_runs()}
    assert runs[good].primary_value > runs[weak].primary_value
    at = page("predict").run()
    assert not at.exception
    picker = selectbox(at, "Trained run")
    assert picker.value == good
    assert [o.endswith(" · best") for o in picker.options] == [False, True]  # newest first; only the best marked
    assert not at.info  # the chosen run is the best: nothing to point to
    picker.select(weak).run()
    assert not at.exception
    assert f"Run {good} (logistic_regression) scores better on the same test rows: accuracy" in texts(at.info)


def test_for_errors_the_lowest_is_best(store):
    dataset_id = add(store, make_regression_frame(n=150), "reg.csv")
    good = train(store, dataset_id, model="ridge", target="y", alpha=0.01)
    train(store, dataset_id, model="ridge", target="y", alpha=1e5)
    at = page("predict").run()
    assert not at.exception
    assert selectbox(at, "Trained run").value == good


def test_runs_of_other_targets_and_datasets_are_not_ranked_together(store, customers_id):
    by_label = train(store, customers_id)
    by_colour = train(store, customers_id, target="colour")
    other_dataset = add(store, customers(n=100, seed=5), "other.csv")
    train(store, other_dataset)
    at = page("predict").run()
    assert selectbox(at, "Dataset").value == other_dataset  # the dataset of the newest run
    selectbox(at, "Dataset").select(customers_id).run()
    assert not at.exception
    picker = selectbox(at, "Trained run")
    assert picker.value == by_colour  # the newest run's target, and its best run
    assert all(o.endswith(" · best") for o in picker.options)  # each the best for its own target
    assert sorted(o.split(" · ")[-2] for o in picker.options) == ["predicts colour", "predicts label"]
    assert set(picker.options) == {picker.format_func(by_label), picker.format_func(by_colour)}


def test_a_run_asked_for_by_another_page_brings_its_dataset(store, customers_id):
    """The Run page sets st.session_state["predict_run"] before switching here."""
    asked = train(store, customers_id, C=1e-6)
    best = train(store, customers_id, C=1.0)
    other_dataset = add(store, customers(n=100, seed=5), "other.csv")
    other = train(store, other_dataset)
    at = page("predict")
    at.session_state["predict_run"] = asked
    at.run()
    assert not at.exception
    assert selectbox(at, "Dataset").value == customers_id and selectbox(at, "Trained run").value == asked
    at.session_state["predict_run"] = other  # asked for again, from another dataset
    at.run()
    assert selectbox(at, "Dataset").value == other_dataset and selectbox(at, "Trained run").value == other
    selectbox(at, "Dataset").select(customers_id).run()  # the visitor moves on: that dataset's best run
    assert not at.exception
    assert selectbox(at, "Trained run").value == best


def test_every_change_of_the_dataset_is_kept(store, customers_id):
    best = train(store, customers_id)
    other_dataset = add(store, customers(n=100, seed=5), "other.csv")
    other = train(store, other_dataset)
    at = page("predict").run()
    selectbox(at, "Dataset").select(customers_id).run()
    assert selectbox(at, "Trained run").value == best
    selectbox(at, "Dataset").select(other_dataset).run()
    assert selectbox(at, "Dataset").value == other_dataset and selectbox(at, "Trained run").value == other


def test_the_data_page_dataset_is_the_first_choice(store, customers_id):
    chosen = train(store, customers_id)
    train(store, add(store, customers(n=100, seed=5), "other.csv"))
    at = page("predict")
    at.session_state["dataset_id"] = customers_id
    at.run()
    assert selectbox(at, "Dataset").value == customers_id and selectbox(at, "Trained run").value == chosen


def test_extra_columns_unseen_categories_and_empty_rows_are_told_with_counts(store, customers_id):
    train(store, customers_id)
    rows = customers(n=8, seed=3).drop(columns=["label"]).astype({"colour": object, "x1": object, "flag": object})
    rows["notes"] = "extra"
    rows.loc[[0, 1], "colour"] = "purple"
    rows.loc[2, ["x1", "x2", "colour", "flag"]] = None
    at = page("predict").run()
    at.file_uploader(key="predict_upload").upload("new.csv", rows.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception
    notes = texts(at.info)
    assert "never saw in training ('purple') on 2 rows" in notes, notes
    assert "The model does not use the column 'notes'; it was ignored." in notes
    assert "1 row has every feature missing" in notes
    assert "3 rows are flagged" in texts(at.success)


def test_the_export_holds_instructions_and_a_predict_script(store, customers_id, monkeypatch):
    run_id = train(store, customers_id)
    downloads = captured_downloads(monkeypatch)
    at = page("predict").run()
    assert not at.exception
    archive = zipfile.ZipFile(io.BytesIO(next(d for d in downloads if d.startswith(b"PK"))))
    names = set(archive.namelist())
    assert {f"workbench-run-{run_id}/README.md", f"workbench-run-{run_id}/predict.py"} <= names
    assert b"python predict.py input.csv output.csv" in archive.read(f"workbench-run-{run_id}/README.md")


def messy_files() -> dict[str, bytes]:
    rows = customers(n=6, seed=4).drop(columns=["label"])
    dates_in_numbers = rows.assign(x1=pd.date_range("2024-01-01", periods=6).strftime("%Y-%m-%d"))
    hostile = rows.rename(columns={"x2": "‮[x](http://evil.example) 名前"}).assign(**{"<b>é</b>": "=1+1"})
    some_dates = rows.astype({"x2": object})
    some_dates.loc[[1, 3], "x2"] = "2024-02-30"
    return {
        "one_row": rows.head(1).to_csv(index=False).encode(),
        "header_only": b"x1,x2,colour,flag\n",
        "all_empty": b"x1,x2,colour,flag\n,,,\n,,,\n",
        "dates_in_numbers": dates_in_numbers.to_csv(index=False).encode(),
        "some_dates_in_numbers": some_dates.to_csv(index=False).encode(),
        "hostile_names": hostile.to_csv(index=False).encode(),
        "missing_everywhere": rows.mask(np.eye(6, 4, dtype=bool)).to_csv(index=False).encode(),
        "not_a_csv": b"PK\x03\x04\x00\x00 not a csv",
        "empty": b"",
        "cp1252": "x1;x2;colour;flag\n1,5;2;caf\xe9;true\n".encode("cp1252"),
    }


@pytest.mark.parametrize("name", list(messy_files()))
def test_messy_files_never_show_a_traceback(store, customers_id, name):
    run_id = train(store, customers_id)
    at = page("predict").run()
    at.file_uploader(key="predict_upload").upload(f"{name}.csv", messy_files()[name], "text/csv").run()
    assert not at.exception, at.exception
    assert_one_sentence_errors(at)
    assert bool(at.error) != any("prediction" in df.value.columns for df in at.dataframe)
    next(b for b in at.button if b.label == "Predict this row").click().run()  # the what-if form beside it
    assert not at.exception and run_id
