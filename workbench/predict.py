"""Predict with a saved run: check a new table against the training schema, then predict."""

from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pandas.api import types as ptypes

from workbench.artifacts import load_run
from workbench.dates import FIRST_YEAR, LAST_YEAR, as_datetime, naive_utc, outside_range
from workbench.devices import classical_threads
from workbench.errors import UserError
from workbench.ingest import ingest_bytes
from workbench.models.ensemble import Ensemble, average
from workbench.prepare import Preprocessor
from workbench.safe_csv import to_safe_csv
from workbench.store.entities import Run, RunStatus
from workbench.tasks import Objective, Task, higher_is_better
from workbench.training import predict_outputs

__all__ = ["Prediction", "TrainedModel", "best_run_ids", "best_runs", "comparable_group", "export_run", "load_model",
           "load_model_for_run", "predict_file", "to_safe_csv"]


@dataclass
class TrainedModel:
    config: dict[str, Any]
    preprocessor: Preprocessor
    model: Any
    members: list[TrainedModel] = field(default_factory=list)  # an ensemble's members, in `model.run_ids`' order

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
            raise UserError(f"The data to predict is missing the column{'s' if len(missing) > 1 else ''} {names} "
                            "that the model was trained on.")
        check = SchemaCheck(frame[self.input_columns].copy(), [], {})
        unread = unread or {}
        features = self.preprocessor.features
        for name in features.numeric + features.boolean:
            check.frame[name] = self._checked_numbers(check, name, unread.get(name), name in features.boolean)
        for name in features.datetime:
            check.frame[name] = self._checked_dates(check, name, unread.get(name), name in features.datetime_day_first)
        for name, known in zip(features.categorical, self.known_categories(), strict=True):
            self._flag_unseen(check, name, known)
        for name in self.input_columns:
            if len(frame) and pd.isna(frame[name].to_numpy()).all():
                check.notes.append(f"Column '{name}' is empty on every row; it is treated as missing.")
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
            numbers = np.full(len(values), np.nan)
        elif ptypes.is_bool_dtype(values) or ptypes.is_numeric_dtype(values):
            numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        else:
            text = values.astype("string").str.strip().str.lower()
            numbers = pd.to_numeric(text.replace({"true": "1", "false": "0"}), errors="coerce").astype("float64")
            numbers = numbers.to_numpy()
        # numpy, not pandas, from here: per column this is most of a served one-row request's schema check
        usable = np.isfinite(numbers) & (np.isin(numbers, [0, 1]) if boolean else True)
        self._flag(check, name, pd.notna(values.to_numpy()) & ~usable, unread, int(usable.sum()),
                   "true or false" if boolean else "a number")
        return pd.Series(np.where(usable, numbers, np.nan), index=values.index)

    def _checked_dates(self, check: SchemaCheck, name: str, unread: pd.Series | None, day_first: bool) -> pd.Series:
        values = check.frame[name]
        if ptypes.is_datetime64_any_dtype(values):
            dates = values
        elif ptypes.is_numeric_dtype(values) or ptypes.is_bool_dtype(values):
            dates = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
        else:
            text = values.astype("string").str.strip()
            # a number is no date
            dates = naive_utc(as_datetime(text.where(pd.to_numeric(text, errors="coerce").isna()), day_first))
        self._flag(check, name, values.notna() & dates.isna(), unread, int(dates.notna().sum()), "a date")
        return dates

    @staticmethod
    def _flag(check: SchemaCheck, name: str, bad: pd.Series | np.ndarray, unread: pd.Series | None, usable: int,
              expected: str) -> None:
        """Flag the rows whose value did not fit (bad) or that the CSV reader could not read (unread); refuse a
        column with no usable value at all."""
        values = check.frame[name]
        wrong = {int(row): str(values.iloc[row]) for row in np.flatnonzero(np.asarray(bad))}
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

    def known_categories(self) -> list[set[str]]:
        """Per categorical input column, the categories seen in training (as text)."""
        if not self.preprocessor.features.categorical:
            return []
        encoder = self.preprocessor.transformer_.named_transformers_["categorical"].named_steps["encode"]
        return [{str(c) for c in categories} for categories in encoder.categories_]

    @staticmethod
    def _flag_unseen(check: SchemaCheck, name: str, known: set[str]) -> None:
        values = check.frame[name]  # a category is its text (as the encoder reads it), None when missing
        text = [str(v) if present else None for v, present in zip(values.astype(object), pd.notna(values.to_numpy()),
                                                                  strict=True)]
        unseen = np.array([t is not None and t not in known for t in text], dtype=bool)
        if not unseen.any():
            return
        for row in np.flatnonzero(unseen):
            check.flag(row, f"'{name}': '{text[row]}' was never seen in training")
        names = [f"'{n}'" for n in dict.fromkeys(t for t, new in zip(text, unseen, strict=True) if new)]
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        check.notes.append(f"Column '{name}' has {_count(len(names), 'category', 'categories')} the model never "
                           f"saw in training ({', '.join(names[:5])}{more}) on "
                           f"{_count(int(unseen.sum()), 'row')}; they are predicted as an unknown category "
                           "and those rows are flagged.")

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities (n, n_classes) or regression predictions (n,) of an already checked frame. An
        ensemble averages its members' predictions, each from its own preprocessing of the frame, by their weights."""
        if isinstance(self.model, Ensemble):
            return average([m.predict_proba(frame[m.input_columns]) for m in self.members], self.model.weights)
        return self.predict_arrays(*self.preprocessor.transform(frame))

    def predict_arrays(self, x_num: np.ndarray, x_cat: np.ndarray) -> np.ndarray:
        """`predict_proba` of already preprocessed rows (the preprocessor's numeric matrix and category codes)."""
        if isinstance(self.model, Ensemble):  # its members preprocess the original columns, each its own way
            raise ValueError("an ensemble predicts from the original columns (predict_proba), not preprocessed rows")
        objective = Objective.from_config(self.config)
        if isinstance(self.model, torch.nn.Module):
            return objective.predictions(predict_outputs(self.model, torch.as_tensor(x_num), torch.as_tensor(x_cat)).numpy())
        with classical_threads(len(x_num)):
            return objective.estimator_predictions(self.model, x_num)

    def predict_rows(self, frame: pd.DataFrame, unread: Mapping[str, pd.Series] | None = None) -> Prediction:
        """The input columns plus `prediction`, for classification `proba_<class>` columns, and `warnings` (what
        is wrong with the row, empty when it is clean); with the notes about the whole table."""
        check = self.check_schema(frame, unread)
        values = self.predict_proba(check.frame)
        outputs = ["prediction", *(f"proba_{label}" for label in self.classes or [] if self.task != Task.REGRESSION),
                   "warnings"]
        renamed = _out_of_the_way([str(c) for c in frame.columns], outputs)
        out = frame.rename(columns=lambda c: renamed.get(str(c), c))
        if renamed:
            listed = ", ".join(f"'{name}' as '{new}'" for name, new in renamed.items())
            check.notes.append(f"The file has columns named as the model's own; they are kept in the output, named "
                               f"apart: {listed}.")
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
        return Prediction(out, check.notes, renamed, outputs)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The table of `predict_rows`, without the notes."""
        return self.predict_rows(frame).table

    def predict_csv(self, data: bytes) -> Prediction:
        """Predict a CSV file's rows, read as the workbench reads uploads (cells it could not read are flagged)."""
        ingested = ingest_bytes(data)
        return self.predict_rows(ingested.table, ingested.unread)


@dataclass
class SchemaCheck:
    frame: pd.DataFrame  # the input columns, values of the training kinds; what did not fit is missing
    notes: list[str]  # one plain sentence per problem, about the whole table
    row_warnings: dict[int, list[str]]  # by row position, what is wrong with the flagged rows

    def flag(self, row: int, problem: str) -> None:
        self.row_warnings.setdefault(int(row), []).append(problem)


@dataclass
class Prediction:
    table: pd.DataFrame  # the rows as given, then the model's columns (`outputs`)
    notes: list[str]
    renamed: dict[str, str] = field(default_factory=dict)  # input columns named apart from an output: name -> new
    outputs: list[str] = field(default_factory=list)

    def inputs(self) -> pd.DataFrame:
        """The rows as given, under their own names (monitoring summarises these)."""
        back = {new: name for name, new in self.renamed.items()}
        return self.table.drop(columns=self.outputs).rename(columns=lambda c: back.get(str(c), c))


def _out_of_the_way(columns: list[str], outputs: list[str]) -> dict[str, str]:
    """New names for the input columns named as an output ('prediction' -> 'prediction (input)'), none of them taken."""
    taken = set(columns) | set(outputs)
    renamed = {}
    for name in columns:
        if name in outputs:
            new, n = f"{name} (input)", 2
            while new in taken:
                new, n = f"{name} (input {n})", n + 1
            renamed[name] = new
            taken.add(new)
    return renamed


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


_DATE_SHAPE = re.compile(r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})([ T]\d|\s*$)")


def _what_is_wrong(value: str, expected: str) -> str:
    """'a date, not a number', 'a number, not a date', 'too large a number to hold', 'a date outside the years ...',
    or 'not <expected>'."""
    try:
        number = float(value)  # pandas reads '1e400' as no number; Python, as infinite
    except ValueError:
        number = math.nan
    if expected == "a date":
        if outside_range(pd.Series([value])).iloc[0]:
            return f"a date outside the years {FIRST_YEAR} to {LAST_YEAR}, which cannot be held"
        return "a number, not a date" if not np.isnan(number) else "not a date"
    if expected == "a number" and np.isinf(number):
        return "infinite or too large a number to hold"
    return f"a date, not {expected}" if _DATE_SHAPE.match(value) else f"not {expected}"


def comparable_group(run: Run) -> tuple[str, str, str | None, str | None]:
    """Runs with the same group predict the same target of the same dataset and are scored by the same metric on
    the same test rows: their test scores can be ranked."""
    return run.dataset_id, run.target, run.split_fingerprint, run.primary_metric


def best_runs(runs: Iterable[Run]) -> dict[tuple[str, str, str | None, str | None], Run]:
    """The best succeeded run of each comparable group by its primary test metric, in the metric's direction
    (accuracy up, RMSE down). Of equal scores the first given wins (newest first, as the store lists runs).
    A run without a finite test score is never best."""
    best: dict[tuple[str, str, str | None, str | None], Run] = {}
    for run in runs:
        if (run.status != RunStatus.SUCCEEDED or run.primary_metric is None or run.primary_value is None
                or not math.isfinite(run.primary_value)):
            continue
        group = comparable_group(run)
        current = best.get(group)
        sign = 1 if higher_is_better(run.primary_metric) else -1
        if current is None or sign * (run.primary_value - current.primary_value) > 0:
            best[group] = run
    return best


def best_run_ids(runs: Iterable[Run]) -> set[str]:
    """The runs whose test score equals the best of their comparable group (ties are all best)."""
    runs = list(runs)
    best = best_runs(runs)
    return {r.id for r in runs if (top := best.get(comparable_group(r))) is not None and r.primary_value is not None
            and math.isclose(r.primary_value, top.primary_value, rel_tol=1e-12)}


def load_model(run_dir: Path) -> TrainedModel:
    config, preprocessor, model = load_run(Path(run_dir))
    if not isinstance(model, Ensemble):
        return TrainedModel(config, preprocessor, model)
    members = [load_model(folder) for folder in model.folders]
    for run_id, member in zip(model.run_ids, members, strict=True):
        if isinstance(member.model, Ensemble) or member.task != config["task"] or member.classes != config["classes"]:
            raise UserError(f"The saved model of run {Path(run_dir).name} is damaged (its member {run_id} does not "
                            "fit it); train it again.")
    return TrainedModel(config, preprocessor, model, members)


def load_model_for_run(store, run_id: str) -> TrainedModel:
    run = store.get_run(run_id, with_epochs=False)
    if run.status != RunStatus.SUCCEEDED:
        raise UserError(f"Run {run_id} has not finished successfully ({run.status}); pick a finished run.")
    return load_model(store.settings.runs_dir / run_id)


def predict_file(store, run_id: str, data: bytes) -> Prediction:
    """Predict a CSV file's rows: the table, and the notes on what did not fit the training schema."""
    return load_model_for_run(store, run_id).predict_csv(data)


def export_run(store, run_id: str) -> bytes:
    """The saved model as a zip to keep or share: one folder `workbench-run-<id>/` with config.json, the skops and
    safetensors files, a README.md that says what the model is and how to use it, and predict.py, which predicts
    a CSV with the project's own code (`python predict.py input.csv output.csv`)."""
    model = load_model_for_run(store, run_id)  # refuses unfinished runs and damaged folders
    run = store.get_run(run_id, with_epochs=False)
    dataset_name = next((d.name for d in store.list_datasets() if d.id == run.dataset_id), None)
    folder = f"workbench-run-{run_id}"
    buffer = io.BytesIO()
    run_dir = store.settings.runs_dir / run_id
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(run_dir.rglob("*")):  # an ensemble's members are folders inside it
            if path.is_file():
                archive.write(path, f"{folder}/{path.relative_to(run_dir).as_posix()}")
        archive.writestr(f"{folder}/README.md", export_readme(run, model, dataset_name, sorted(
            p.name for p in run_dir.iterdir())))
        archive.writestr(f"{folder}/predict.py", PREDICT_SCRIPT)
    return buffer.getvalue()


# The exported zip's predict.py: the project's own reading, schema check and prediction, so that it predicts
# exactly what the workbench predicts for the same file.
PREDICT_SCRIPT = '''"""Predict with this exported Workbench model: python predict.py input.csv output.csv

Needs the Workbench project importable (see README.md): run it with the workbench's Python, or set PYTHONPATH to a
checkout of the project.
"""

import sys
from pathlib import Path

try:
    from workbench.errors import UserError
    from workbench.ingest import read_path
    from workbench.predict import load_model, to_safe_csv
except ImportError:
    sys.exit("error: the workbench package is not importable; set PYTHONPATH to a Workbench checkout (README.md).")


def main(args: list[str]) -> int:
    if len(args) != 2:
        print("usage: python predict.py input.csv output.csv", file=sys.stderr)
        return 2
    source, target = args
    try:
        model = load_model(Path(__file__).resolve().parent)
        result = model.predict_csv(read_path(source))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in result.notes:  # what did not fit the training schema; those rows are flagged in `warnings`
        print(f"note: {note}", file=sys.stderr)
    Path(target).write_text(to_safe_csv(result.table), encoding="utf-8")
    print(f"wrote {len(result.table):,} predictions to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''

KIND_WORDS = {"numeric": "a number", "boolean": "true or false (or 1 or 0)", "categorical": "a category",
              "datetime": "a date"}


def export_readme(run: Run, model: TrainedModel, dataset_name: str | None, files: list[str]) -> str:
    """README.md of an exported model. Names from the data (the target, columns, classes, the dataset) appear only
    inside code spans and code blocks, so a markdown viewer shows them as text, never as a link or an image."""
    from workbench.models.registry import MODELS
    from workbench.tasks import baseline_name

    spec = MODELS[model.config["model"]]
    task_words = {Task.BINARY: "binary classification", Task.MULTICLASS: "multiclass classification",
                  Task.REGRESSION: "regression"}[Task(model.task)]
    details = run.details or {}
    lines = [
        f"# Workbench model: {spec.name} predicting {_code(run.target)}",
        "",
        f"Exported from Workbench run {_code(run.id)}"
        + (f", trained on the dataset {_code(dataset_name)}" if dataset_name else "")
        + (f" ({details['n_train']:,} training, {details['n_val']:,} validation and {details['n_test']:,} test rows)"
           if {"n_train", "n_val", "n_test"} <= set(details) else "") + ".",
        "",
        f"- **Model:** {spec.name} ({spec.family}): {spec.description}",
        f"- **Target:** {_code(run.target)}, {task_words}"
        + (f"; classes {', '.join(_code(c) for c in model.classes)}" if model.classes else "") + ".",
        "- **Settings:** " + ", ".join(f"{k}={_code(v)}" for k, v in run.params.items()) + ".",
        "",
        "## Test scores",
        "",
        "On test rows the model never saw while training, beside a trivial model that always predicts the "
        f"{baseline_name(model.task)} of the training rows:",
        "",
        f"| metric | this model | {baseline_name(model.task)} |",
        "| --- | --- | --- |",
    ]
    test, base = run.metrics.get("test", {}), run.baseline.get("test", {})
    for name, value in test.items():
        if isinstance(value, (int, float)):
            better = "higher" if higher_is_better(name) else "lower"
            primary = " (the main metric)" if name == run.primary_metric else ""
            shown = f"{base[name]:.4f}" if isinstance(base.get(name), (int, float)) else ""
            lines.append(f"| {name}{primary}, {better} is better | {value:.4f} | {shown} |")
    features = model.preprocessor.features
    kinds = {name: kind for kind in KIND_WORDS for name in getattr(features, kind)}
    listing = [f"{_printable(name)}: {KIND_WORDS[kinds[name]]}" for name in model.input_columns]
    lines += [
        "",
        "## Input columns",
        "",
        "A file to predict needs these columns, each holding the kind of value shown (other columns are ignored; "
        "a missing value is filled in as it was in training):",
        "",
        *_code_block(listing),
        "",
        "## How to predict",
        "",
        "This folder is not a program of its own: `predict.py` loads these files with the Workbench project's own "
        "code, so the `workbench` package must be importable. Run it with the Python of a Workbench checkout "
        "(its `.venv`), or set `PYTHONPATH` to the checkout; from this folder:",
        "",
        "```",
        "PYTHONPATH=/path/to/workbench /path/to/workbench/.venv/bin/python predict.py input.csv output.csv",
        "```",
        "",
        "`output.csv` holds the input rows with a `prediction` column"
        + (", a `proba_<class>` column per class (the predicted probabilities)" if model.classes else "")
        + " and a `warnings` column that names what was wrong with a row (a value that did not parse, a category "
        "never seen in training, every feature missing); notes about the whole file are printed.",
        "",
        "From Python, in the same environment:",
        "",
        "```python",
        "import pandas as pd",
        "from workbench.predict import load_model",
        "",
        'model = load_model("path/to/this/folder")',
        'result = model.predict_rows(pd.read_csv("input.csv"))',
        "print(result.notes)",
        "result.table  # the rows with prediction, probabilities and warnings",
        "```",
        "",
        "## Files",
        "",
        *[f"- `{name}`: {FILE_WORDS.get(name, '')}" for name in files],
        "- `README.md`: this file.",
        "- `predict.py`: predicts a CSV file with this model.",
    ]
    versions = details.get("versions")
    if versions:
        lines += ["", "Trained with " + ", ".join(f"{k} {_code(v)}" for k, v in versions.items())
                  + "; the same versions load it most surely."]
    return "\n".join(lines) + "\n"


FILE_WORDS = {
    "config.json": "what the model is: its task, classes, input columns and settings.",
    "preprocessor.skops": "the fitted preprocessing (skops: loads without unpickling).",
    "weights.safetensors": "the network's weights (safetensors).",
    "model.skops": "the fitted scikit-learn model (skops: loads without unpickling).",
    "members": "the saved models of the ensemble's runs, one folder each (their weights are in config.json).",
}


def _printable(text: object) -> str:
    """Control and format characters (line breaks, bidi overrides) as visible escapes."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(text))


def _code(text: object) -> str:
    """An inline code span that holds `text` literally, whatever backticks it contains."""
    value = _printable(text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or not value.strip() else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _code_block(lines: list[str]) -> list[str]:
    """A fenced code block longer than any run of backticks inside it."""
    fence = "`" * max([3, *(len(run) + 1 for line in lines for run in re.findall(r"`{3,}", line))])
    return [fence, *lines, fence]
