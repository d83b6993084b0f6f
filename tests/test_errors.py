"""workbench/errors.py: a missing column's sentence names the column the user probably meant."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from workbench.errors import did_you_mean

names = st.text(string.ascii_letters + "_ é名", min_size=1, max_size=20).filter(lambda n: n.strip())


@given(st.lists(names, min_size=1, max_size=8, unique_by=lambda n: n.strip().casefold()), st.data())
def test_a_name_that_differs_only_by_spaces_or_capitals_points_to_the_column(columns, data):
    column = data.draw(st.sampled_from(columns))
    typed = f" {column.strip().swapcase()}  "
    assert did_you_mean(typed, columns) == f" Did you mean '{column}'?"


def test_a_close_spelling_is_suggested_and_a_far_one_is_not():
    columns = ["customer_age", "monthly_charges", "churn"]
    assert did_you_mean("monthly_charge", columns) == " Did you mean 'monthly_charges'?"
    assert did_you_mean("price", columns) == ""
