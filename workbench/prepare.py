"""From a table and a run configuration to model-ready arrays: task, features, split, preprocessing.

Preprocessing is scikit-learn transformers fitted on the training rows only. The split depends only
on the rows, the target and the split settings, so runs with the same settings share their test rows.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from functools import cached_property, partial
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from scipy import stats
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, QuantileTransformer, StandardScaler
from sklearn.preprocessing._data import BOUNDS_THRESHOLD  # QuantileTransformer's margin inside (0, 1)
from sklearn.utils.validation import check_is_fitted

from workbench.dates import as_datetime, reads_day_first
from workbench.errors import UserError, did_you_mean
from workbench.profile import column_kind
from workbench.runconfig import PrepConfig, SplitConfig
from workbench.tasks import Task

MAX_CLASSES_FOR_NUMERIC_TARGET = 20
RARE_CATEGORY_MIN_COUNT = 5
MAX_CATEGORIES = 100
MISSING_CATEGORY = "(missing)"
DATE_PARTS = ("year", "month", "day", "dayofweek")  # and "hour" where a column holds times of day
SPLITS = ("train", "val", "test")
MIN_TRAIN_ROWS = 20
NO_FEATURES = "No usable feature columns are left once the target and excluded columns are removed."
# Numbers beyond this size tell a model nothing more, and their squares overflow float64 in the scalers' variance and
# the tie-breaking noise (1e308 became inf, then NaN); they are clipped to it, at training and prediction alike.
MAX_MAGNITUDE = 1e150
# The preprocessing is fitted on at most this many training rows: quantiles, means and the categories kept are
# as good from a sample this size, and fitting on every row of a large table held several copies of it at once.
FIT_SAMPLE_ROWS = 200_000
TRANSFORM_CHUNK_ROWS = 65_536


def detect_task(y: pd.Series, requested: str = "auto") -> Task:
    distinct = y.nunique()
    if distinct < 2:
        raise UserError(f"The target '{y.name}' has only one value; there is nothing to predict.")
    if ptypes.is_datetime64_any_dtype(y):
        raise UserError(f"The target '{y.name}' holds dates: Workbench predicts categories and numbers, not dates. "
                        "To predict a time, add a column of numbers made from it (such as days until it) and choose "
                        "that one.")
    numeric = ptypes.is_numeric_dtype(y) and not ptypes.is_bool_dtype(y)
    if requested == Task.REGRESSION:
        if not numeric:
            raise UserError(f"Regression needs a numeric target, but '{y.name}' holds text or categories.")
        return Task.REGRESSION
    if requested in (Task.BINARY, Task.MULTICLASS):
        if requested == Task.BINARY and distinct != 2:
            raise UserError(f"Binary classification needs exactly 2 target values; '{y.name}' has {distinct}.")
        if requested == Task.MULTICLASS and distinct > 1000:
            raise UserError(f"'{y.name}' has {distinct:,} different values: too many classes; try regression.")
        if _mostly_single_rows(y, distinct):
            raise UserError(_single_rows_sentence(y, distinct) + (" Or try regression." if numeric else ""))
        return Task(requested)
    if numeric:
        integral = bool((y.dropna() % 1 == 0).all())
        if not (integral and distinct <= MAX_CLASSES_FOR_NUMERIC_TARGET) or _mostly_single_rows(y, distinct):
            return Task.REGRESSION
    if distinct > 1000:
        raise UserError(f"'{y.name}' has {distinct:,} different text values: too many classes to predict.")
    if _mostly_single_rows(y, distinct):
        raise UserError(_single_rows_sentence(y, distinct))
    return Task.BINARY if distinct == 2 else Task.MULTICLASS


def _mostly_single_rows(y: pd.Series, distinct: int) -> bool:
    """More classes than half the rows: most classes are seen once, in one split at most (a name or an identifier
    chosen as the target). Gradient boosting also grows a tree per class and round: 120 classes in 120 rows ran for
    minutes."""
    return distinct > 2 and distinct > y.notna().sum() / 2


def _single_rows_sentence(y: pd.Series, distinct: int) -> str:
    return (f"The target '{y.name}' has {distinct:,} different values in {int(y.notna().sum()):,} rows: most values "
            "appear once, so there is nothing to learn about them. Choose another column to predict.")


def class_labels(y: pd.Series) -> pd.Series:
    """Targets as text labels, so 1.0 and '1' name the same class and output columns read well."""
    if ptypes.is_float_dtype(y) and (y % 1 == 0).all():
        y = y.astype("int64")
    return y.astype(str)


@dataclass
class Features:
    numeric: list[str] = field(default_factory=list)
    boolean: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    datetime: list[str] = field(default_factory=list)
    datetime_hour: list[str] = field(default_factory=list)  # the datetime columns that hold a time of day
    datetime_day_first: list[str] = field(default_factory=list)  # the text date columns read day first (13/02/2020)
    notes: list[str] = field(default_factory=list)


def choose_features(frame: pd.DataFrame, target: str, exclude: list[str], datetime_parts: bool = True) -> Features:
    """All columns but the target and exclusions; identifiers and free text are left out, with a note, and so are
    dates when they are not to be split into parts (`datetime_parts` False)."""
    missing = [c for c in exclude if c not in frame.columns]
    if missing:
        raise UserError(f"Cannot exclude '{missing[0]}': there is no such column.{did_you_mean(missing[0], frame.columns)}")
    features = Features()
    for name in frame.columns:
        if name == target or name in exclude:
            continue
        column = frame[name]
        present = column.dropna()
        kind = column_kind(column, int(present.nunique()), len(present))
        if kind == "identifier":
            features.notes.append(f"'{name}' looks like an identifier and was left out.")
        elif kind == "text":
            features.notes.append(f"'{name}' is free text and was left out (text features are not supported yet).")
        elif present.nunique() <= 1:
            features.notes.append(f"'{name}' has a single value and was left out.")
        elif kind == "datetime" and not datetime_parts:
            features.notes.append(f"'{name}' holds dates and was left out (splitting dates into parts is off).")
        elif kind == "datetime":
            features.datetime.append(name)
            day_first = reads_day_first(present)
            if day_first:
                features.datetime_day_first.append(name)
                features.notes.append(f"'{name}' writes its dates day first; they were read as day/month/year.")
            times = as_datetime(present, day_first)
            if (times.dt.hour != 0).any() or (times.dt.minute != 0).any():
                features.datetime_hour.append(name)
        elif kind == "boolean" and (ptypes.is_numeric_dtype(column) or ptypes.is_bool_dtype(column)):
            features.boolean.append(name)
        elif kind == "numeric":
            features.numeric.append(name)
        else:
            features.categorical.append(name)
    if not (features.numeric or features.boolean or features.categorical or features.datetime):
        raise UserError(NO_FEATURES)
    return features


def datetime_part_names(features: Features) -> list[str]:
    names = []
    for name in features.datetime:
        names += [f"{name}_{part}" for part in DATE_PARTS]
        if name in features.datetime_hour:
            names.append(f"{name}_hour")
    return names


def datetime_parts(frame: pd.DataFrame, features: Features) -> pd.DataFrame:
    """Each datetime column becomes numeric parts; the same function runs at training and prediction."""
    parts = {}
    for name in features.datetime:
        values = as_datetime(frame[name], name in features.datetime_day_first)
        for part in DATE_PARTS + (("hour",) if name in features.datetime_hour else ()):
            parts[f"{name}_{part}"] = getattr(values.dt, part)
    return pd.DataFrame(parts, index=frame.index, columns=datetime_part_names(features), dtype="float64")


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    fingerprint: str
    stratified: bool


def split_rows(index: pd.Index, labels: pd.Series | None, config: SplitConfig, order: pd.Series | None = None) -> Split:
    """Seeded train/validation/test split of row ids, stratified by class when possible; or, given `order` (the
    values of config.order_by for these rows, none missing), by time: the earliest rows train, the latest test."""
    if order is not None:
        return _split_in_order(index, order, config)
    ids = np.asarray(index)
    stratify = labels.to_numpy() if labels is not None else None
    if stratify is not None and (pd.Series(stratify).value_counts().min() < 3
                                 or np.floor(min(config.test, config.val) * len(ids)) < len(set(stratify))):
        stratify = None  # a class too rare to appear in every split, or more classes than test or validation rows
    rest, test = train_test_split(ids, test_size=config.test, random_state=config.seed,
                                  stratify=stratify)
    rest_labels = None if stratify is None else labels.loc[rest].to_numpy()
    train, val = train_test_split(rest, test_size=config.val / (config.train + config.val),
                                  random_state=config.seed, stratify=rest_labels)
    digest = hashlib.sha256()
    digest.update(repr((len(ids), config.train, config.val, config.test, config.seed)).encode())
    digest.update(np.sort(test).astype("int64").tobytes())
    return Split(np.sort(train), np.sort(val), np.sort(test), digest.hexdigest()[:16], stratify is not None)


def _split_in_order(index: pd.Index, order: pd.Series, config: SplitConfig) -> Split:
    """Rows sorted by `order` (ties by row id, so the split is the same every time); as many test and validation rows
    as the random split would take (rounded up), from the end."""
    ids = np.asarray(index)
    sorted_ids = ids[np.lexsort((ids, order.to_numpy()))]
    n_test = math.ceil(config.test * len(ids))
    n_val = math.ceil(config.val / (config.train + config.val) * (len(ids) - n_test))
    n_train = len(ids) - n_test - n_val
    train, val, test = sorted_ids[:n_train], sorted_ids[n_train:n_train + n_val], sorted_ids[n_train + n_val:]
    digest = hashlib.sha256()
    digest.update(repr((len(ids), config.train, config.val, config.test, "order_by", config.order_by)).encode())
    digest.update(np.sort(test).astype("int64").tobytes())
    return Split(np.sort(train), np.sort(val), np.sort(test), digest.hexdigest()[:16], False)


def time_order(frame: pd.DataFrame, column: str) -> pd.Series:
    """The values that order the rows in time: `column` read as dates (numbers, such as a year, as they are); NaT or
    NaN where a row has none. Refuses a column that is missing or holds neither."""
    if column not in frame.columns:
        raise UserError(f"Cannot order the split by '{column}': there is no such column.{did_you_mean(column, frame.columns)}")
    values = frame[column]
    if ptypes.is_bool_dtype(values):
        raise UserError(f"Cannot order the split by '{column}': it holds true/false values, not dates.")
    if ptypes.is_numeric_dtype(values):
        return values.astype("float64")
    dates = as_datetime(values, reads_day_first(values))
    if dates.notna().sum() < max(1, 0.5 * values.notna().sum()):
        raise UserError(f"Cannot order the split by '{column}': most of its values are not dates.")
    return dates


class Preprocessor(BaseEstimator):
    """The column transformations as a scikit-learn estimator: settings in `__init__`, and `fit` (on training rows)
    sets the fitted state, the attributes ending in an underscore. `transform` then turns any table with the
    training columns into (numeric float32 matrix, categorical int64 codes). A saved run keeps `to_config()` in its
    config.json and the fitted column transformer (`transformer_`) as skops; `from_config` puts them together again.
    """

    def __init__(self, features: Features, categorical_mode: str = "embedding", scaling: str = "standard",
                 impute_numeric: str = "median", seed: int = 0):
        self.features = features
        self.categorical_mode = categorical_mode  # "onehot" (into the numeric matrix) or "embedding" (integer codes)
        self.scaling = scaling  # "quantile", "standard", "minmax" or "robust"
        self.impute_numeric = impute_numeric
        self.seed = seed  # of the tiny noise that breaks ties before a quantile transform

    @property
    def input_columns(self) -> list[str]:
        f = self.features
        return f.numeric + f.boolean + f.categorical + f.datetime

    def fit(self, frame: pd.DataFrame, y: Any = None) -> Preprocessor:
        """Fit on `frame`, training rows that hold (at least) the input columns. Sets `transformer_`, `n_numeric_out_`
        (width of the numeric matrix), `cardinalities_` (embedding table sizes, code 0 included) and `feature_names_`
        (the transformer's output columns)."""
        features = self.features
        numeric_columns = features.numeric + datetime_part_names(features)
        fit_frame = model_frame(frame, features)
        if self.scaling == "quantile":
            fit_frame = break_ties(fit_frame, numeric_columns, self.seed)
        self.transformer_ = build_transformer(features, self.impute_numeric, self.categorical_mode, self.scaling,
                                              len(fit_frame))
        self.transformer_.fit(fit_frame)
        self.feature_names_ = [str(name) for name in self.transformer_.get_feature_names_out()]
        if self.categorical_mode == "embedding":
            self.n_numeric_out_ = len(numeric_columns) + len(features.boolean)
            self.cardinalities_ = []
            # Every kept category (and the rare-category group) occurs in the rows fitted on, so their largest code
            # bounds the table size; code 0 stays for categories never seen in training.
            if features.categorical:  # (without any, the column transformer leaves their pipeline unfitted)
                encode = self.transformer_.named_transformers_["categorical"]
                codes = encode.transform(fit_frame[features.categorical])
                self.cardinalities_ = [int(codes[:, j].max()) + 2 for j in range(codes.shape[1])]
        else:
            self.n_numeric_out_, self.cardinalities_ = len(self.feature_names_), []
        return self

    def transform(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The given rows (index labels; default all) in chunks, so the float64 intermediates of the column
        transformer stay the size of a chunk, not of the table."""
        check_is_fitted(self, "transformer_")
        labels = frame.index if rows is None else rows
        n_cat = len(self.cardinalities_)
        x_num = np.empty((len(labels), self.n_numeric_out_), dtype="float32")
        x_cat = np.empty((len(labels), n_cat), dtype="int64")
        for start in range(0, len(labels), TRANSFORM_CHUNK_ROWS):
            chunk = frame.iloc[start:start + TRANSFORM_CHUNK_ROWS] if rows is None else \
                frame.loc[rows[start:start + TRANSFORM_CHUNK_ROWS]]
            small = self._small_batch() if 0 < len(chunk) <= SMALL_BATCH_ROWS else None
            out = small.transform(chunk) if small is not None else \
                np.asarray(self.transformer_.transform(model_frame(chunk, self.features)), dtype="float64")
            x_num[start:start + len(out)] = out[:, : self.n_numeric_out_]
            if n_cat:
                x_cat[start:start + len(out)] = out[:, self.n_numeric_out_:] + 1  # 0 is kept for unknown and missing
        return x_num, x_cat

    def _small_batch(self) -> SmallBatchTransform | None:
        """The numpy form of the fitted transformer (built once per fitted transformer); None where it has none."""
        cached = self.__dict__.get("_small_batch_cache")
        if cached is None or cached[0] is not self.transformer_:
            cached = self._small_batch_cache = (self.transformer_,
                                                SmallBatchTransform.build(self.transformer_, self.features))
        return cached[1]

    def to_config(self) -> dict[str, Any]:
        """The settings and the fitted shapes as JSON-able values (the fitted transformer is saved apart)."""
        check_is_fitted(self, "transformer_")
        return {"features": asdict(self.features), "categorical_mode": self.categorical_mode, "scaling": self.scaling,
                "impute_numeric": self.impute_numeric, "seed": self.seed, "n_numeric_out": self.n_numeric_out_,
                "cardinalities": self.cardinalities_, "feature_names": self.feature_names_}

    @classmethod
    def from_config(cls, config: dict[str, Any], transformer: ColumnTransformer) -> Preprocessor:
        """The fitted preprocessor of a saved run: `to_config()`'s values (runs saved before scaling, imputation and
        seed were kept have None there) and its fitted column transformer."""
        preprocessor = cls(Features(**config["features"]), config["categorical_mode"], config.get("scaling"),
                           config.get("impute_numeric"), config.get("seed", 0))
        preprocessor.transformer_ = transformer
        preprocessor.n_numeric_out_ = int(config["n_numeric_out"])
        preprocessor.cardinalities_ = [int(c) for c in config["cardinalities"]]
        preprocessor.feature_names_ = list(config["feature_names"])
        return preprocessor


def model_frame(frame: pd.DataFrame, features: Features) -> pd.DataFrame:
    """Numbers as float, categories as text, datetimes as parts: the input of the column transformer."""
    numeric = frame[features.numeric + features.boolean].astype("float64").clip(-MAX_MAGNITUDE, MAX_MAGNITUDE)
    categorical = frame[features.categorical].astype(object).where(frame[features.categorical].notna(), None)
    categorical = categorical.map(lambda v: v if v is None else str(v))
    return pd.concat([numeric, datetime_parts(frame, features), categorical], axis=1)


SMALL_BATCH_ROWS = 100  # up to this many rows (a served API's request) go through SmallBatchTransform
_UNSEEN = "\x00unseen category\x00"  # stands for every category not seen in training (no cell holds it)


class SmallBatchTransform:
    """The fitted column transformer's `transform` of a few rows, in numpy and to the bit: the imputers' fill values
    are theirs, the scaler's own `transform` runs on the numeric matrix, and each category's output row is the
    encoder's, read off once by transforming every training category (and an unseen one, and a missing one). The
    column transformer with `model_frame` costs ~5 ms a call on pandas and input checks whatever the rows: all a
    served one-row request may take. `build` gives None for a transformer made otherwise (the column transformer then
    runs); tests/test_prepare.py checks the two agree on messy rows."""

    def __init__(self, features: Features, numeric_fill: np.ndarray | None, scale_steps: list, boolean_fill:
                 np.ndarray | None, categories: list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]):
        self.features = features
        self.numeric_fill, self.scale_steps, self.boolean_fill = numeric_fill, scale_steps, boolean_fill
        self.categories = categories  # per column: output row per category, for an unseen one, for a missing one

    @classmethod
    def build(cls, transformer: ColumnTransformer, features: Features) -> SmallBatchTransform | None:
        fitted = transformer.named_transformers_
        used = {name for name, columns in (("numeric", features.numeric + datetime_part_names(features)),
                                            ("boolean", features.boolean), ("categorical", features.categorical))
                if columns}
        kinds = {name: type(step) for name, step, _ in transformer.transformers_ if name in used}
        if set(kinds) != used or kinds.get("numeric", Pipeline) is not Pipeline \
                or kinds.get("boolean", SimpleImputer) is not SimpleImputer:
            return None
        numeric_fill, scale_steps, boolean_fill = None, [], None
        if "numeric" in used:
            (_, impute), *scale_steps = fitted["numeric"].steps
            scale_steps = [step for _, step in scale_steps]
            # steps fitted on a table check its column names; those after the imputer were fitted on its array
            if not cls._plain_imputer(impute) or any(hasattr(step, "feature_names_in_") for step in scale_steps):
                return None
            numeric_fill = np.asarray(impute.statistics_, dtype="float64")
            scale_steps = [partial(_quantile_normal, step) if isinstance(step, QuantileTransformer)
                           and step.output_distribution == "normal" else step.transform for step in scale_steps]
        if "boolean" in used:
            if not cls._plain_imputer(fitted["boolean"]):
                return None
            boolean_fill = np.asarray(fitted["boolean"].statistics_, dtype="float64")
        categories = cls._category_rows(fitted["categorical"], features.categorical) if "categorical" in used else []
        return cls(features, numeric_fill, scale_steps, boolean_fill, categories)

    @staticmethod
    def _plain_imputer(step) -> bool:
        return isinstance(step, SimpleImputer) and not step.add_indicator and step.keep_empty_features \
            and isinstance(step.missing_values, float) and math.isnan(step.missing_values)

    @staticmethod
    def _category_rows(pipeline: Pipeline, names: list[str]) -> list[tuple[dict[str, np.ndarray], np.ndarray,
                                                                            np.ndarray]]:
        encoder = pipeline.steps[-1][1]
        placeholders = [f"\x00{j}\x00" for j in range(len(names))]  # output names start with their input's name
        outputs = [str(name) for name in encoder.get_feature_names_out(placeholders)]
        widths = [sum(out == p or out.startswith(p + "_") for out in outputs) for p in placeholders]
        offsets = np.cumsum([0, *widths])
        rows = []
        for j, name in enumerate(names):
            known = [c for c in encoder.categories_[j] if isinstance(c, str)]
            values = [*known, _UNSEEN, None]
            probe = pd.DataFrame({other: [encoder.categories_[k][0]] * len(values) for k, other in enumerate(names)},
                                 columns=names, dtype=object)
            probe[name] = pd.Series(values, dtype=object)
            out = np.asarray(pipeline.transform(probe), dtype="float64")[:, offsets[j]:offsets[j + 1]]
            rows.append((dict(zip(known, out[:-2], strict=True)), out[-2], out[-1]))
        return rows

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """What `transformer.transform(model_frame(frame, features))` gives, as float64."""
        features, blocks = self.features, []
        if self.numeric_fill is not None:
            parts = [datetime_parts(frame, features).to_numpy(dtype="float64")] if features.datetime else []
            matrix = np.column_stack([self._numbers(frame[name]) for name in features.numeric] + parts)
            matrix = np.where(np.isnan(matrix), self.numeric_fill, matrix)
            for scale in self.scale_steps:
                matrix = scale(matrix)
            blocks.append(matrix)
        if self.boolean_fill is not None:
            matrix = np.column_stack([self._numbers(frame[name]) for name in features.boolean])
            blocks.append(np.where(np.isnan(matrix), self.boolean_fill, matrix))
        for name, (rows, unseen, missing) in zip(features.categorical, self.categories, strict=True):
            values = frame[name].astype(object)  # as model_frame reads a category: its text, None when missing
            blocks.append(np.vstack([rows.get(str(value), unseen) if present else missing
                                     for value, present in zip(values, values.notna(), strict=True)]))
        return np.hstack(blocks).astype("float64", copy=False)

    @staticmethod
    def _numbers(values: pd.Series) -> np.ndarray:
        numbers = values.to_numpy() if values.dtype == "float64" else values.astype("float64").to_numpy()
        return np.clip(numbers, -MAX_MAGNITUDE, MAX_MAGNITUDE)


def _quantile_normal(scaler: QuantileTransformer, matrix: np.ndarray) -> np.ndarray:
    """`scaler.transform(matrix)` of a dense matrix, to the bit: scikit-learn's forward `_transform_col`, column by
    column, but with the normal quantile function applied once to the whole matrix instead of once per column (three
    scipy calls per column were most of a one-row transform)."""
    out = np.array(matrix, dtype="float64")
    references = scaler.references_
    low = np.zeros(out.shape, dtype=bool)
    high = np.zeros(out.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        for j in range(out.shape[1]):
            column, quantiles = out[:, j], scaler.quantiles_[:, j]
            low[:, j] = column - BOUNDS_THRESHOLD < quantiles[0]
            high[:, j] = column + BOUNDS_THRESHOLD > quantiles[-1]
            finite = ~np.isnan(column)
            # both directions, averaged: repeated quantiles map to the middle of their run
            column[finite] = 0.5 * (np.interp(column[finite], quantiles, references)
                                    - np.interp(-column[finite], -quantiles[::-1], -references[::-1]))
        out[high] = 1
        out[low] = 0
        out = stats.norm.ppf(out)
    return np.clip(out, stats.norm.ppf(BOUNDS_THRESHOLD - np.spacing(1)),
                   stats.norm.ppf(1 - (BOUNDS_THRESHOLD - np.spacing(1))))


def build_transformer(features: Features, impute_numeric: str, categorical_mode: str, scaling: str,
                      n_train: int) -> ColumnTransformer:
    numeric_columns = features.numeric + datetime_part_names(features)
    if scaling == "quantile":
        scaler = QuantileTransformer(output_distribution="normal", n_quantiles=max(10, min(n_train // 30, 1000)),
                                     subsample=1_000_000, random_state=0)
    elif scaling == "minmax":
        scaler = MinMaxScaler()
    elif scaling == "robust":
        scaler = RobustSmoothClip()
    else:
        scaler = StandardScaler()
    numeric = Pipeline([("impute", SimpleImputer(strategy=impute_numeric, keep_empty_features=True)),
                        ("scale", scaler)])
    fill = SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY, keep_empty_features=True)
    if categorical_mode == "onehot":
        encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=RARE_CATEGORY_MIN_COUNT,
                                max_categories=MAX_CATEGORIES, sparse_output=False)
    else:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                 min_frequency=RARE_CATEGORY_MIN_COUNT, max_categories=MAX_CATEGORIES)
    boolean = SimpleImputer(strategy="most_frequent", keep_empty_features=True)
    return ColumnTransformer(
        [("numeric", numeric, numeric_columns),
         ("boolean", boolean, features.boolean),
         ("categorical", Pipeline([("fill", fill), ("encode", encoder)]), features.categorical)],
        remainder="drop", verbose_feature_names_out=False,
    )


class RobustSmoothClip(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """RealMLP's scaling of numbers (Holzmueller et al. 2024; pytabkit): centre on the median, divide by the spread
    between the 25% and 75% quantiles (or, where those are equal, half the spread between the smallest and largest
    value; a constant column is only centred), then clip smoothly: x / sqrt(1 + (x / 3)^2), so outliers end near
    +-3 and keep their order instead of stretching the scale for every other row."""

    def fit(self, x: Any, y: Any = None) -> RobustSmoothClip:
        values = np.asarray(x, dtype="float64")  # imputed before: no missing values
        self.n_features_in_ = values.shape[1]
        low, self.center_, high = np.quantile(values, [0.25, 0.5, 0.75], axis=0)
        spread = np.where(high > low, high - low, 0.5 * (values.max(axis=0) - values.min(axis=0)))
        self.scale_ = np.where(spread > 0, spread, 1.0)
        return self

    def transform(self, x: Any) -> np.ndarray:
        check_is_fitted(self, "scale_")
        return smooth_clip((np.asarray(x, dtype="float64") - self.center_) / self.scale_)


def smooth_clip(scaled: np.ndarray) -> np.ndarray:
    """x / sqrt(1 + (x / 3)^2), written so that no size overflows (a tiny spread can make x infinite)."""
    third = np.clip(scaled, -1e300, 1e300) / 3.0
    return 3.0 * third / np.hypot(1.0, third)


def break_ties(frame: pd.DataFrame, columns: list[str], seed: int) -> pd.DataFrame:
    """Tiny noise on the rows a quantile transform is fitted on, as in the FT-Transformer and TabM code: otherwise
    a value many rows share at the bottom or top of a column (zero counts, blank pixels) maps to -5.2 or +5.2
    instead of the middle of its tie."""
    noisy = frame.copy()
    rng = np.random.default_rng(seed)
    for name in columns:
        values = noisy[name].to_numpy(dtype="float64")
        noisy[name] = values + 1e-3 * np.nanstd(values) * rng.normal(size=len(values))
    return noisy


@dataclass
class Prepared:
    task: str
    target: str
    classes: list[str] | None
    preprocessor: Preprocessor
    x_num: dict[str, np.ndarray]
    x_cat: dict[str, np.ndarray]
    y: dict[str, np.ndarray]  # class indices (int64) or raw regression values (float64)
    row_ids: dict[str, np.ndarray]
    fingerprint: str
    dropped_target_rows: int
    notes: list[str]

    def summary(self) -> dict[str, Any]:
        return {"n_" + s: int(len(self.row_ids[s])) for s in SPLITS}


def resolve_scaling(prep: PrepConfig, family: str, model_categorical: str, model_scaling: str | None = None) -> str:
    """'auto': the model's own choice (`model_scaling`, see ModelSpec.scaling) where it has one; else quantile-normal
    for the neural models that embed categories (all but linear), standard for the others."""
    if prep.scaling != "auto":
        return prep.scaling
    if model_scaling:
        return model_scaling
    return "quantile" if family == "neural" and model_categorical == "embedding" else "standard"


def resolve_categorical(prep: PrepConfig, model_categorical: str, notes: list[str]) -> str:
    """Linear and classical models only read one-hot columns, so they get them whatever was asked."""
    if prep.categorical == "auto" or model_categorical == "onehot":
        if prep.categorical == "embedding":
            notes.append("This model reads categories as one-hot columns, so embeddings were not used.")
        return model_categorical
    return prep.categorical


@dataclass
class TableSplit:
    """The rows a run learns and is tested on: the table's rows with a target (and, for a split in time order, a date),
    the task, class labels (None for regression) and the split of their row ids."""

    data: pd.DataFrame
    target: str
    task: Task
    labels: pd.Series | None
    rows: Split
    dropped_target_rows: int
    notes: list[str]

    @cached_property
    def classes(self) -> list[str] | None:
        return sorted(self.labels.unique().tolist()) if self.labels is not None else None

    def y(self, index: np.ndarray) -> np.ndarray:
        """The targets of the rows `index`: class indices (int64, of `classes`) or values (float64)."""
        if self.labels is not None:
            return pd.Categorical(self.labels.loc[index], categories=self.classes).codes.astype("int64")
        return self.data[self.target].loc[index].to_numpy(dtype="float64")


def split_table(frame: pd.DataFrame, target: str, task: str, split: SplitConfig,
                rows: Split | None = None) -> TableSplit:
    """Which rows a run uses and how they split; `rows`: a split made elsewhere (a repeated run's member)."""
    if target not in frame.columns:
        raise UserError(f"There is no column called '{target}' to predict.{did_you_mean(target, frame.columns)}")
    notes: list[str] = []
    has_target = frame[target].notna()
    data = frame if has_target.all() else frame[has_target]  # no copy of the whole table when nothing is dropped
    dropped = len(frame) - len(data)
    if dropped:
        notes.append(f"{dropped:,} rows with no value for '{target}' were left out.")
    if len(data) < MIN_TRAIN_ROWS:
        raise UserError(f"Only {len(data)} rows have a value for '{target}'; at least {MIN_TRAIN_ROWS} are needed "
                        "to train.")
    order = None
    if split.order_by is not None:
        order = time_order(data, split.order_by)
        if order.isna().any():
            undated = int(order.isna().sum())
            notes.append(f"{undated:,} rows with no value in '{split.order_by}' were left out: the split follows "
                         "time, and their time is unknown.")
            data, order = data[order.notna()], order[order.notna()]
            if len(data) < MIN_TRAIN_ROWS:
                raise UserError(f"Only {len(data)} rows have both a value for '{target}' and a date in "
                                f"'{split.order_by}'; at least {MIN_TRAIN_ROWS} are needed to train.")
    task = detect_task(data[target], task)
    labels = class_labels(data[target]) if task != Task.REGRESSION else None
    rows = rows or split_rows(data.index, labels, split, order)
    return TableSplit(data, target, task, labels, rows, dropped, notes)


def prepare(frame: pd.DataFrame, target: str, task: str, exclude: list[str], split: SplitConfig,
            prep: PrepConfig, family: str, model_categorical: str, rows: Split | None = None,
            model_scaling: str | None = None) -> Prepared:
    """`rows`: a split made elsewhere (a repeated run's member, from its group's stored folds) instead of `split`'s.
    `model_scaling`: what 'auto' scaling is for this model, if it has its own choice (ModelSpec.scaling)."""
    parts = split_table(frame, target, task, split, rows)
    data, task, rows, notes = parts.data, parts.task, parts.rows, parts.notes
    features = choose_features(data, target, exclude, prep.datetime_parts)
    notes += features.notes
    if split.order_by is None and not rows.stratified and task != Task.REGRESSION:
        notes.append("A class is too rare to appear in every split, so the split is not stratified.")

    categorical_mode = resolve_categorical(prep, model_categorical, notes)
    preprocessor = Preprocessor(features, categorical_mode, resolve_scaling(prep, family, model_categorical, model_scaling),
                                prep.impute_numeric, split.seed)
    fit_rows = rows.train
    if len(fit_rows) > FIT_SAMPLE_ROWS:
        fit_rows = np.sort(np.random.default_rng(split.seed).choice(fit_rows, FIT_SAMPLE_ROWS, replace=False))
        notes.append(f"The preprocessing was fitted on a random {FIT_SAMPLE_ROWS:,} of the {len(rows.train):,} "
                     "training rows.")
    preprocessor.fit(data.loc[fit_rows])

    x_num, x_cat, y, ids = {}, {}, {}, {}
    for name, index in zip(SPLITS, (rows.train, rows.val, rows.test), strict=True):
        x_num[name], x_cat[name] = preprocessor.transform(data, index)
        y[name] = parts.y(index)
        ids[name] = np.asarray(index)
    return Prepared(task, target, parts.classes, preprocessor, x_num, x_cat, y, ids, rows.fingerprint,
                    parts.dropped_target_rows, notes)
