"""Predict with a saved run: check a new table against the training schema, then predict."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pandas.api import types as ptypes

from workbench.artifacts import load_run
from workbench.errors import UserError
from workbench.ingest import ingest_bytes
from workbench.prepare import Preprocessor, as_datetime
from workbench.safe_csv import to_safe_csv
from workbench.store.entities import RunStatus
from workbench.tasks import Objective, Task
from workbench.training import predict_outputs

__all__ = ["Prediction", "TrainedModel", "export_run", "load_model", "load_model_for_run", "predict_file",
           "to_safe_csv"]


@dataclass
class TrainedModel:
    config: dict[str, Any]
    preprocessor: Preprocessor
    model: Any

    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def classes(self) -> list[str] | None:
        return self.config.get("classes")

    @property
    def input_columns(self) -> list[str]:
        return self.preprocessor.input_columns

    def check_schema(self, frame: pd.DataFrame, unread: Mapping[str, pd.Series] | None = None) -> SchemaCheck:
        """The model's input columns with every value of the training kind, plus notes and per-row warnings.

        A missing column, or a column with no usable value at all, is refused. Values that do not fit the
        column's training kind (a word or a date in a number column, a number in a date column) become missing
        and flag their row; so do categories never seen in training and rows with every feature missing.
        `unread`: per column, the text of cells the CSV reader already turned into missing values
        (`Ingested.unread`), indexed by row position, so that they are flagged too. Extra columns are named.
        """
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            names = ", ".join(f"'{c}'" for c in missing[:5])
            raise UserError(f"The file is missing the column{'s' if len(missing) > 1 else ''} {names} "
                            "that the model was trained on.")
        check = SchemaCheck(frame[self.input_columns].copy(), [], {})
        unread = unread or {}
        features = self.preprocessor.features
        for name in features.numeric + features.boolean:
            check.frame[name] = self._checked_numbers(check, name, unread.get(name), name in features.boolean)
        for name in features.datetime:
            check.frame[name] = self._checked_dates(check, name, unread.get(name))
        for name, known in zip(features.categorical, self._known_categories(), strict=True):
            self._flag_unseen(check, name, known)
        for name in self.input_columns:
            if len(frame) and frame[name].isna().all():
                check.notes.append(f"Column '{name}' is empty in this file; it is treated as missing on every row.")
        empty_rows = np.flatnonzero(check.frame.isna().all(axis=1).to_numpy()) if self.input_columns else []
        for row in empty_rows:
            check.flag(row, "every feature is missing")
        if len(empty_rows):
            check.notes.append(f"{_count(len(empty_rows), 'row')} {'has' if len(empty_rows) == 1 else 'have'} "
                               "every feature missing: the prediction there is only a guess for a typical row.")
        extra = [f"'{c}'" for c in frame.columns if c not in self.input_columns]
        if extra:
            more = f" and {len(extra) - 5} more" if len(extra) > 5 else ""
            check.notes.append(f"The model does not use the column{'s' if len(extra) > 1 else ''} "
                               f"{', '.join(extra[:5])}{more}; {'they were' if len(extra) > 1 else 'it was'} ignored.")
        return check

    def _checked_numbers(self, check: SchemaCheck, name: str, unread: pd.Series | None, boolean: bool) -> pd.Series:
        values = check.frame[name]
        if ptypes.is_datetime64_any_dtype(values):
            numbers = pd.Series(np.nan, index=values.index)
        elif ptypes.is_bool_dtype(values) or ptypes.is_numeric_dtype(values):
            numbers = values.astype("float64")
        else:
            text = values.astype("string").str.strip().str.lower()
            numbers = pd.to_numeric(text.replace({"true": "1", "false": "0"}), errors="coerce").astype("float64")
        usable = numbers.notna() & np.isfinite(numbers.fillna(0)) & (numbers.isin([0, 1]) if boolean else True)
        self._flag(check, name, values.notna() & ~usable, unread, int(usable.sum()),
                   "true or false" if boolean else "a number")
        return numbers.where(usable)

    def _checked_dates(self, check: SchemaCheck, name: str, unread: pd.Series | None) -> pd.Series:
        values = check.frame[name]
        if ptypes.is_datetime64_any_dtype(values):
            dates = values
        elif ptypes.is_numeric_dtype(values) or ptypes.is_bool_dtype(values):
            dates = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
        else:
            text = values.astype("string").str.strip()
            dates = as_datetime(text.where(pd.to_numeric(text, errors="coerce").isna()))  # a number is no date
            if dates.dt.tz is not None:
                dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
        self._flag(check, name, values.notna() & dates.isna(), unread, int(dates.notna().sum()), "a date")
        return dates

    @staticmethod
    def _flag(check: SchemaCheck, name: str, bad: pd.Series, unread: pd.Series | None, usable: int,
              expected: str) -> None:
        """Flag the rows whose value did not fit (bad) or that the CSV reader could not read (unread); refuse a
        column with no usable value at all."""
        values = check.frame[name]
        wrong = {int(row): str(values.iloc[row]) for row in np.flatnonzero(bad.to_numpy())}
        if unread is not None:
            wrong.update({int(row): str(v) for row, v in unread.items()})
        if not wrong:
            return
        examples = ", ".join(f"'{v}'" for v in list(dict.fromkeys(wrong.values()))[:3])
        wanted = {"a number": "numbers", "a date": "dates"}.get(expected, expected)
        if not usable:
            raise UserError(f"Column '{name}' should hold {wanted}, but none of its values do (such as {examples}); "
                            "is this the right file for this model?")
        for row, value in wrong.items():
            check.flag(row, f"'{name}': '{value}' is {_what_is_wrong(value, expected)}")
        check.notes.append(f"Column '{name}' should hold {wanted}, but {_count(len(wrong), 'row')} "
                           f"{'has' if len(wrong) == 1 else 'have'} other values (such as {examples}); "
                           "they were treated as missing and those rows are flagged.")

    def _known_categories(self) -> list[set[str]]:
        if not self.preprocessor.features.categorical:
            return []
        encoder = self.preprocessor.transformer_.named_transformers_["categorical"].named_steps["encode"]
        return [{str(c) for c in categories} for categories in encoder.categories_]

    @staticmethod
    def _flag_unseen(check: SchemaCheck, name: str, known: set[str]) -> None:
        values = check.frame[name]
        text = values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else str(v))
        unseen = (text.notna() & ~text.isin(known)).to_numpy()
        if not unseen.any():
            return
        for row in np.flatnonzero(unseen):
            check.flag(row, f"'{name}': '{text.iloc[row]}' was never seen in training")
        names = [f"'{n}'" for n in dict.fromkeys(text[unseen])]
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        check.notes.append(f"Column '{name}' has {_count(len(names), 'category', 'categories')} the model never "
                           f"saw in training ({', '.join(names[:5])}{more}) on "
                           f"{_count(int(unseen.sum()), 'row')}; they are predicted as an unknown category "
                           "and those rows are flagged.")

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities (n, n_classes) or regression predictions (n,) of an already checked frame."""
        x_num, x_cat = self.preprocessor.transform(frame)
        objective = Objective.from_config(self.config)
        if isinstance(self.model, torch.nn.Module):
            return objective.predictions(predict_outputs(self.model, torch.as_tensor(x_num), torch.as_tensor(x_cat)).numpy())
        return objective.estimator_predictions(self.model, x_num)

    def predict_rows(self, frame: pd.DataFrame, unread: Mapping[str, pd.Series] | None = None) -> Prediction:
        """The input columns plus `prediction`, for classification `proba_<class>` columns, and `warnings` (what
        is wrong with the row, empty when it is clean); with the notes about the whole table."""
        check = self.check_schema(frame, unread)
        values = self.predict_proba(check.frame)
        out = frame.copy()
        if self.task == Task.REGRESSION:
            out["prediction"] = values
        else:
            out["prediction"] = np.asarray(self.classes, dtype=object)[values.argmax(axis=1)]
            for k, label in enumerate(self.classes):
                out[f"proba_{label}"] = values[:, k]
        warnings = np.full(len(out), "", dtype=object)
        for row, problems in check.row_warnings.items():
            warnings[row] = "; ".join(problems)
        out["warnings"] = warnings
        return Prediction(out, check.notes)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The table of `predict_rows`, without the notes."""
        return self.predict_rows(frame).table


@dataclass
class SchemaCheck:
    frame: pd.DataFrame  # the input columns, values of the training kinds; what did not fit is missing
    notes: list[str]  # one plain sentence per problem, about the whole table
    row_warnings: dict[int, list[str]]  # by row position, what is wrong with the flagged rows

    def flag(self, row: int, problem: str) -> None:
        self.row_warnings.setdefault(int(row), []).append(problem)


@dataclass
class Prediction:
    table: pd.DataFrame
    notes: list[str]


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


_DATE_SHAPE = re.compile(r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})([ T]\d|\s*$)")


def _what_is_wrong(value: str, expected: str) -> str:
    """'a date, not a number', 'a number, not a date', or 'not <expected>'."""
    if expected == "a date":
        return "a number, not a date" if not np.isnan(pd.to_numeric(value, errors="coerce")) else "not a date"
    return f"a date, not {expected}" if _DATE_SHAPE.match(value) else f"not {expected}"


def load_model(run_dir: Path) -> TrainedModel:
    return TrainedModel(*load_run(Path(run_dir)))


def load_model_for_run(store, run_id: str) -> TrainedModel:
    run = store.get_run(run_id, with_epochs=False)
    if run.status != RunStatus.SUCCEEDED:
        raise UserError(f"Run {run_id} has not finished successfully ({run.status}); pick a finished run.")
    return load_model(store.settings.runs_dir / run_id)


def predict_file(store, run_id: str, data: bytes) -> Prediction:
    """Predict a CSV file's rows: the table, and the notes on what did not fit the training schema."""
    ingested = ingest_bytes(data)
    return load_model_for_run(store, run_id).predict_rows(ingested.table, ingested.unread)


def export_run(store, run_id: str) -> bytes:
    """The saved model as a zip (config.json, skops and safetensors files) to keep or share."""
    load_model_for_run(store, run_id)  # refuses unfinished runs and damaged folders
    buffer = io.BytesIO()
    run_dir = store.settings.runs_dir / run_id
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(run_dir.iterdir()):
            archive.write(path, f"workbench-run-{run_id}/{path.name}")
    return buffer.getvalue()
