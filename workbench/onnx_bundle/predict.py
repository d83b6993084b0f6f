"""Predict with this exported Workbench model: python predict.py input.csv output.csv

Needs Python 3.11 or newer and only onnxruntime and numpy (requirements.txt). The preprocessing the model was
trained with is in preprocess.json; this file applies it with numpy, then runs model.onnx. The Workbench checks at
export time that this very code predicts what the Workbench predicts (README.md gives the largest difference found).

From Python: `Bundle.load("path/to/this/folder").predict(records)` with records as dicts of column -> text.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist
from typing import TextIO

import numpy as np
import onnxruntime

# scikit-learn's QuantileTransformer keeps a mapped value this far inside (0, 1) before the normal quantile function.
BOUNDS_THRESHOLD = 1e-7
# A cell starting with one of these is read as a formula by spreadsheets; text cells written out get a quote first.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
# Dates that are not ISO 8601 (which datetime.fromisoformat reads). Dates written as numbers with the year last
# are read month first, or day first for the columns the run reads day first (13/02/2020), as the Workbench does.
_YEAR_LAST = [f"{{0}}{sep}{{1}}{sep}{year}{time}" for sep in "/.-" for year in ("%Y", "%y")
              for time in ("", " %H:%M", " %H:%M:%S")]
MONTH_FIRST = tuple(f.format("%m", "%d") for f in _YEAR_LAST)
DAY_FIRST = tuple(f.format("%d", "%m") for f in _YEAR_LAST)
DATE_FORMATS = ("%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%d %b %Y", "%d %B %Y", "%b %d %Y", "%b %d, %Y", "%B %d %Y",
                "%B %d, %Y")


@dataclass
class Result:
    predictions: list[str | float]  # the class label, or the value in the target's units
    probabilities: np.ndarray | None  # (rows, classes), classification only
    warnings: list[str]  # per row, what was wrong with it ("" when clean)


class Bundle:
    """The preprocessing of preprocess.json and an onnxruntime session of model.onnx."""

    def __init__(self, spec: dict, model: bytes):
        self.spec = spec
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.inputs = {node.name for node in self.session.get_inputs()}

    @classmethod
    def load(cls, folder: str | Path) -> Bundle:
        folder = Path(folder)
        spec = json.loads((folder / "preprocess.json").read_text(encoding="utf-8"))
        return cls(spec, (folder / "model.onnx").read_bytes())

    @property
    def input_columns(self) -> list[str]:
        return [column["name"] for column in self.spec["columns"]]

    @property
    def classes(self) -> list[str] | None:
        return self.spec["classes"]

    def predict(self, records: list[dict]) -> Result:
        """Predict rows given as dicts of column name -> cell text (None or a missing token is a missing value).
        Raises ValueError naming a missing column."""
        missing = [name for name in self.input_columns if records and name not in records[0]]
        if missing:
            raise ValueError(f"the input has no column {', '.join(repr(name) for name in missing)}")
        warnings: list[list[str]] = [[] for _ in records]
        x_num, x_cat = self.transform(records, warnings)
        feeds = {"x_num": x_num, "x_cat": x_cat}
        model = self.spec["model"]
        output = np.asarray(self.session.run([model["output"]], {k: v for k, v in feeds.items() if k in self.inputs})[0],
                            dtype="float64")
        texts = ["; ".join(problems) for problems in warnings]
        if self.classes is None:
            return Result(output.reshape(len(records)).tolist(), None, texts)
        if model.get("output_classes") is not None:  # the estimator saw only some classes in training
            full = np.zeros((len(records), len(self.classes)))
            full[:, model["output_classes"]] = output
            output = full
        labels = [self.classes[k] for k in output.argmax(axis=1)] if len(records) else []
        return Result(labels, output, texts)

    # -- preprocessing: the Workbench's column transformer, step by step --------------------------------------------

    def transform(self, records: list[dict], warnings: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(numeric float32 matrix, categorical int64 codes), as the Workbench's preprocessor makes them."""
        spec, n = self.spec, len(records)
        kinds = {column["name"]: column["kind"] for column in spec["columns"]}
        cells = {name: [_cell(record.get(name), spec["missing_tokens"]) for record in records] for name in kinds}
        numbers = {name: self._numbers(name, cells[name], kinds[name] == "boolean", warnings)
                   for name in kinds if kinds[name] in ("numeric", "boolean")}
        day_first = {column["name"] for column in spec["columns"] if column.get("day_first")}
        dates = {name: self._dates(name, cells[name], warnings, name in day_first)
                 for name in kinds if kinds[name] == "datetime"}
        blocks = []
        numeric = spec["numeric"]
        if numeric["columns"]:
            matrix = np.empty((n, len(numeric["columns"])))
            for j, (name, part) in enumerate(numeric["columns"]):
                if part is None:
                    matrix[:, j] = np.clip(numbers[name], -spec["max_magnitude"], spec["max_magnitude"])
                else:
                    matrix[:, j] = [np.nan if d is None else _date_part(d, part) for d in dates[name]]
            matrix = _impute(matrix, numeric["impute"])
            blocks.append(_scale(matrix, numeric["scaling"]))
        boolean = spec["boolean"]
        if boolean["columns"]:
            matrix = np.column_stack([numbers[name] for name in boolean["columns"]])
            blocks.append(_impute(matrix, boolean["impute"]))
        codes = []
        categorical = spec["categorical"]
        for column in categorical["columns"]:
            values = [_category(value, column["format"]) for value in cells[column["name"]]]
            for row, value in enumerate(values):
                if value is not None and value not in column["codes"]:
                    warnings[row].append(f"'{column['name']}': '{value}' was never seen in training")
            found = np.array([column["missing"] if v is None else column["codes"].get(v, column["unknown"])
                              for v in values], dtype="int64")
            if categorical["mode"] == "onehot":  # code -1: all zeros (an unseen category with no rare-category column)
                onehot = np.zeros((n, column["width"]))
                onehot[np.flatnonzero(found >= 0), found[found >= 0]] = 1.0
                blocks.append(onehot)
            else:
                codes.append(found)
        for row in range(n):
            if all(cells[name][row] is None for name in kinds):
                warnings[row].append("every feature is missing")
        x_num = np.column_stack(blocks).astype("float32") if blocks else np.zeros((n, 0), dtype="float32")
        x_cat = np.column_stack(codes).astype("int64") if codes else np.zeros((n, 0), dtype="int64")
        return x_num, x_cat

    @staticmethod
    def _numbers(name: str, cells: list[str | None], boolean: bool, warnings: list[list[str]]) -> np.ndarray:
        out = np.full(len(cells), np.nan)
        for row, text in enumerate(cells):
            if text is None:
                continue
            value = _number(text)
            if boolean and value not in (0.0, 1.0):
                value = None
            if value is None:
                warnings[row].append(f"'{name}': '{text}' is not {'true or false' if boolean else 'a number'}")
            else:
                out[row] = value
        return out

    @staticmethod
    def _dates(name: str, cells: list[str | None], warnings: list[list[str]], day_first: bool) -> list[datetime | None]:
        out = []
        for row, text in enumerate(cells):
            value = None if text is None else _date(text, day_first)
            if text is not None and value is None:
                warnings[row].append(f"'{name}': '{text}' is not a date")
            out.append(value)
        return out


def _cell(value, missing_tokens: list[str]) -> str | None:
    """A cell as stripped text; None when missing. JSON values (numbers, true/false, null) become their text."""
    if value is None:
        return None
    if isinstance(value, bool):
        value = "true" if value else "false"
    text = str(value).strip()
    return None if text.lower() in missing_tokens else text


def _number(text: str) -> float | None:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return 1.0 if lowered == "true" else 0.0
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _date(text: str, day_first: bool = False) -> datetime | None:
    """The moment as naive UTC, as the Workbench keeps dates (a time with an offset is moved to UTC)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        value = None
        for pattern in (DAY_FIRST if day_first else MONTH_FIRST) + DATE_FORMATS:
            try:
                value = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
    if value is not None and value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _date_part(value: datetime, part: str) -> float:
    return float(value.weekday() if part == "dayofweek" else getattr(value, part))


def _category(text: str | None, number_format: str | None) -> str | None:
    """A category as the Workbench wrote it in training: numbers read from a file were numbers there ('3' and
    '3.0' are the same category), true/false were booleans."""
    if text is None or number_format is None:
        return text
    if number_format == "bool":
        return {"true": "True", "false": "False"}.get(text.lower(), text)
    value = _number(text)
    if value is None:
        return text
    if number_format == "int" and value.is_integer():
        return str(int(value))
    return str(float(value)) if number_format == "float" else text


def _impute(matrix: np.ndarray, fill: list[float]) -> np.ndarray:
    return np.where(np.isnan(matrix), np.asarray(fill), matrix)


def _scale(matrix: np.ndarray, scaling: dict) -> np.ndarray:
    """scikit-learn's StandardScaler, MinMaxScaler or QuantileTransformer (normal output), or the Workbench's robust
    scaling with smooth clipping, same operations."""
    if scaling["kind"] == "standard":
        return (matrix - np.asarray(scaling["mean"])) / np.asarray(scaling["scale"])
    if scaling["kind"] == "robust":
        third = np.clip((matrix - np.asarray(scaling["center"])) / np.asarray(scaling["scale"]), -1e300, 1e300) / 3
        return 3.0 * third / np.hypot(1.0, third)  # x / sqrt(1 + (x / 3)^2), without overflow
    if scaling["kind"] == "minmax":
        return matrix * np.asarray(scaling["scale"]) + np.asarray(scaling["min"])
    references = np.asarray(scaling["references"])
    normal = NormalDist()
    clip_low = normal.inv_cdf(BOUNDS_THRESHOLD - np.spacing(1))
    clip_high = normal.inv_cdf(1 - (BOUNDS_THRESHOLD - np.spacing(1)))
    out = np.empty_like(matrix)
    for j, quantiles in enumerate(scaling["quantiles"]):
        quantiles = np.asarray(quantiles)
        column = matrix[:, j]
        low = column - BOUNDS_THRESHOLD < quantiles[0]
        high = column + BOUNDS_THRESHOLD > quantiles[-1]
        # both directions, averaged: repeated quantiles map to the middle of their run
        uniform = 0.5 * (np.interp(column, quantiles, references)
                         - np.interp(-column, -quantiles[::-1], -references[::-1]))
        uniform[high], uniform[low] = 1.0, 0.0
        out[:, j] = [min(max(normal.inv_cdf(u) if 0 < u < 1 else (-math.inf if u <= 0 else math.inf), clip_low),
                         clip_high) for u in uniform]
    return out


# -- CSV in, CSV out -------------------------------------------------------------------------------------------------


def read_csv(path: str | Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return read_rows(handle)


def read_rows(handle: TextIO) -> tuple[list[str], list[dict]]:
    """The header (names with runs of white space made one space, as the Workbench reads them) and the rows."""
    reader = csv.reader(handle)
    header = [" ".join(name.split()) for name in next(reader, [])]
    return header, [dict(zip(header, row, strict=False)) for row in reader if row]


def _safe(text: object) -> object:
    """A text cell that a spreadsheet would run as a formula gets a quote in front; numbers stay as they are."""
    if isinstance(text, str) and text.startswith(FORMULA_PREFIXES) and _number(text) is None:
        return "'" + text
    return text


def named_apart(header: list[str], outputs: list[str]) -> list[str]:
    """The header with an input column named as an output renamed ('prediction' -> 'prediction (input)'), as the
    Workbench names it (workbench.predict), so that no output column has two meanings."""
    taken, names = set(header) | set(outputs), []
    for name in header:
        if name in outputs:
            new, n = f"{name} (input)", 2
            while new in taken:
                new, n = f"{name} (input {n})", n + 1
            taken.add(new)
            name = new
        names.append(name)
    return names


def write_csv(path: str | Path, header: list[str], records: list[dict], result: Result, classes: list[str] | None):
    outputs = ["prediction", *(f"proba_{label}" for label in classes or []), "warnings"]
    columns = [*named_apart(header, outputs), *outputs]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([_safe(name) for name in columns])
        for row, record in enumerate(records):
            probabilities = [] if result.probabilities is None else [repr(float(p)) for p in result.probabilities[row]]
            prediction = result.predictions[row]
            writer.writerow([*(_safe(record.get(name, "")) for name in header),
                             _safe(prediction if isinstance(prediction, str) else repr(float(prediction))),
                             *probabilities, _safe(result.warnings[row])])


def main(args: list[str]) -> int:
    if len(args) != 2:
        print("usage: python predict.py input.csv output.csv", file=sys.stderr)
        return 2
    source, target = args
    bundle = Bundle.load(Path(__file__).resolve().parent)
    try:
        header, records = read_csv(source)
        result = bundle.predict(records)
    except (OSError, ValueError, csv.Error, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    flagged = sum(1 for text in result.warnings if text)
    if flagged:
        print(f"note: {flagged} row(s) have values that did not fit the training data; see their 'warnings'.",
              file=sys.stderr)
    write_csv(target, header, records, result, bundle.classes)
    print(f"wrote {len(records):,} predictions to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
