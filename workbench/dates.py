"""Reading dates and times written as text, the same way at ingest, training and prediction: ISO 8601 first, then
any other format, with the order of day and month in dates written as numbers (13/02/2020) chosen per column."""

from __future__ import annotations

import re

import pandas as pd
from pandas.api import types as ptypes

# A date written as numbers with the year last: "13/02/2020", "2.13.20", "01-02-2020 10:30".
_NUMBERS_YEAR_LAST = re.compile(r"^\s*(\d{1,2})([/.-])(\d{1,2})[/.-]\d{2}(?:\d{2})?(?:\D|$)")
# A time of day followed by its offset from UTC ("Z", "+02:00", "-0500", "+02"); a bare date's "-02" is not one.
_WITH_OFFSET = r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)\s*$"


def parse_iso8601(text: pd.Series) -> pd.Series:
    """ISO 8601 text as UTC datetimes: times with an offset converted to UTC, times without one taken as UTC;
    NaT where a value does not read. The values with and without an offset are parsed apart: in one call pandas
    (2.3) gives the naive times that follow an offset that same offset, so "10:00" after "10:00+02:00" read 08:00."""
    text = text.astype("string")
    with_offset = text.str.contains(_WITH_OFFSET, case=False, regex=True).fillna(False).astype(bool)
    if not with_offset.any() or with_offset[text.notna()].all():
        return pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    for part in (with_offset, ~with_offset):
        parsed[part] = pd.to_datetime(text[part], errors="coerce", format="ISO8601", utc=True)
    return parsed


def naive_utc(dates: pd.Series) -> pd.Series:
    """Datetimes as naive UTC, as ingest keeps them: aware ones converted to UTC, naive ones as they are."""
    if getattr(dates.dt, "tz", None) is None:
        return dates
    return dates.dt.tz_convert("UTC").dt.tz_localize(None)


def as_datetime(values: pd.Series, day_first: bool = False) -> pd.Series:
    """Datetimes as they are; text parsed as ISO 8601 first (fast), then any other date format, reading dates
    written as numbers day first or month first as told (`reads_day_first` tells it for a column); else NaT."""
    if ptypes.is_datetime64_any_dtype(values):
        return values
    text = values.astype("string")
    parsed = parse_iso8601(text)
    failed = parsed.isna() & text.notna()
    if failed.any():
        parsed[failed] = pd.to_datetime(text[failed], errors="coerce", format="mixed", dayfirst=day_first, utc=True)
    return parsed


def reads_day_first(values: pd.Series) -> bool:
    """Whether a column's dates written as numbers put the day first. A first number above 12 anywhere in the
    column says the day comes first (13/02/2020), a second one above 12 says the month does (02/13/2020); when
    every date fits both, dates with dots are read day first (01.02.2020, the European way) and others month first
    (01/02/2020, the American way). Read once per column, so that every row of it is read the same way: pandas
    alone reads 01/02/2020 as 2 January and 13/02/2020 as 13 February in the same column."""
    if ptypes.is_datetime64_any_dtype(values) or ptypes.is_numeric_dtype(values) or ptypes.is_bool_dtype(values):
        return False
    parts = values.dropna().astype(str).drop_duplicates().str.extract(_NUMBERS_YEAR_LAST).dropna()
    if parts.empty:
        return False
    first, second = parts[0].astype(int), parts[2].astype(int)
    if (second > 12).any():
        return False
    return bool((first > 12).any() or (parts[1] == ".").mean() > 0.5)


# pandas holds datetimes in nanoseconds, from 1677-09-21 to 2262-04-11. A date outside (the '9999-12-31' many systems
# write for "no end date", a '0001-01-01' for "no start") is read as missing, and said so.
FIRST_YEAR, LAST_YEAR = pd.Timestamp.min.year + 1, pd.Timestamp.max.year - 1
_YEAR = re.compile(r"(?<!\d)\d{4}(?!\d)")


def outside_range(values: pd.Series, day_first: bool = False) -> pd.Series:
    """Which values are dates whose year pandas cannot hold (before FIRST_YEAR or after LAST_YEAR): those that read as
    dates once that year is put in range. A lone year ('1500') is no date."""
    text = values.astype("string")
    in_range: dict[str, str] = {}
    for value in text.dropna().unique():
        years = _YEAR.findall(value)
        if len(years) == 1 and not FIRST_YEAR <= int(years[0]) <= LAST_YEAR and \
                re.search(r"\d", value.replace(years[0], "", 1)):
            in_range[value] = value.replace(years[0], "2000", 1)
    if not in_range:
        return pd.Series(False, index=values.index)
    candidates = pd.Series(list(in_range.values()), index=list(in_range.keys()), dtype="string")
    reads = as_datetime(candidates, day_first).notna()
    return text.isin(list(reads.index[reads])).fillna(False).astype(bool)


def looks_like_dates(present: pd.Series) -> bool:
    """Text columns whose values (a sample of distinct ones) nearly all read as dates (or are dates pandas cannot
    hold). Plain numbers and words without digits ('May', 'March') are not taken for dates."""
    if not (ptypes.is_object_dtype(present) or ptypes.is_string_dtype(present)) or present.empty:
        return False
    sample = present.astype(str).drop_duplicates().head(200)
    if pd.to_numeric(sample, errors="coerce").notna().mean() > 0.5 or sample.str.contains(r"\d").mean() < 0.9:
        return False
    day_first = reads_day_first(sample)
    return (as_datetime(sample, day_first).notna() | outside_range(sample, day_first)).mean() >= 0.9
