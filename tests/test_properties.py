"""Property-based tests: messy tables in bulk (tests/strategies.py) through ingest, profile, every model, predict.

Default examples are few and derandomized (the "ci" profile in conftest.py); `--hypothesis-profile=thorough`
explores for longer. Every failure found so far is kept as an explicit @example.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from tests.strategies import csv_files, raw_csv, rows, trainable_csv_files
from workbench.errors import UserError
from workbench.ingest import ingest_bytes
from workbench.models.registry import MODELS
from workbench.predict import load_model
from workbench.profile import profile_table, target_warnings
from workbench.runconfig import CATEGORICAL_ENCODINGS, IMPUTATIONS, SCALINGS, PrepConfig, RunConfig
from workbench.runner import execute
from workbench.store import RunStatus


def scaled(share: float) -> settings:
    """A share of the active profile's example count: the expensive properties get fewer examples."""
    return settings(max_examples=max(2, int(settings.default.max_examples * share)))


def ingest_or_none(data: bytes):
    try:
        return ingest_bytes(data)
    except UserError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip(), "a user error is one plain sentence"
        return None


@scaled(3)
@given(csv_files())
# Times with and without a UTC offset in one column: pandas gave object dtype and `.dt` raised.
@example(raw_csv("when\n2024-01-02\n2005-04-29T12:17:35Z\n"))
# Whole numbers with one beyond the int64 range: the column was cast to int64 and 1e308 became -9223372036854775808.
@example(raw_csv("x\n1e308\n1\n"))
def test_ingest_loads_or_says_why(file):
    ingested = ingest_or_none(file.data)
    if ingested is None:
        return
    table = ingested.table
    assert len(table) >= 1
    assert len(set(table.columns)) == table.shape[1], "column names are unique"
    assert all(isinstance(n, str) and n.strip() for n in table.columns)
    for name in table.columns:  # every number read is a number written in the file, never a wrapped-around one
        if pd.api.types.is_integer_dtype(table[name]):
            assert table[name].abs().max() < 2**63 - 1


@scaled(2)
@given(csv_files(), st.sampled_from(["utf-16", "utf-16-be", "utf-32"]))
def test_a_utf16_or_utf32_file_reads_as_its_utf8_twin(file, wide):
    """Excel's "Unicode text" is UTF-16 with a byte-order mark: the same table as the UTF-8 file, or the same refusal."""
    text = file.data.decode(file.encoding)
    if wide == "utf-16-be":
        data = b"\xfe\xff" + text.encode(wide)
    else:
        data = text.encode(wide)  # the codec writes the byte-order mark
    utf8 = ingest_or_none(text.encode("utf-8"))
    widened = ingest_or_none(data)
    assert (utf8 is None) == (widened is None)
    if utf8 is not None:
        pd.testing.assert_frame_equal(utf8.table, widened.table)


@scaled(1)
@given(st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_ingest_of_any_bytes_loads_or_says_why(data):
    ingest_or_none(data)


@scaled(2)
@given(csv_files())
# Issue 14: a missing number was filled with -1e300, which overflows float32 in scikit-learn's tree.
@example(raw_csv("species,mass\nA,3.5\nB,\nA,4.1\nB,5.0\n"))
# A datetime or identifier-like text target with over 20 values was scored as a regression on float(text).
@example(raw_csv(rows("when,x", lambda i: f"2020-01-{i + 1:02d} 10:00,a", 21)))
@example(raw_csv(rows("code,x", lambda i: f"ID-{i},{i % 3}", 21)))
# Numbers near the float64 limit overflowed the histogram's range; numbers too close for 20 bin edges.
@example(raw_csv("x,y\n1e308,a\n-1e308,b\n"))
@example(raw_csv("x,y\n1,a\n1.0000000000000002,b\n"))
@example(raw_csv("when,y\n2020-01-01 00:00:00.000000001,a\n2020-01-01 00:00:00.000000002,b\n"))
# Decimal commas in scientific notation were left as text.
@example(raw_csv(rows("a;b", lambda i: f"{i + 1},5e-08;x", 21)))
def test_profile_with_every_column_as_target_never_raises(file):
    ingested = ingest_or_none(file.data)
    if ingested is None:
        return
    frame = ingested.table
    profile = profile_table(frame)
    assert [c["name"] for c in profile["columns"]] == list(frame.columns)
    for name in frame.columns:
        for warning in target_warnings(frame, profile, name):
            assert warning["message"]


# Small models keep a run to a fraction of a second: the property is about what the data does to the pipeline.
SMALL = {
    "linear": {"epochs": 1}, "mlp": {"epochs": 1, "hidden_sizes": "8"}, "cnn": {"epochs": 1, "channels": 4},
    "rnn": {"epochs": 1, "hidden_size": 8}, "transformer": {"epochs": 1, "d_model": 8, "n_layers": 1},
    "tabm": {"epochs": 1, "k": 4, "width": 16},
    "random_forest": {"n_estimators": 5}, "gradient_boosting": {"max_iter": 5},
}


def plain_sentence(message: str | None) -> bool:
    """A message a user can read: one line, not a wrapped Python exception."""
    return bool(message) and "\n" not in message.strip() and not message.startswith("Training failed") \
        and "Traceback" not in message


@pytest.mark.parametrize("model", list(MODELS))
@scaled(0.2)
@given(file=trainable_csv_files(), target_from_end=st.just(0) | st.integers(0, 6),
       prep=st.builds(PrepConfig, impute_numeric=st.sampled_from(IMPUTATIONS), scaling=st.sampled_from(SCALINGS),
                      categorical=st.sampled_from(CATEGORICAL_ENCODINGS)))
# Five classes in 24 rows: the split was stratified with fewer test rows than classes, and gradient boosting's
# stratified early-stopping split failed the same way.
@example(file=raw_csv(rows("x,target", lambda i: f"{i},{'abc'[i % 3] if i < 18 else 'de'[i % 2]}", 24)),
         target_from_end=0, prep=PrepConfig())
# A class only in the test rows (row 22 with seed 0): classical models gave fewer probability columns than classes.
@example(file=raw_csv(rows("x,target", lambda i: f"{i},{'z' if i == 22 else 'ab'[i % 2]}", 24)), target_from_end=0,
         prep=PrepConfig())
# Numbers near the float64 limit: the variance in the standard scaler and the spread of the quantile transform's
# tie-breaking noise overflowed to inf, and the models then saw NaN.
@example(file=raw_csv(rows("x,target", lambda i: f"{1e308 if i % 4 == 0 else -i - 0.5},{'ab'[i % 2]}", 24)),
         target_from_end=0, prep=PrepConfig())
def test_every_model_trains_one_epoch_or_says_why_and_predicts_its_own_rows(model, file, target_from_end, prep):
    ingested = ingest_or_none(file.data)
    if ingested is None:
        return
    table = ingested.table
    target = table.columns[-1 - target_from_end % table.shape[1]]
    config = RunConfig(dataset_id="fuzz", target=target, model=model, params=SMALL.get(model, {}), prep=prep)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        try:
            outcome = execute(config, table, run_dir)
        except UserError as exc:
            assert plain_sentence(str(exc)), str(exc)
            event(f"refused: {str(exc)[:50]}")
            return
        event(f"ended {outcome.status}")
        if outcome.status != RunStatus.SUCCEEDED:
            assert outcome.status in (RunStatus.FAILED, RunStatus.DIVERGED), outcome.status
            assert plain_sentence(outcome.error), outcome.error
            return
        assert_predicts_every_row(load_model(run_dir), table, outcome.task)


def assert_predicts_every_row(model, table: pd.DataFrame, task: str) -> None:
    result = model.predict(table)
    assert len(result) == len(table)
    if task == "regression":
        assert np.isfinite(result["prediction"].to_numpy(dtype="float64")).all()
        return
    assert result["prediction"].notna().all()
    proba = result[[f"proba_{c}" for c in model.classes]].to_numpy(dtype="float64")
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert ((proba >= 0) & (proba <= 1)).all()
