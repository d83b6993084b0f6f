"""Monitoring a trained run: what it has been asked since it was trained, and whether that still looks like what it
learned from.

Every prediction batch (the Predict page, `predict`, the served API) is summarised into the store
(`record_batch`): when, from where, how many rows, and per input column counts on fixed bins with a bin for missing
values (numbers and dates: the training rows' deciles; categories: the common training categories and "other"), its
count, missing, mean and std, and the distribution of the predictions. The rows themselves are not kept unless
WORKBENCH_LOG_ROWS=1, and then in a Parquet file per batch under WORKBENCH_HOME, never in the database.

The reference is the run's training rows (and, for the predictions, its test rows' predictions), summarised once on
the same bins and cached as JSON beside the run's other monitoring files. Counts add up, so `monitor_report` pools
the latest batches and compares each column's pooled counts with the reference's: the population stability index
(PSI) and a chi-squared test of homogeneity (scipy) on the same bins. A column drifts when both say so: PSI above
PSI_THRESHOLD (a shift big enough to matter) and p below ALPHA / (the number of columns tested) (not chance, even
after looking at every column). benchmarks/drift.py and tests/test_monitoring.py measure both rates.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from scipy import stats

from workbench.dates import as_datetime, naive_utc
from workbench.errors import UserError
from workbench.store import PredictionBatch, Run, Store

log = logging.getLogger(__name__)

REFERENCE_VERSION = 1
QUANTILES = np.linspace(0.1, 0.9, 9)  # numbers and dates: ten bins at the training rows' deciles
MAX_CATEGORIES = 30  # the most common training categories get a bin each; the rest and unseen ones share "other"
MIN_CATEGORY_ROWS = 5  # a category rarer than this in training goes to "other" (tiny expected counts skew the test)
SMOOTHING = 0.5  # added to every bin's count for the PSI, so an empty bin does not make it infinite
PSI_THRESHOLD = 0.2  # the usual line for "a significant shift"
ALPHA = 0.01  # the false-alarm rate of a whole report, split over its columns (Bonferroni)
MIN_ROWS = 100  # fewer recent rows: too few to judge drift
DEFAULT_LAST_BATCHES = 100
LOG_ROWS_VARIABLE = "WORKBENCH_LOG_ROWS"
FLUSH_SECONDS = 1.0  # a served run's requests are logged together at most this long after the first of them...
FLUSH_ROWS = 10_000  # ...or as soon as this many rows wait
_EPOCH = pd.Timestamp("1970-01-01")


class Source(StrEnum):
    PAGE = "page"
    CLI = "cli"
    API = "api"


# -- reading values as the training kinds (cheap: no model needed) ------------------------------------------------


def as_numbers(values: pd.Series) -> np.ndarray:
    """Numbers (float64, NaN where missing or not a number); true/false as 1/0."""
    if ptypes.is_datetime64_any_dtype(values):
        return np.full(len(values), np.nan)
    if ptypes.is_bool_dtype(values) or ptypes.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    else:
        text = values.astype("string").str.strip().str.lower().replace({"true": "1", "false": "0"})
        numbers = pd.to_numeric(text, errors="coerce").astype("float64").to_numpy()
    return np.where(np.isfinite(numbers), numbers, np.nan)


def as_date_seconds(values: pd.Series, day_first: bool = False) -> np.ndarray:
    """Dates as seconds since 1970 (float64, NaN where missing or not a date); text dates written as numbers read
    day first when told (as the run's training read that column)."""
    if ptypes.is_datetime64_any_dtype(values):
        dates = values
    elif ptypes.is_numeric_dtype(values) or ptypes.is_bool_dtype(values):
        return np.full(len(values), np.nan)
    else:
        text = values.astype("string").str.strip()
        dates = as_datetime(text.where(pd.to_numeric(text, errors="coerce").isna()), day_first)
    return ((naive_utc(dates) - _EPOCH) / pd.Timedelta(seconds=1)).astype("float64").to_numpy()


def as_categories(values: pd.Series) -> pd.Series:
    """Categories as text (as the model's encoder sees them), None where missing."""
    return values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else str(v))


def _column(frame: pd.DataFrame, name: str) -> pd.Series | None:
    if name not in frame.columns:
        return None
    values = frame[name]
    return values.iloc[:, 0] if isinstance(values, pd.DataFrame) else values  # a duplicated name: the first


# -- bins and per-batch summaries ---------------------------------------------------------------------------------


def bin_numbers(x: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts in len(edges) + 1 value bins ((-inf, e0), [e0, e1), ..., [e_last, inf)) and a last bin for missing."""
    present = ~np.isnan(x)
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype="float64"), x[present], side="right"),
                         minlength=len(edges) + 1)
    return np.append(counts, int((~present).sum()))


def bin_categories(text: pd.Series, categories: list[str]) -> np.ndarray:
    """Counts per category, then "other" (rare in training or never seen), then missing."""
    codes = pd.Categorical(text, categories=categories).codes
    missing = text.isna().to_numpy()
    codes = np.where(missing, len(categories) + 1, np.where(codes < 0, len(categories), codes))
    return np.bincount(codes, minlength=len(categories) + 2)


def _moments(x: np.ndarray) -> dict[str, Any]:
    present = x[~np.isnan(x)]
    n = len(present)
    # On values scaled to at most 1 in size: the squares of values near 1e154 and above overflow to inf (not JSON).
    scale = float(np.abs(present).max()) if n and np.abs(present).max() > 0 else 1.0
    scaled = present / scale
    return {"count": int(n), "missing": int(len(x) - n), "mean": float(scaled.mean() * scale) if n else None,
            "std": float(scaled.std(ddof=1) * scale) if n > 1 else None}


def _column_reference(name: str, kind: str, values: pd.Series, day_first: bool = False) -> dict[str, Any]:
    if kind == "category":
        text = as_categories(values)
        common = text.value_counts()
        categories = [str(c) for c, n in common.items() if n >= MIN_CATEGORY_ROWS][:MAX_CATEGORIES]
        return {"column": name, "kind": kind, "categories": categories,
                "counts": bin_categories(text, categories).tolist(), "count": int(text.notna().sum()),
                "missing": int(text.isna().sum())}
    x = as_date_seconds(values, day_first) if kind == "date" else as_numbers(values)
    present = x[~np.isnan(x)]
    edges = np.unique(np.quantile(present, QUANTILES)).tolist() if len(present) else []
    spec = {"column": name, "kind": kind, "edges": edges, "counts": bin_numbers(x, edges).tolist(), **_moments(x)}
    return {**spec, "day_first": True} if day_first else spec


def _column_summary(spec: dict[str, Any], values: pd.Series) -> dict[str, Any]:
    if spec["kind"] == "category":
        text = as_categories(values)
        return {"counts": bin_categories(text, spec["categories"]).tolist(), "count": int(text.notna().sum()),
                "missing": int(text.isna().sum())}
    x = as_date_seconds(values, spec.get("day_first", False)) if spec["kind"] == "date" else as_numbers(values)
    return {"counts": bin_numbers(x, spec["edges"]).tolist(), **_moments(x)}


def _prediction_counts(spec: dict[str, Any], predictions: Any) -> np.ndarray:
    """Class counts (of the model's classes, then any other) or counts on the test predictions' bins."""
    if spec["kind"] == "classes":
        return bin_categories(as_categories(pd.Series(predictions)), spec["labels"])[:-1]  # a prediction is never missing
    return bin_numbers(as_numbers(pd.Series(predictions)), spec["edges"])


def build_reference(task: str, input_kinds: dict[str, str], training_rows: pd.DataFrame,
                    test_predictions: np.ndarray | None, classes: list[str] | None,
                    day_first: Collection[str] = ()) -> dict[str, Any]:
    """The reference summary of a run: its training rows on their own bins, and its test rows' predictions
    (probabilities (n, classes) or values (n,)); `input_kinds`: per input column, number, date or category;
    `day_first`: the date columns whose text dates the run reads day first."""
    columns = [_column_reference(name, kind, _column(training_rows, name), name in day_first)
               for name, kind in input_kinds.items()]
    prediction = None
    if test_predictions is not None and len(test_predictions):
        if classes:
            labels = np.asarray(classes, dtype=object)[np.asarray(test_predictions).argmax(axis=1)]
            prediction = {"kind": "classes", "labels": list(classes)}
            prediction["counts"] = _prediction_counts(prediction, labels).tolist()
        else:
            values = np.asarray(test_predictions, dtype="float64")
            prediction = {"kind": "numbers", "edges": np.unique(np.quantile(values, QUANTILES)).tolist(),
                          **_moments(values)}
            prediction["counts"] = _prediction_counts(prediction, values).tolist()
    reference = {"version": REFERENCE_VERSION, "task": task, "rows": len(training_rows), "columns": columns,
                 "prediction": prediction}
    bins = [(c["column"], c.get("edges"), c.get("categories")) for c in columns]
    bins.append(prediction and (prediction.get("edges"), prediction.get("labels")))
    reference["fingerprint"] = hashlib.sha256(json.dumps(bins, default=str).encode()).hexdigest()[:16]
    return reference


def summarise(reference: dict[str, Any], frame: pd.DataFrame, prediction_table: pd.DataFrame) -> dict[str, Any]:
    """A batch on the reference's bins: per input column its counts and moments, and the predictions' counts."""
    columns = {}
    for spec in reference["columns"]:
        values = _column(frame, spec["column"])
        if values is not None:
            columns[spec["column"]] = _column_summary(spec, values)
    prediction = None
    if reference["prediction"] is not None and "prediction" in prediction_table.columns:
        predictions = _column(prediction_table, "prediction")
        prediction = {"counts": _prediction_counts(reference["prediction"], predictions).tolist()}
        if reference["prediction"]["kind"] == "numbers":
            prediction.update(_moments(as_numbers(predictions)))
    return {"reference": reference["fingerprint"], "columns": columns, "prediction": prediction}


# -- the reference of a run, computed once and cached -------------------------------------------------------------


def run_folder(store: Store, run_id: str) -> Path:
    return store.settings.monitoring_dir / run_id


def reference_path(store: Store, run_id: str) -> Path:
    return run_folder(store, run_id) / "reference.json"


def load_reference(store: Store, run_id: str) -> dict[str, Any]:
    """The run's reference summary: read from its cache file, or computed from its training rows and written there."""
    path = reference_path(store, run_id)
    if not path.is_file():
        _write_json(path, compute_reference(store, run_id))
    return _read_reference(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _read_reference(path: str, _mtime_ns: int) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def compute_reference(store: Store, run_id: str) -> dict[str, Any]:
    from workbench.datasets import load_table
    from workbench.jobs import test_predictions_path
    from workbench.predict import load_model_for_run
    from workbench.runner import load_test_predictions

    run = store.get_run(run_id, with_epochs=False)
    model = load_model_for_run(store, run_id)
    features = model.preprocessor.features
    kinds = {name: "number" for name in features.numeric + features.boolean}
    kinds.update({name: "date" for name in features.datetime})
    kinds.update({name: "category" for name in features.categorical})
    kinds = {name: kinds[name] for name in model.input_columns}
    saved = load_test_predictions(test_predictions_path(store, run_id))
    return build_reference(model.task, kinds, training_rows(store, run, load_table(store, run.dataset_id)),
                           saved[1] if saved is not None else None, model.classes, features.datetime_day_first)


def training_rows(store: Store, run: Run, table: pd.DataFrame) -> pd.DataFrame:
    """A run's training rows of `table` (original columns), as its split chose them."""
    from workbench.jobs import run_member
    from workbench.prepare import split_table
    from workbench.runconfig import RunConfig
    from workbench.runner import member_split
    from workbench.tasks import Task

    config = RunConfig.from_dict(run.config)
    member = run_member(store, run)
    rows = member_split(table, config, Task(run.task), member) if member else None
    parts = split_table(table, config.target, run.task, config.split, rows)
    if run.split_fingerprint and parts.rows.fingerprint != run.split_fingerprint:
        raise UserError(f"The training rows of run {run.id} cannot be found again in its dataset; it cannot be "
                        "monitored for drift.")
    return parts.data.loc[parts.rows.train]


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(value, allow_nan=False), encoding="utf-8")
    tmp.replace(path)


# -- logging a batch ----------------------------------------------------------------------------------------------


def log_rows_enabled() -> bool:
    return os.environ.get(LOG_ROWS_VARIABLE, "").strip() == "1"


def record_batch(store: Store, run_id: str, frame: pd.DataFrame, prediction_table: pd.DataFrame,
                 source: str) -> None:
    """Log one prediction batch of a run: `frame` holds the rows asked about (their input columns are read as the
    training kinds; other columns are ignored), `prediction_table` what TrainedModel.predict_rows returned for them,
    `source` page, cli or api. Keeps a summary, not the rows (unless WORKBENCH_LOG_ROWS=1). Never raises: a
    prediction must not fail because it could not be logged; what went wrong goes to the log."""
    try:
        source = Source(source)
        try:
            summary = summarise(load_reference(store, run_id), frame, prediction_table)
        except Exception as exc:  # e.g. the run's dataset file is gone: the batch is still counted
            log.warning("prediction batch of run %s logged without its summary: %s", run_id, exc)
            log.debug("why", exc_info=True)
            summary = {}
        rows_file = _write_rows(store, run_id, prediction_table) if log_rows_enabled() else None
        try:
            store.add_prediction_batch(run_id, source, len(prediction_table), summary, rows_file)
        except Exception:
            if rows_file:
                (run_folder(store, run_id) / rows_file).unlink(missing_ok=True)
            raise
    except Exception as exc:  # one line, also on the CLI's stderr; the traceback at debug level
        log.warning("logging a prediction batch of run %s failed (%s); the prediction itself is unaffected", run_id,
                    exc)
        log.debug("why", exc_info=True)


class BatchRecorder:
    """`record_batch` for a stream of small batches (the served API's requests, one call each): the calls wait
    together and a thread of its own logs them as one batch, FLUSH_SECONDS after the first of them or as soon as
    FLUSH_ROWS rows wait. A request then pays for an append, not for a summary and a database write (which, while
    the next request arrives, would hold the interpreter). `close()` logs whatever still waits and must be called on
    a clean stop; a killed process loses at most the last FLUSH_SECONDS of requests."""

    def __init__(self, store: Store, run_id: str, flush_seconds: float = FLUSH_SECONDS,
                 flush_rows: int = FLUSH_ROWS):
        self.store, self.run_id = store, run_id
        self.flush_seconds, self.flush_rows = flush_seconds, flush_rows
        self._pending: list[tuple[pd.DataFrame, pd.DataFrame, str]] = []
        self._rows = 0
        self._closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"monitoring-{run_id}", daemon=True)
        self._thread.start()

    def __call__(self, frame: pd.DataFrame, prediction_table: pd.DataFrame, source: str) -> None:
        with self._changed:
            if not self._closed:
                self._pending.append((frame, prediction_table, source))
                self._rows += len(prediction_table)
                self._changed.notify()
                return
        record_batch(self.store, self.run_id, frame, prediction_table, source)  # after close: at once

    def close(self) -> None:
        """Stop the thread, then log what still waits."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()
        self._write(self._take())

    def _take(self) -> list[tuple[pd.DataFrame, pd.DataFrame, str]]:
        with self._changed:
            pending, self._pending, self._rows = self._pending, [], 0
        return pending

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending or self._closed)
                self._changed.wait_for(lambda: self._closed or self._rows >= self.flush_rows, self.flush_seconds)
                if self._closed:
                    return  # close() writes the rest
            try:
                self._write(self._take())
            except Exception:  # the thread must outlive any batch, or later ones would wait for ever
                log.exception("logging the waiting prediction batches of run %s failed", self.run_id)

    def _write(self, pending: list[tuple[pd.DataFrame, pd.DataFrame, str]]) -> None:
        """One batch per source (record_batch never raises; batches that cannot be put together go one by one)."""
        for source in dict.fromkeys(source for _, _, source in pending):
            parts = [(frame, table) for frame, table, s in pending if s == source]
            try:
                together = [(pd.concat([frame for frame, _ in parts], ignore_index=True),
                             pd.concat([table for _, table in parts], ignore_index=True))]
            except Exception:  # e.g. a CSV with a column name twice
                together = parts
            for frame, table in together:
                record_batch(self.store, self.run_id, frame, table, source)


def _write_rows(store: Store, run_id: str, prediction_table: pd.DataFrame) -> str:
    """The batch's rows and predictions (the prediction table holds both: an input column named as an output is
    there named apart) in a Parquet file of their own; its name relative to the run's folder."""
    rows = prediction_table.reset_index(drop=True)
    rows.columns = [str(c) for c in rows.columns]
    rows = rows.loc[:, ~rows.columns.duplicated()]  # (a frame from the Python API may have 1 and '1')
    rows = rows.astype({c: "string" for c in rows.columns if rows[c].dtype == object})  # mixed cells: as text
    name = f"rows/{datetime.now().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
    path = run_folder(store, run_id) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    rows.to_parquet(tmp, index=False)
    tmp.replace(path)
    return name


# -- drift --------------------------------------------------------------------------------------------------------


def drift_statistics(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSI and the chi-squared test of homogeneity's p-value of two samples' counts on the same bins (last axis;
    vectorised over the leading axes). Bins empty in both are left out, as scipy.stats.chi2_contingency would
    refuse them; one bin left: no difference (PSI 0, p 1)."""
    reference, current = np.broadcast_arrays(np.asarray(reference, dtype="float64"),
                                             np.asarray(current, dtype="float64"))
    used = (reference + current) > 0
    n_used = used.sum(axis=-1, keepdims=True)
    n_ref, n_cur = reference.sum(axis=-1, keepdims=True), current.sum(axis=-1, keepdims=True)
    total = reference + current
    n = np.maximum(n_ref + n_cur, 1)
    e_ref, e_cur = total * n_ref / n, total * n_cur / n
    with np.errstate(divide="ignore", invalid="ignore"):  # the cells of unused bins (0/0) are dropped below
        p_ref = (reference + SMOOTHING) / (n_ref + SMOOTHING * n_used)
        p_cur = (current + SMOOTHING) / (n_cur + SMOOTHING * n_used)
        psi = np.where(used, (p_cur - p_ref) * np.log(p_cur / p_ref), 0.0).sum(axis=-1)
        cells = (reference - e_ref) ** 2 / e_ref + (current - e_cur) ** 2 / e_cur
    statistic = np.where(used & (e_ref > 0) & (e_cur > 0), cells, 0.0).sum(axis=-1)
    dof = n_used[..., 0] - 1
    p = np.where(dof > 0, stats.chi2.sf(statistic, np.maximum(dof, 1)), 1.0)
    return psi, p


def is_drifted(psi: np.ndarray | float, p: np.ndarray | float, n_tests: int) -> np.ndarray | bool:
    """Drifted: a shift big enough to matter (PSI) that is not chance after testing `n_tests` columns (p)."""
    return (np.asarray(psi) > PSI_THRESHOLD) & (np.asarray(p) < ALPHA / max(n_tests, 1))


@dataclass
class ColumnDrift:
    column: str
    kind: str  # number, date or category
    rows: int  # recent rows compared (missing ones included)
    psi: float | None  # None: too few recent rows to judge
    p_value: float | None
    drifted: bool
    labels: list[str] = field(default_factory=list)  # the bins, for a chart
    reference_share: list[float] = field(default_factory=list)
    current_share: list[float] = field(default_factory=list)
    reference_mean: float | None = None  # numbers and dates (seconds since 1970)
    current_mean: float | None = None


@dataclass
class PredictionShift:
    kind: str  # classes or numbers
    rows: int
    psi: float | None
    p_value: float | None
    drifted: bool
    labels: list[str]
    reference_share: list[float]  # of the test rows' predictions
    current_share: list[float]  # of the recent predictions
    reference_mean: float | None = None
    current_mean: float | None = None


@dataclass
class MonitorReport:
    """Drift of a run's latest `batches` prediction batches (`rows` rows) against its training rows."""

    run_id: str
    batches: int
    rows: int
    columns: list[ColumnDrift]
    prediction_shift: PredictionShift | None
    alarms: list[str]  # one plain sentence per drifted column (and for shifted predictions)
    first_at: datetime | None = None
    last_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The `monitor --json` document."""
        shift = self.prediction_shift
        return {"batches": self.batches, "rows": self.rows,
                "columns": [{"column": c.column, "psi": _rounded(c.psi), "p_value": _rounded(c.p_value),
                             "drifted": c.drifted} for c in self.columns],
                "prediction_shift": None if shift is None else {
                    "psi": _rounded(shift.psi), "p_value": _rounded(shift.p_value), "drifted": shift.drifted,
                    "labels": shift.labels, "test_share": [round(s, 4) for s in shift.reference_share],
                    "recent_share": [round(s, 4) for s in shift.current_share]},
                "alarms": self.alarms}


def _rounded(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.4g}")


def monitor_report(store: Store, run_id: str, last_n_batches: int = DEFAULT_LAST_BATCHES) -> MonitorReport:
    """Drift of the run's latest `last_n_batches` prediction batches, pooled, against its training rows."""
    store.get_run(run_id, with_epochs=False)  # an unknown run: one sentence
    batches = store.list_prediction_batches(run_id, limit=last_n_batches)
    if not batches:
        return MonitorReport(run_id, 0, 0, [], None, [])
    return compare_with_reference(run_id, load_reference(store, run_id), batches)


def compare_with_reference(run_id: str, reference: dict[str, Any], batches: list[PredictionBatch]) -> MonitorReport:
    summaries = [b.summary for b in batches if b.summary.get("reference") == reference["fingerprint"]]
    columns = []
    for spec in reference["columns"]:
        pooled = [s["columns"][spec["column"]] for s in summaries if spec["column"] in s.get("columns", {})]
        columns.append(_column_drift(spec, pooled))
    tested = sum(c.psi is not None for c in columns)
    for column in columns:
        column.drifted = column.psi is not None and bool(is_drifted(column.psi, column.p_value, tested))
    shift = _prediction_shift(reference["prediction"], [s["prediction"] for s in summaries if s.get("prediction")])
    alarms = [_column_alarm(c) for c in sorted(columns, key=lambda c: -(c.psi or 0)) if c.drifted]
    if shift is not None and shift.drifted:
        alarms.append(_prediction_alarm(shift))
    return MonitorReport(run_id, len(batches), sum(b.n_rows for b in batches), columns, shift, alarms,
                         min(b.created_at for b in batches), max(b.created_at for b in batches))


def _pooled_mean(parts: list[dict[str, Any]]) -> float | None:
    counted = [(p["count"], p["mean"]) for p in parts if p.get("count") and p.get("mean") is not None]
    n = sum(c for c, _ in counted)
    return sum(c * m for c, m in counted) / n if n else None


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * len(counts)


def _column_drift(spec: dict[str, Any], pooled: list[dict[str, Any]]) -> ColumnDrift:
    reference = np.asarray(spec["counts"], dtype="float64")
    current = np.sum([p["counts"] for p in pooled], axis=0) if pooled else np.zeros_like(reference)
    rows = int(current.sum())
    psi = p = None
    if rows >= MIN_ROWS and reference.sum() > 0:
        psi_value, p_value = drift_statistics(reference, current)
        psi, p = float(psi_value), float(p_value)
    numeric = spec["kind"] != "category"
    return ColumnDrift(spec["column"], spec["kind"], rows, psi, p, False, bin_labels(spec), _shares(reference),
                       _shares(current), spec.get("mean") if numeric else None,
                       _pooled_mean(pooled) if numeric else None)


def _prediction_shift(spec: dict[str, Any] | None, pooled: list[dict[str, Any]]) -> PredictionShift | None:
    if spec is None or not pooled:
        return None
    reference = np.asarray(spec["counts"], dtype="float64")
    current = np.sum([p["counts"] for p in pooled], axis=0)
    rows = int(current.sum())
    psi = p = None
    drifted = False
    if rows >= MIN_ROWS and reference.sum() > 0:
        psi_value, p_value = drift_statistics(reference, current)
        psi, p = float(psi_value), float(p_value)
        drifted = bool(is_drifted(psi, p, 1))
    labels = [*spec["labels"], "other"] if spec["kind"] == "classes" else bin_labels(spec)
    if spec["kind"] == "classes" and reference[-1] == current[-1] == 0:  # no label outside the classes: no "other"
        labels, reference, current = labels[:-1], reference[:-1], current[:-1]
    return PredictionShift(spec["kind"], rows, psi, p, drifted, labels, _shares(reference), _shares(current),
                           spec.get("mean"), _pooled_mean(pooled) if spec["kind"] == "numbers" else None)


def format_value(value: float | None, kind: str) -> str:
    if value is None or not math.isfinite(value):
        return "none"
    if kind == "date":
        return (_EPOCH + pd.Timedelta(seconds=value)).strftime("%Y-%m-%d")
    return f"{value:.4g}"


def bin_labels(spec: dict[str, Any]) -> list[str]:
    """What each bin of a column's counts holds, in words."""
    if spec["kind"] == "category":
        return [*spec["categories"], "other", "missing"]
    edges = [format_value(e, spec["kind"]) for e in spec["edges"]]
    if not edges:
        return ["any value", "missing"]
    inner = [f"{low} to {high}" for low, high in zip(edges, edges[1:], strict=False)]
    return [f"below {edges[0]}", *inner, f"{edges[-1]} and above", "missing"]


def _largest_change(labels: list[str], reference: list[float], current: list[float]) -> int:
    return int(np.argmax(np.abs(np.asarray(current) - np.asarray(reference)))) if labels else 0


def _column_alarm(column: ColumnDrift) -> str:
    start = f"Column '{column.column}' has drifted from the training rows (PSI {column.psi:.2f})"
    k = _largest_change(column.labels, column.reference_share, column.current_share)
    label = column.labels[k]
    shares = f"{column.current_share[k]:.0%} of its recent values, against {column.reference_share[k]:.0%} in training"
    if k == len(column.labels) - 1:  # the missing values' bin (a category may be called "missing" too)
        return f"{start}: {shares.replace(' of its recent values', ' of its recent values are missing', 1)}."
    if column.kind == "category":
        if k == len(column.labels) - 2:  # "other"
            return f"{start}: categories rare or never seen in training make up {shares}."
        return f"{start}: '{label}' is {shares}."
    return (f"{start}: its recent mean is {format_value(column.current_mean, column.kind)}, against "
            f"{format_value(column.reference_mean, column.kind)} in training.")


def _prediction_alarm(shift: PredictionShift) -> str:
    start = f"The predictions have shifted from those on the test rows (PSI {shift.psi:.2f})"
    if shift.kind == "numbers":
        return (f"{start}: their recent mean is {format_value(shift.current_mean, 'number')}, against "
                f"{format_value(shift.reference_mean, 'number')} on the test rows.")
    k = _largest_change(shift.labels, shift.reference_share, shift.current_share)
    return (f"{start}: '{shift.labels[k]}' is {shift.current_share[k]:.0%} of the recent predictions, against "
            f"{shift.reference_share[k]:.0%} on the test rows.")


# -- over time, and across runs -----------------------------------------------------------------------------------


def requests_over_time(batches: list[PredictionBatch]) -> tuple[pd.DataFrame, str]:
    """Batches and rows per hour (per day when the batches span more than three days), per source: the table and
    the period's name."""
    if not batches:
        return pd.DataFrame(columns=["period", "source", "batches", "rows"]), "hour"
    frame = pd.DataFrame([{"at": b.created_at, "source": b.source, "rows": b.n_rows} for b in batches])
    span = frame["at"].max() - frame["at"].min()
    period = "day" if span > pd.Timedelta(days=3) else "hour"
    frame["period"] = frame["at"].dt.floor("D" if period == "day" else "h")
    table = (frame.groupby(["period", "source"], as_index=False)
             .agg(batches=("rows", "size"), rows=("rows", "sum")).sort_values(["period", "source"]))
    return table.reset_index(drop=True), period


def recent_alarms(store: Store, runs: int = 10) -> list[tuple[str, list[str]]]:
    """(run id, alarms) of the runs that predicted most recently (at most `runs`) that have drift alarms."""
    out = []
    for activity in store.prediction_activity()[:runs]:
        try:
            alarms = monitor_report(store, activity.run_id).alarms
        except UserError as exc:
            log.warning("no drift report for run %s: %s", activity.run_id, exc)
            continue
        if alarms:
            out.append((activity.run_id, alarms))
    return out


__all__ = ["ColumnDrift", "MonitorReport", "PredictionShift", "Source", "build_reference",
           "drift_statistics", "load_reference", "monitor_report", "record_batch", "recent_alarms",
           "requests_over_time", "summarise"]
