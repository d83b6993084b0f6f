"""Predict refuses or flags what does not fit the training schema: no silent wrong predictions (issue 15 item 7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_classification_frame
from workbench.errors import UserError
from workbench.ingest import ingest_bytes
from workbench.predict import load_model
from workbench.runconfig import RunConfig
from workbench.runner import execute

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
    assert result.table["warnings"].tolist() == ["'x1': 'lots' is not a number", "'x1': 'inf' is not a number",
                                                 "'signup': '17' is a number, not a date"]
    assert result.table["prediction"].notna().all()
