"""Profile kinds on a mixed table, statistics, histograms and plain-language warnings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.profile import profile_table, target_warnings


def mixed_table(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "customer_id": np.arange(n),
        "age": rng.integers(18, 80, n).astype(float),
        "plan": rng.choice(["basic", "pro", "team"], n),
        "active": rng.random(n) < 0.5,
        "signup": pd.date_range("2024-01-01", periods=n, freq="D"),
        "review": [f"A long free-text review number {i} with plenty of words in it" for i in range(n)],
        "country": "NL",
        "mostly_empty": [1.0 if i < 10 else np.nan for i in range(n)],
    })


def by_name(profile):
    return {c["name"]: c for c in profile["columns"]}


def test_kinds_on_a_mixed_table():
    cols = by_name(profile_table(mixed_table()))
    assert cols["customer_id"]["kind"] == "identifier"
    assert cols["age"]["kind"] == "numeric"
    assert cols["plan"]["kind"] == "categorical"
    assert cols["active"]["kind"] == "boolean"
    assert cols["signup"]["kind"] == "datetime"
    assert cols["review"]["kind"] in ("text", "identifier")


def test_statistics_and_histograms():
    frame = mixed_table()
    cols = by_name(profile_table(frame))
    age = cols["age"]
    assert age["stats"]["min"] == frame["age"].min()
    assert abs(age["stats"]["mean"] - frame["age"].mean()) < 1e-9
    assert sum(age["histogram"]["counts"]) == len(frame)
    assert cols["plan"]["top"][0][1] == frame["plan"].value_counts().iloc[0]
    assert cols["mostly_empty"]["missing"] == 190
    assert cols["mostly_empty"]["missing_share"] == 0.95


def test_dataset_warnings():
    frame = mixed_table()
    frame = pd.concat([frame, frame.iloc[:3]], ignore_index=True)
    codes = {(w["code"], w["column"]) for w in profile_table(frame)["warnings"]}
    assert ("constant", "country") in codes
    assert ("mostly_missing", "mostly_empty") in codes
    assert ("duplicate_rows", None) in codes


def test_high_cardinality_warning():
    frame = pd.DataFrame({"city": [f"c{i % 120}" for i in range(1000)]})
    codes = {w["code"] for w in profile_table(frame)["warnings"]}
    assert "high_cardinality" in codes


def test_target_warnings_imbalance_and_leakage(binary_frame):
    frame = binary_frame.copy()
    frame["label_copy"] = frame["label"].map({"yes": "Y", "no": "N"})
    frame["rare"] = np.where(np.arange(len(frame)) < 20, "a", "b")
    profile = profile_table(frame)
    found = {(w["code"], w["column"]) for w in target_warnings(frame, profile, "label")}
    assert ("leakage", "label_copy") in found
    assert ("leakage", "x1") not in found
    imbalanced = {(w["code"], w["column"]) for w in target_warnings(frame, profile, "rare")}
    assert ("imbalance", "rare") in imbalanced


def test_leakage_on_numeric_regression_target(regression_frame):
    frame = regression_frame.copy()
    frame["y_times_two"] = frame["y"] * 2 + 1
    found = {(w["code"], w["column"]) for w in target_warnings(frame, profile_table(frame), "y")}
    assert ("leakage", "y_times_two") in found
    assert ("leakage", "x2") not in found


def test_a_column_of_text_dates_one_per_row_is_dates_not_an_identifier():
    """A daily table's date column, written day first as a European spreadsheet exports it: the profile calls it what
    training uses it as (dates), from the earliest to the latest day read day first."""
    days = pd.date_range("2024-01-01", periods=60, freq="D")
    frame = pd.DataFrame({"day": days.strftime("%d/%m/%Y"), "sales": np.arange(60.0)})
    column = profile_table(frame)["columns"][0]
    assert column["kind"] == "datetime"
    assert (column["stats"]["min"], column["stats"]["max"]) == ("2024-01-01T00:00:00", "2024-02-29T00:00:00")
    assert sum(column["histogram"]["counts"]) == 60


def test_values_that_differ_only_in_capitals_or_spaces_are_pointed_out():
    frame = pd.DataFrame({"answer": ["Yes", "yes", "YES", "No", "no", "maybe"] * 5,
                          "city": ["New York", "New  York", "Paris", "Oslo", "Rome", "Oslo"] * 5,
                          "code": ["a1", "b2", "c3", "d4", "e5", "f6"] * 5})
    profile = profile_table(frame)
    warnings = {w["column"]: w["message"] for w in profile["warnings"] if w["code"] == "spellings"}
    assert warnings == {
        "answer": "'answer' writes some values in different capitals or spacing ('Yes', 'yes', 'YES'; 'No', 'no'); "
                  "they count as different categories. If they mean the same, write them the same way in the file.",
        "city": "'city' writes some values in different capitals or spacing ('New York', 'New  York'); they count "
                "as different categories. If they mean the same, write them the same way in the file."}


def test_a_column_of_dates_pandas_cannot_hold_has_no_statistics_rather_than_nat():
    profile = profile_table(pd.DataFrame({"end": ["31/12/9999", "01/01/0001"] * 10}))
    column = profile["columns"][0]
    assert column["kind"] == "datetime" and "stats" not in column and "histogram" not in column
