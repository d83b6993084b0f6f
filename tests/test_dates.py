"""workbench/dates.py: ISO 8601 text read the same at ingest and at prediction, whatever the mix of offsets; dates
written as numbers read day first or month first, the same way for every row of a column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench import ingest
from workbench.dates import (
    FIRST_YEAR,
    LAST_YEAR,
    as_datetime,
    looks_like_dates,
    naive_utc,
    outside_range,
    parse_iso8601,
    reads_day_first,
)

moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2090, 1, 1)).map(
    lambda d: d.replace(microsecond=0))
offsets = st.none() | st.integers(-12 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))


def written(moment: datetime, offset: timezone | None, style: int) -> str:
    if offset is None:
        return moment.isoformat(sep="T" if style % 2 else " ")
    text = moment.replace(tzinfo=offset).isoformat()
    return text.replace("+00:00", "Z") if style == 2 else text


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(moments, offsets, st.integers(0, 2)), min_size=1, max_size=12))
def test_each_value_reads_as_its_own_utc_time_whatever_comes_before_it(values):
    text = pd.Series([written(*v) for v in values], dtype="object")
    expected = [pd.Timestamp(m.replace(tzinfo=o or UTC)).tz_convert("UTC") for m, o, _ in values]
    assert parse_iso8601(text).tolist() == expected
    assert as_datetime(text).tolist() == expected  # a prediction reads them as the ingest does


def test_a_naive_time_after_one_with_an_offset_keeps_its_own_clock():
    text = pd.Series(["2024-01-01T10:00:00+02:00", "2024-01-01T10:00:00", "2024-01-02", None, "not a date"])
    got = parse_iso8601(text)
    assert got[0] == pd.Timestamp("2024-01-01 08:00", tz="UTC")
    assert got[1] == pd.Timestamp("2024-01-01 10:00", tz="UTC")  # pandas alone read 08:00
    assert got[2] == pd.Timestamp("2024-01-02", tz="UTC") and got[3:].isna().all()


def test_a_csv_mixing_offsets_and_naive_times_ingests_each_time_as_written():
    csv = "when,y\n2024-01-01T10:00:00+02:00,1\n" + "".join(f"2024-01-0{d}T10:00:00,{d}\n" for d in range(2, 9))
    table = ingest.ingest_bytes(csv.encode()).table
    assert table["when"].dt.hour.tolist() == [8] + [10] * 7


days = st.dates(min_value=datetime(1950, 1, 1).date(), max_value=datetime(2049, 12, 31).date())


@settings(max_examples=80, deadline=None)
@given(st.lists(days, min_size=1, max_size=30), st.sampled_from(["/", ".", "-"]), st.sampled_from(["%Y", "%y"]),
       st.booleans())
def test_every_date_of_a_column_written_as_numbers_reads_as_written(dates, sep, year, day_first):
    """Whichever order the column uses, each of its dates is read in that order as soon as one date shows it (a
    day above 12); pandas alone read 01/02/2020 as 2 January and 13/02/2020 as 13 February in the same column."""
    pattern = sep.join(["%d", "%m", year] if day_first else ["%m", "%d", year])
    if year == "%y":  # a two-digit year is read in the century nearest to today (dateutil's rule)
        dates = [d.replace(year=1992 + d.year % 48) for d in dates]  # (leap years stay leap years)
    shows_order = any(d.day > 12 for d in dates)
    text = pd.Series([d.strftime(pattern) for d in dates], dtype="object")
    read_day_first = reads_day_first(text)
    if shows_order:
        assert read_day_first == day_first
    if read_day_first == day_first:
        assert as_datetime(text, read_day_first).dt.date.tolist() == dates


def test_dates_that_fit_both_orders_read_day_first_with_dots_and_month_first_otherwise():
    assert reads_day_first(pd.Series(["01.02.2020", "03.04.2021"]))
    assert not reads_day_first(pd.Series(["01/02/2020", "03/04/2021"]))
    assert not reads_day_first(pd.Series(["2020-01-02", "5 May 2020", None]))  # year first, words: no order to choose
    assert not reads_day_first(pd.Series([1.0, 2.0]))


def test_naive_utc_converts_aware_datetimes_to_utc_and_leaves_naive_ones():
    aware = pd.Series(pd.to_datetime(["2024-03-31 01:30", "2024-10-27 03:30"])).dt.tz_localize("Europe/Paris")
    assert naive_utc(aware).tolist() == [pd.Timestamp("2024-03-31 00:30"), pd.Timestamp("2024-10-27 02:30")]
    naive = pd.Series(pd.to_datetime(["2024-03-31 01:30", None]))
    assert naive_utc(naive).equals(naive)


FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y"]


@settings(max_examples=150, deadline=None)
@given(st.dates(min_value=datetime(1, 1, 1).date(), max_value=datetime(9999, 12, 31).date()),
       st.sampled_from(FORMATS))
def test_a_date_is_outside_the_range_exactly_when_its_year_is(day, pattern):
    """Any date Python's calendar holds, in the formats people write: 'outside' iff pandas cannot hold its year."""
    text = datetime(day.year, day.month, day.day, 13, 5).strftime(pattern.replace("%Y", f"{day.year:04d}"))
    far = not FIRST_YEAR <= day.year <= LAST_YEAR
    assert outside_range(pd.Series([text]), day_first=pattern.startswith("%d")).tolist() == [far]
    if not far:
        assert as_datetime(pd.Series([text]), day_first=pattern.startswith("%d")).notna().all()


def test_a_lone_year_or_words_are_not_dates_outside_the_range():
    assert outside_range(pd.Series(["1500", "9999", "abc", None, "9999-99-99", "0001-01-01"])).tolist() == [
        False, False, False, False, False, True]


def test_a_column_of_no_end_dates_still_looks_like_dates():
    assert looks_like_dates(pd.Series(["9999-12-31", "31/12/9999", "2024-01-02", "2024-02-03"]))
    assert not looks_like_dates(pd.Series(["1500", "9999", "2024", "abc"]))
