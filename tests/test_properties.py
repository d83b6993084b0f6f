"""Property-based tests: messy tables in bulk (tests/strategies.py) through ingest, profile, every model, predict.

Default examples are few and derandomized (the "ci" profile in conftest.py); `--hypothesis-profile=thorough`
explores for longer. Every failure found so far is kept as an explicit @example.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.strategies import csv_files, raw_csv, rows
from workbench.errors import UserError
from workbench.ingest import ingest_bytes
from workbench.profile import profile_table, target_warnings


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
def test_ingest_loads_or_says_why(file):
    ingested = ingest_or_none(file.data)
    if ingested is not None:
        assert len(ingested.table) >= 1
        assert len(set(ingested.table.columns)) == ingested.table.shape[1], "column names are unique"
        assert all(isinstance(n, str) and n.strip() for n in ingested.table.columns)


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
