"""Reading dates and times written as ISO 8601 text, the same way at ingest and at prediction."""

from __future__ import annotations

import pandas as pd

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
