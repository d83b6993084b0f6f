"""Column kinds, statistics, histograms and plain-language warnings about a table.

Everything here is vectorised pandas/numpy so that a million rows profile in seconds.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from workbench.dates import as_datetime, looks_like_dates, naive_utc, reads_day_first

KINDS = ("numeric", "categorical", "boolean", "datetime", "text", "identifier")
HISTOGRAM_BINS = 20
TOP_VALUES = 10
MOSTLY_MISSING = 0.5
HIGH_CARDINALITY = 50
IMBALANCE_SHARE = 0.10
LEAKAGE_SCORE = 0.99
LEAKAGE_SAMPLE = 20_000
_ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|guid|key)$|^id[_\s-]", re.IGNORECASE)


def column_kind(series: pd.Series, distinct: int, n_present: int) -> str:
    if ptypes.is_bool_dtype(series) or (distinct == 2 and ptypes.is_numeric_dtype(series)
                                        and set(series.dropna().unique()) <= {0, 1}):
        return "boolean"
    if ptypes.is_datetime64_any_dtype(series) or looks_like_dates(series.dropna()):  # text dates too (13/02/2020)
        return "datetime"
    unique_per_row = n_present >= 20 and distinct == n_present
    if ptypes.is_numeric_dtype(series):
        if unique_per_row and ptypes.is_integer_dtype(series) and _ID_NAME.search(str(series.name)):
            return "identifier"
        return "numeric"
    if unique_per_row or (_ID_NAME.search(str(series.name)) and distinct > 0.9 * n_present):
        return "identifier"
    if distinct > HIGH_CARDINALITY and series.dropna().astype(str).str.len().mean() > 30:
        return "text"
    return "categorical"


def profile_table(frame: pd.DataFrame) -> dict[str, Any]:
    n_rows = len(frame)
    columns = [_profile_column(frame[name], n_rows) for name in frame.columns]
    duplicates = int(pd.util.hash_pandas_object(frame, index=False).duplicated().sum()) if n_rows else 0
    return {
        "n_rows": n_rows,
        "n_columns": frame.shape[1],
        "duplicate_rows": duplicates,
        "columns": columns,
        "warnings": dataset_warnings(columns, duplicates, n_rows),
    }


def _profile_column(series: pd.Series, n_rows: int) -> dict[str, Any]:
    present = series.dropna()
    distinct = int(present.nunique())
    kind = column_kind(series, distinct, len(present))
    info: dict[str, Any] = {
        "name": str(series.name),
        "kind": kind,
        "dtype": str(series.dtype),
        "missing": int(n_rows - len(present)),
        "missing_share": round((n_rows - len(present)) / n_rows, 4) if n_rows else 0.0,
        "distinct": distinct,
    }
    if kind in ("numeric", "identifier") and ptypes.is_numeric_dtype(series) and len(present):
        values = present.to_numpy(dtype="float64")
        # Sums of values near the float64 limit (1e308) overflow: work on values scaled to at most 1 in size.
        scale = float(np.abs(values).max()) or 1.0
        scaled = values / scale
        info["stats"] = {
            "min": float(values.min()), "max": float(values.max()), "mean": float(scaled.mean() * scale),
            "std": float(scaled.std(ddof=1) * scale) if len(values) > 1 else 0.0, "median": float(np.median(values)),
        }
        counts, edges = _histogram(scaled)
        info["histogram"] = {"edges": (edges * scale).tolist(), "counts": counts.tolist()}
    elif kind == "datetime" and len(present):
        dates = naive_utc(as_datetime(present, reads_day_first(present)).dropna())
        if dates.empty:  # every date outside the years pandas holds
            return info
        info["stats"] = {"min": dates.min().isoformat(), "max": dates.max().isoformat()}
        counts, edges = _histogram(dates.astype("int64").to_numpy(dtype="float64"))
        info["histogram"] = {"edges": pd.to_datetime(edges).strftime("%Y-%m-%d %H:%M").tolist(),
                             "counts": counts.tolist()}
    elif len(present):
        top = present.astype(str).value_counts().head(TOP_VALUES)
        info["top"] = [[str(k), int(v)] for k, v in top.items()]
        info["histogram"] = {"labels": [str(k) for k in top.index], "counts": [int(v) for v in top.to_numpy()]}
        if kind == "categorical" and (spellings := _spellings(present)):
            info["spellings"] = spellings
    return info


def _spellings(present: pd.Series) -> list[list[str]]:
    """Values written apart that differ only in capitals or spaces ('Yes', 'yes', 'YES'): up to 3 such groups of up
    to 3 spellings. They are different categories (and classes) to a model."""
    values = pd.Series(present.astype(str).unique())
    key = values.str.casefold().str.replace(r"\s+", " ", regex=True).str.strip()
    groups = values.groupby(key, sort=False).agg(list)
    return [group[:3] for group in groups if len(group) > 1][:3]


def _histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
        return np.histogram(values, bins=HISTOGRAM_BINS)
    except ValueError:  # values too close together, for their size, to have 20 distinct bin edges in float64
        return np.array([len(values)]), np.array([values.min(), values.max()])


def dataset_warnings(columns: list[dict[str, Any]], duplicates: int, n_rows: int) -> list[dict[str, str]]:
    warnings = []
    for col in columns:
        name = col["name"]
        if col["kind"] == "identifier":
            warnings.append(_warning("identifier", name, f"'{name}' looks like an identifier (a different value "
                                     "on every row); it is left out of training by default."))
        if col["distinct"] <= 1:
            warnings.append(_warning("constant", name, f"'{name}' has the same value on every row; "
                                     "it carries no information."))
        if col["missing_share"] > MOSTLY_MISSING:
            warnings.append(_warning("mostly_missing", name, f"'{name}' is missing on "
                                     f"{col['missing_share']:.0%} of rows."))
        if col.get("spellings"):
            written = "; ".join(", ".join(f"'{v}'" for v in group) for group in col["spellings"])
            warnings.append(_warning("spellings", name, f"'{name}' writes some values in different capitals or "
                                     f"spacing ({written}); they count as different categories. If they mean the "
                                     "same, write them the same way in the file."))
        if col["kind"] == "categorical" and col["distinct"] > HIGH_CARDINALITY:
            warnings.append(_warning("high_cardinality", name, f"'{name}' has {col['distinct']:,} different "
                                     "categories; rare ones will be grouped together."))
    if duplicates:
        warnings.append(_warning("duplicate_rows", None, f"{duplicates:,} rows ({duplicates / n_rows:.1%}) are "
                                 "exact copies of an earlier row."))
    return warnings


def target_warnings(frame: pd.DataFrame, profile: dict[str, Any], target: str) -> list[dict[str, str]]:
    """Warnings that need a target: class imbalance and columns that give the target away."""
    if target not in frame.columns:
        from workbench.errors import UserError, did_you_mean

        raise UserError(f"There is no column called '{target}'.{did_you_mean(target, frame.columns)}")
    warnings = []
    kinds = {c["name"]: c["kind"] for c in profile["columns"]}
    data = frame[frame[target].notna()]
    if len(data) > LEAKAGE_SAMPLE:
        data = data.sample(LEAKAGE_SAMPLE, random_state=0)
    y = data[target]
    is_classification = kinds.get(target) in ("boolean", "categorical") or y.nunique() <= 20
    if is_classification and len(y):
        shares = y.astype(str).value_counts(normalize=True)
        if len(shares) >= 2 and shares.iloc[-1] < IMBALANCE_SHARE:
            warnings.append(_warning("imbalance", target, f"The target is imbalanced: '{shares.index[-1]}' is only "
                                     f"{shares.iloc[-1]:.1%} of rows; accuracy alone will flatter a model, "
                                     "look at balanced accuracy."))
    if is_classification:
        y = y.astype(str)
    elif _is_quantity(y):
        y = _as_float(y)
        scale = float(y.abs().max())
        if not (0 < scale < np.inf) or y.std() == 0:
            return warnings
        y = y / scale  # R² does not depend on the scale, and squares of values near 1e308 would overflow
    else:
        return warnings  # many different texts (identifiers, free text): no column can "predict" those
    for name in frame.columns:
        if name == target or kinds.get(name) == "identifier":
            continue
        score = _single_column_score(data[name], y, is_classification)
        if score is not None and score >= LEAKAGE_SCORE:
            warnings.append(_warning("leakage", name, f"'{name}' predicts the target almost perfectly on its own "
                                     f"(score {score:.3f}); if it is only known after the outcome, exclude it."))
    return warnings


def _is_quantity(series: pd.Series) -> bool:
    return ptypes.is_bool_dtype(series) or ptypes.is_numeric_dtype(series) or ptypes.is_datetime64_any_dtype(series)


def _as_float(series: pd.Series) -> pd.Series:
    """Numbers, booleans and datetimes (as nanoseconds) as float64; a nullable NA becomes NaN."""
    if ptypes.is_datetime64_any_dtype(series):
        return series.astype("int64").astype("float64").where(series.notna())
    return series.astype("float64")


def _single_column_score(x: pd.Series, y: pd.Series, is_classification: bool) -> float | None:
    """How well one column alone predicts the target (a shallow tree: accuracy or R²).

    y is text labels (classification) or float64 scaled to at most 1 in size (regression), with no missing values.
    """
    if len(x) == 0:
        return None
    if _is_quantity(x):
        # A tree only uses the order of the values, so ranks lose nothing; scikit-learn's trees work in float32,
        # where 1e300 (or a missing-value sentinel like it) overflows and nanosecond timestamps blur together.
        # Missing values rank 0, below every present value.
        features = _as_float(x).rank(method="dense").fillna(0).to_numpy(dtype="float64").reshape(-1, 1)
    else:
        codes = x.astype(str).astype("category").cat.codes
        if codes.max() + 1 > 0.5 * len(x):  # nearly unique text would "predict" anything by memorising
            return None
        # Order categories by their mean target so a shallow tree can separate them.
        target_codes = y.astype("category").cat.codes if is_classification else y
        order = target_codes.groupby(codes).mean().rank(method="first")
        features = codes.map(order).to_numpy(dtype="float64").reshape(-1, 1)
    if is_classification:
        labels = y.to_numpy()
        if len(set(labels)) < 2:
            return None
        baseline = pd.Series(labels).value_counts(normalize=True).iloc[0]
        model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(features, labels)
        score = model.score(features, labels)
        return score if score > baseline + 0.01 else None
    model = DecisionTreeRegressor(max_depth=6, random_state=0).fit(features, y)
    return model.score(features, y)


def _warning(code: str, column: str | None, message: str) -> dict[str, str]:
    return {"code": code, "column": column, "message": message}
