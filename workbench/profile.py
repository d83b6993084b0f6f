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
    if ptypes.is_datetime64_any_dtype(series):
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
        info["stats"] = {
            "min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0, "median": float(np.median(values)),
        }
        counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
        info["histogram"] = {"edges": edges.tolist(), "counts": counts.tolist()}
    elif kind == "datetime" and len(present):
        info["stats"] = {"min": present.min().isoformat(), "max": present.max().isoformat()}
        counts, edges = np.histogram(present.astype("int64").to_numpy(), bins=HISTOGRAM_BINS)
        info["histogram"] = {"edges": pd.to_datetime(edges).strftime("%Y-%m-%d %H:%M").tolist(),
                             "counts": counts.tolist()}
    elif len(present):
        top = present.astype(str).value_counts().head(TOP_VALUES)
        info["top"] = [[str(k), int(v)] for k, v in top.items()]
        info["histogram"] = {"labels": [str(k) for k in top.index], "counts": [int(v) for v in top.to_numpy()]}
    return info


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
        from workbench.errors import UserError

        raise UserError(f"There is no column called '{target}'.")
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
    for name in frame.columns:
        if name == target or kinds.get(name) == "identifier":
            continue
        score = _single_column_score(data[name], y, is_classification)
        if score is not None and score >= LEAKAGE_SCORE:
            warnings.append(_warning("leakage", name, f"'{name}' predicts the target almost perfectly on its own "
                                     f"(score {score:.3f}); if it is only known after the outcome, exclude it."))
    return warnings


def _single_column_score(x: pd.Series, y: pd.Series, is_classification: bool) -> float | None:
    """How well one column alone predicts the target (a shallow tree: accuracy or R²)."""
    if ptypes.is_datetime64_any_dtype(x):
        x = x.astype("int64")
    if ptypes.is_bool_dtype(x) or ptypes.is_numeric_dtype(x):
        features = pd.to_numeric(x, errors="coerce").astype("float64").fillna(-1e300).to_numpy().reshape(-1, 1)
    else:
        codes = x.astype(str).astype("category").cat.codes
        if codes.max() + 1 > 0.5 * len(x):  # nearly unique text would "predict" anything by memorising
            return None
        # Order categories by their mean target so a shallow tree can separate them.
        target_codes = y.astype(str).astype("category").cat.codes if is_classification else y.astype(float)
        order = target_codes.groupby(codes).mean().rank(method="first")
        features = codes.map(order).to_numpy(dtype="float64").reshape(-1, 1)
    if is_classification:
        labels = y.astype(str).to_numpy()
        if len(set(labels)) < 2:
            return None
        baseline = pd.Series(labels).value_counts(normalize=True).iloc[0]
        model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(features, labels)
        score = model.score(features, labels)
        return score if score > baseline + 0.01 else None
    target = pd.to_numeric(y, errors="coerce").astype("float64")
    if target.std() == 0:
        return None
    model = DecisionTreeRegressor(max_depth=6, random_state=0).fit(features, target)
    return model.score(features, target)


def _warning(code: str, column: str | None, message: str) -> dict[str, str]:
    return {"code": code, "column": column, "message": message}
