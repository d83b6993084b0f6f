"""ui/forms.py: the typical row that prefills what-if inputs and the Deploy page's example request."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ui.forms import typical_values

dates = st.datetimes(min_value=pd.Timestamp("1990-01-01").to_pydatetime(),
                     max_value=pd.Timestamp("2040-01-01").to_pydatetime())


@settings(max_examples=60, deadline=None)
@given(numbers=st.lists(st.none() | st.floats(-1e6, 1e6), min_size=1, max_size=30),
       when=st.lists(st.none() | dates, min_size=1, max_size=30),
       words=st.lists(st.none() | st.sampled_from(["a", "b", "é ü", "<b>x</b>"]), min_size=1, max_size=30))
def test_every_typical_value_is_a_believable_value_of_its_column(numbers, when, words):
    n = min(len(numbers), len(when), len(words))
    table = pd.DataFrame({"number": pd.Series(numbers[:n], dtype="float64"),
                          "when": pd.to_datetime(pd.Series(when[:n], dtype="object")),
                          "word": pd.Series(words[:n], dtype="object")})
    row = typical_values(table, list(table.columns))
    for name in table.columns:
        present = table[name].dropna()
        if present.empty:
            assert row[name] is None
        elif name == "word":
            assert row[name] in set(present)
        else:
            assert present.min() <= row[name] <= present.max()


def test_the_typical_date_is_the_middle_one_not_the_first():
    table = pd.DataFrame({"when": pd.date_range("2020-01-01", periods=101, freq="D")})
    assert typical_values(table, ["when"])["when"] == pd.Timestamp("2020-02-20")
