"""CSV out that a spreadsheet cannot be tricked into running (CSV/formula injection)."""

from __future__ import annotations

import pandas as pd
from pandas.api import types as ptypes

# A cell starting with one of these is read as a formula by Excel, LibreOffice and Google Sheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells (and column names) that would start a formula with a single quote.

    Numbers stay numbers: only text columns are touched, so -1.5 in a numeric column is kept as is.
    """
    out = frame.copy()
    out.columns = [_neutralise(str(c)) for c in out.columns]
    for name in out.columns:
        column = out[name]
        if ptypes.is_object_dtype(column) or ptypes.is_string_dtype(column):
            out[name] = column.map(lambda v: _neutralise(v) if isinstance(v, str) else v)
    return out


def to_safe_csv(frame: pd.DataFrame) -> str:
    return neutralise_formulas(frame).to_csv(index=False)


def _neutralise(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value
