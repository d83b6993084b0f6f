"""Portable export: a run's model as ONNX, its preprocessing as JSON, and a predict.py and serve.py that need only
onnxruntime and numpy (FastAPI and uvicorn to serve), so the model runs where the Workbench is not installed.

PyTorch models go through `torch.onnx.export` (the dynamo exporter, batch axis dynamic), scikit-learn models through
skl2onnx; either way the graph ends in what the Workbench predicts: class probabilities, or the value in the
target's units. The preprocessing (date parts, imputation, scaling, category codes) is written out as
`preprocess.json`, which the bundle's predict.py (workbench/onnx_bundle/predict.py, shipped as it is) applies with
numpy. Before anything is handed out, that same predict.py and model.onnx predict test rows of the run read from a
CSV text, and the export is refused when they differ from the Workbench's own predictions by more than TOLERANCE.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import math
import re
import sys
import threading
import warnings
import zipfile
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.datasets import load_table
from workbench.errors import UserError
from workbench.explain import test_rows
from workbench.ingest import MISSING_TOKENS
from workbench.models.registry import MODELS, ModelSpec
from workbench.models.tabm import TabM
from workbench.predict import KIND_WORDS, TrainedModel, _code, _code_block, _printable, load_model_for_run
from workbench.prepare import DATE_PARTS, MAX_MAGNITUDE, MISSING_CATEGORY, Preprocessor
from workbench.store.entities import Run
from workbench.tasks import Objective, Task

__all__ = ["CHECK_ROWS", "TOLERANCE", "Check", "bundle_check", "check_bundle", "convert", "export_onnx",
           "preprocess_spec"]

log = logging.getLogger(__name__)

CHECK_ROWS = 100  # test rows predicted both ways before an export is handed out
TOLERANCE = 1e-4  # the largest difference allowed: of a probability, or relative, of a regression value
OPSET = 18
BUNDLE_CODE = Path(__file__).resolve().parent / "onnx_bundle"
# What the bundle's requirements.txt pins when this environment lacks a package (serving needs FastAPI and uvicorn,
# which the Workbench itself does not).
FALLBACK_VERSIONS = {"fastapi": "0.163.2", "uvicorn": "0.54.0"}
# One conversion at a time: the app exports from several threads, and the converters' workarounds below (a logger's
# level, a function of skl2onnx swapped for the conversion) are process-wide.
_CONVERTING = threading.Lock()


@dataclass(frozen=True)
class Check:
    """How closely the bundle's predictions followed the Workbench's on the run's test rows."""

    rows: int
    max_difference: float
    measure: str  # "probability" (absolute) or "relative" (regression values)
    tolerance: float = TOLERANCE

    @property
    def passed(self) -> bool:
        return self.max_difference <= self.tolerance

    def sentence(self) -> str:
        what = "of a class probability" if self.measure == "probability" else "relative, of a predicted value"
        return (f"On {self.rows} test rows of the run, the largest difference from the Workbench's own predictions "
                f"was {self.max_difference:.2e} ({what}; at most {self.tolerance:.0e} is allowed).")


def export_onnx(store, run_id: str) -> bytes:
    """The zip of a finished run's ONNX bundle, one folder `workbench-run-<id>-onnx/`: model.onnx, preprocess.json,
    predict.py, serve.py, requirements.txt, check.json and README.md. Refuses, in one sentence, a model that does
    not convert and a bundle whose predictions on the run's test rows differ from the Workbench's."""
    trained = load_model_for_run(store, run_id)  # refuses unfinished runs and damaged folders
    run = store.get_run(run_id, with_epochs=False)
    spec = MODELS[trained.config["model"]]
    model_bytes, output = convert(trained, spec)
    preprocess = preprocess_spec(trained, output)
    try:
        rows, _ = test_rows(store, run, load_table(store, run.dataset_id))
    except UserError as exc:
        raise UserError(f"The test rows of run {run_id} cannot be read from its dataset, so its ONNX export cannot "
                        "be checked against the Workbench's predictions.") from exc
    rows = rows.sample(n=min(CHECK_ROWS, len(rows)), random_state=0)
    check = check_bundle(trained, preprocess, model_bytes, rows)
    if not check.passed:
        raise UserError(f"The ONNX export of run {run_id} ({spec.name}) was refused: on {check.rows} test rows it "
                        f"differs from the Workbench's predictions by up to {check.max_difference:.2e}, over the "
                        f"{TOLERANCE:.0e} allowed.")
    dataset_name = next((d.name for d in store.list_datasets() if d.id == run.dataset_id), None)
    folder = f"workbench-run-{run_id}-onnx"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{folder}/model.onnx", model_bytes)
        archive.writestr(f"{folder}/preprocess.json", json.dumps(preprocess, indent=1))
        archive.writestr(f"{folder}/check.json", json.dumps({**asdict(check), "passed": check.passed}, indent=1))
        for name in ("predict.py", "serve.py"):
            archive.write(BUNDLE_CODE / name, f"{folder}/{name}")
        archive.writestr(f"{folder}/requirements.txt", bundle_requirements())
        archive.writestr(f"{folder}/README.md", bundle_readme(run, trained, spec, dataset_name, check))
    return buffer.getvalue()


def bundle_check(data: bytes) -> Check:
    """The check figure kept in an exported bundle's zip."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/check.json"))
        figures = json.loads(archive.read(name))
    return Check(figures["rows"], figures["max_difference"], figures["measure"], figures["tolerance"])


# -- the model as an ONNX graph ---------------------------------------------------------------------------------------


def convert(trained: TrainedModel, spec: ModelSpec) -> tuple[bytes, dict[str, Any]]:
    """The ONNX model (bytes) whose output is the Workbench's prediction, and what the bundle needs to read it: the
    output's name and, for an estimator that saw only some classes in training, which classes its columns are."""
    if spec.family == "ensemble":
        raise UserError("An ensemble averages several saved models, each with its own preprocessing, and is not one "
                        "ONNX graph; use the native export, or export its member runs one by one.")
    try:
        with _CONVERTING:
            if spec.family == "neural":
                return _convert_network(trained), {"output": "prediction", "output_classes": None}
            return _convert_estimator(trained)
    except Exception as exc:  # any converter failure: the family is refused, in one sentence; the details are logged
        log.warning("converting a %s model to ONNX failed", spec.name, exc_info=True)
        converter = "torch.onnx" if spec.family == "neural" else "skl2onnx"
        raise UserError(f"The {spec.name} model cannot be exported to ONNX: {converter} cannot convert this kind of "
                        "model; the native export still works.") from exc


class _Predictions(nn.Module):
    """The network and then `Objective.predictions`, in float64 as the Workbench computes them: class
    probabilities, or the value in the target's units (an ensemble's members averaged first)."""

    def __init__(self, network: nn.Module, objective: Objective):
        super().__init__()
        self.network, self.objective = network, objective

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        output = self.objective.members_mean(self.network(x_num, x_cat).double())
        if self.objective.task == Task.BINARY:
            p = torch.sigmoid(output[:, 0])
            return torch.stack([1 - p, p], dim=1)
        if self.objective.task == Task.MULTICLASS:
            return torch.softmax(output, dim=1)
        return output[:, 0] * self.objective.y_std + self.objective.y_mean


class _FloatOutput(nn.Module):
    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x).float()


def _convert_network(trained: TrainedModel) -> bytes:
    network = trained.model.eval()
    if isinstance(network, TabM) and network.network.cat_module is not None:
        # TabM's column_stack joins float numbers and int64 one-hot codes (torch promotes them; an ONNX Concat
        # cannot mix them): the one-hot step yields the same numbers as floats.
        network.network.cat_module = _FloatOutput(network.network.cat_module)
    pre = trained.preprocessor
    # Two rows: a batch of one would be traced as a constant size. DYNAMIC leaves the batch axis free.
    example = (torch.zeros((2, pre.n_numeric_out_)), torch.zeros((2, len(pre.cardinalities_)), dtype=torch.long))
    batch = torch.export.Dim.DYNAMIC
    with warnings.catch_warnings(), _quiet("torch.onnx"), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals (and on torchvision's absence)
        program = torch.onnx.export(_Predictions(network, Objective.from_config(trained.config)).eval(), example,
                                    input_names=["x_num", "x_cat"], output_names=["prediction"], dynamo=True,
                                    dynamic_shapes={"x_num": {0: batch}, "x_cat": {0: batch}}, opset_version=OPSET,
                                    verbose=False)
    return program.model_proto.SerializeToString()


@contextlib.contextmanager
def _quiet(logger_name: str):
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _bool_attributes_as_ints():
    """skl2onnx 1.20 writes a Python False into the integer list `nodes_missing_value_tracks_true` of a boosted
    tree's leaves, which onnx 1.23 refuses ('Expected an int, got a boolean'): while converting, such lists hold
    0 and 1 instead, the same values."""
    from skl2onnx.common import _container

    make_node = _container.make_node

    def ints_for_bools(*args, **attributes):
        fixed = {key: [int(v) if isinstance(v, (bool, np.bool_)) else v for v in value] if isinstance(value, list)
                 else value for key, value in attributes.items()}
        return make_node(*args, **fixed)

    _container.make_node = ints_for_bools
    try:
        yield
    finally:
        _container.make_node = make_node


def _convert_estimator(trained: TrainedModel) -> tuple[bytes, dict[str, Any]]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    estimator = trained.model
    classifier = trained.task != Task.REGRESSION
    options = {id(estimator): {"zipmap": False}} if classifier else None  # probabilities as one matrix
    with _bool_attributes_as_ints():
        graph = convert_sklearn(estimator, initial_types=[("x_num", FloatTensorType([None, estimator.n_features_in_]))],
                                options=options, target_opset={"": OPSET, "ai.onnx.ml": 3})
    output = "probabilities" if classifier else graph.graph.output[0].name
    present = [int(k) for k in getattr(estimator, "classes_", [])]
    partial = classifier and len(present) != len(trained.classes)
    return graph.SerializeToString(), {"output": output, "output_classes": present if partial else None}


# -- the preprocessing as JSON ----------------------------------------------------------------------------------------


def preprocess_spec(trained: TrainedModel, output: dict[str, Any]) -> dict[str, Any]:
    """Everything the bundle's predict.py needs to turn CSV text into the model's inputs, as plain JSON values: the
    fitted imputation, scaling and category codes of the run's column transformer, and the model's output."""
    pre: Preprocessor = trained.preprocessor
    features = pre.features
    transformer = pre.transformer_
    kinds = {name: kind for kind in KIND_WORDS for name in getattr(features, kind)}
    numeric_columns = [[name, None] for name in features.numeric]
    for name in features.datetime:
        numeric_columns += [[name, part] for part in DATE_PARTS + (("hour",) if name in features.datetime_hour else ())]
    numeric: dict[str, Any] = {"columns": numeric_columns}
    if numeric_columns:
        steps = transformer.named_transformers_["numeric"].named_steps
        numeric["impute"] = _floats(steps["impute"].statistics_)
        numeric["scaling"] = _scaling(steps["scale"])
    boolean: dict[str, Any] = {"columns": list(features.boolean)}
    if features.boolean:
        boolean["impute"] = _floats(transformer.named_transformers_["boolean"].statistics_)
    categorical = {"mode": pre.categorical_mode,
                   "columns": _category_codes(pre) if features.categorical else []}
    return {
        "format": "workbench-onnx-preprocess/1",
        "task": str(trained.task),
        "target": trained.config.get("target"),
        "classes": trained.classes,
        "columns": [{"name": name, "kind": kinds[name], **({"day_first": True} if name in features.datetime_day_first
                                                          else {})} for name in pre.input_columns],
        "missing_tokens": sorted(MISSING_TOKENS),
        "max_magnitude": MAX_MAGNITUDE,
        "numeric": numeric,
        "boolean": boolean,
        "categorical": categorical,
        "model": {"inputs": ["x_num", "x_cat"], "n_numeric": pre.n_numeric_out_,
                  "n_categorical": len(pre.cardinalities_), **output},
    }


def _floats(values) -> list[float]:
    values = [float(v) for v in np.asarray(values, dtype="float64").ravel()]
    if not all(math.isfinite(v) for v in values):
        raise UserError("The run's preprocessing holds a value that is not a finite number; it cannot be exported.")
    return values


def _scaling(scaler) -> dict[str, Any]:
    from sklearn.preprocessing import MinMaxScaler, QuantileTransformer, StandardScaler

    from workbench.prepare import RobustSmoothClip

    if isinstance(scaler, RobustSmoothClip):
        return {"kind": "robust", "center": _floats(scaler.center_), "scale": _floats(scaler.scale_)}
    if isinstance(scaler, StandardScaler):
        return {"kind": "standard", "mean": _floats(scaler.mean_), "scale": _floats(scaler.scale_)}
    if isinstance(scaler, MinMaxScaler):
        return {"kind": "minmax", "scale": _floats(scaler.scale_), "min": _floats(scaler.min_)}
    if isinstance(scaler, QuantileTransformer) and scaler.output_distribution == "normal":
        return {"kind": "quantile", "references": _floats(scaler.references_),
                "quantiles": [_floats(column) for column in scaler.quantiles_.T]}
    raise UserError(f"The run's scaling ({type(scaler).__name__}) has no portable form; it cannot be exported.")


UNSEEN = "\x00unseen category\x00"  # no CSV cell holds this


def _category_codes(pre: Preprocessor) -> list[dict[str, Any]]:
    """Per categorical column: every category seen in training and the code (embedding) or one-hot position it
    gets, what a missing and an unseen one get, and how numbers were written as categories. Read off the fitted
    encoder by transforming each value, so rare-category grouping and unknown handling are exactly the encoder's.
    (A missing category reaches the encoder as None, which it keeps as a category of its own.)"""
    pipeline = pre.transformer_.named_transformers_["categorical"]
    encoder = pipeline.named_steps["encode"]
    names = pre.features.categorical
    onehot = pre.categorical_mode == "onehot"
    widths = [_onehot_width(encoder, j) for j in range(len(names))] if onehot else [1] * len(names)
    offsets = np.cumsum([0, *widths])
    columns = []
    for j, name in enumerate(names):
        known = [str(c) for c in encoder.categories_[j] if c is not None]
        values = [*known, UNSEEN, None]
        frame = pd.DataFrame({other: [encoder.categories_[k][0]] * len(values) for k, other in enumerate(names)},
                             dtype=object)
        frame[name] = pd.Series(values, dtype=object)
        out = np.asarray(pipeline.transform(frame), dtype="float64")[:, offsets[j]:offsets[j + 1]]
        if onehot:
            codes = [int(row.argmax()) if row.any() else -1 for row in out]
        else:
            codes = [int(code) + 1 for code in out[:, 0]]  # 0 is kept for unknown and missing, as in training
        columns.append({"name": name, "format": _number_format(known), "width": widths[j],
                        "codes": dict(zip(known, codes[:-2], strict=True)), "unknown": codes[-2],
                        "missing": codes[-1]})
    return columns


def _onehot_width(encoder, j: int) -> int:
    """Output columns of feature j: its categories, the rare ones (if any) merged into one column."""
    infrequent = (encoder.infrequent_categories_[j] if getattr(encoder, "infrequent_categories_", None) is not None
                  else None)
    n_rare = 0 if infrequent is None else len(infrequent)
    return len(encoder.categories_[j]) - n_rare + (1 if n_rare else 0)


def _number_format(categories: list[str]) -> str | None:
    """'int', 'float' or 'bool' when every category is a number or a truth value as Python writes it (the training
    column held numbers, or true/false), so the bundle reads '3' and '3.0' alike; None for text."""
    values = [c for c in categories if c != MISSING_CATEGORY]
    if not values:
        return None
    if set(values) <= {"True", "False"}:
        return "bool"
    if all(re.fullmatch(r"-?\d+", c) for c in values):
        return "int"
    try:
        return "float" if all(repr(float(c)) == c for c in values) else None
    except ValueError:
        return None


# -- the check ---------------------------------------------------------------------------------------------------------


@cache
def bundle_module() -> ModuleType:
    """The bundle's predict.py, imported from its file: the code the check runs is the code that is shipped."""
    name = "workbench_onnx_bundle_predict"
    location = importlib.util.spec_from_file_location(name, BUNDLE_CODE / "predict.py")
    module = importlib.util.module_from_spec(location)
    sys.modules[name] = module  # its dataclasses look their module up there
    location.loader.exec_module(module)
    return module


def check_bundle(trained: TrainedModel, preprocess: dict[str, Any], model_bytes: bytes, rows: pd.DataFrame) -> Check:
    """Predict `rows` (original columns) with the bundle's own code, read from their CSV text as predict.py reads a
    file, and compare with the Workbench's predictions. A batch of one row is predicted too: the graph must take
    any number of rows."""
    predict = bundle_module()
    bundle = predict.Bundle(json.loads(json.dumps(preprocess)), model_bytes)  # as predict.py will read it
    _, records = predict.read_rows(io.StringIO(rows[trained.input_columns].to_csv(index=False)))
    ours = trained.predict_proba(rows)
    result = bundle.predict(records)
    single = bundle.predict(records[:1])
    if trained.task == Task.REGRESSION:
        theirs = np.asarray(result.predictions, dtype="float64")
        first = np.asarray(single.predictions, dtype="float64")
        scale = max(float(np.sqrt(np.mean(ours**2))), np.finfo("float64").tiny)
        denominator = np.maximum(np.abs(ours), scale)  # relative; values near zero against the typical size
        difference = max(np.max(np.abs(theirs - ours) / denominator), np.max(np.abs(first - ours[:1]) / scale))
        return Check(len(rows), _finite_or_inf(difference), "relative")
    difference = max(np.max(np.abs(result.probabilities - ours)), np.max(np.abs(single.probabilities - ours[:1])))
    return Check(len(rows), _finite_or_inf(difference), "probability")


def _finite_or_inf(value: float) -> float:
    return float(value) if math.isfinite(value) else math.inf


# -- the bundle's other files -----------------------------------------------------------------------------------------


def bundle_requirements() -> str:
    lines = ["# predict.py needs onnxruntime and numpy; serve.py also FastAPI and uvicorn."]
    for name in ("onnxruntime", "numpy", "fastapi", "uvicorn"):
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = FALLBACK_VERSIONS[name]
        lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def bundle_readme(run: Run, trained: TrainedModel, spec: ModelSpec, dataset_name: str | None, check: Check) -> str:
    """README.md of the bundle. Names from the data appear only inside code spans and blocks (see predict.py's
    export_readme), so a markdown viewer shows them as text."""
    task_words = {Task.BINARY: "binary classification", Task.MULTICLASS: "multiclass classification",
                  Task.REGRESSION: "regression"}[Task(trained.task)]
    kinds = {name: kind for kind in KIND_WORDS for name in getattr(trained.preprocessor.features, kind)}
    listing = [f"{_printable(name)}: {KIND_WORDS[kinds[name]]}" for name in trained.input_columns]
    output = (f"`prediction` (the class), a `proba_<class>` column per class ({', '.join(_code(c) for c in trained.classes)})"
              if trained.classes else "`prediction` (the value, in the target's units)")
    lines = [
        f"# Workbench model (ONNX): {spec.name} predicting {_code(run.target)}",
        "",
        f"Exported from Workbench run {_code(run.id)}"
        + (f", trained on the dataset {_code(dataset_name)}" if dataset_name else "") + f"; {task_words}.",
        f"Model: {spec.name} ({spec.family}): {spec.description}",
        "",
        "This folder runs without the Workbench: it needs Python 3.11 or newer and the packages in "
        "`requirements.txt` (onnxruntime and numpy; FastAPI and uvicorn to serve).",
        "",
        "## Check",
        "",
        check.sentence() + " The figure is in `check.json`.",
        "",
        "## Input columns",
        "",
        "A file to predict needs these columns (others are ignored; an empty cell, `NA`, `null` and the like are "
        "missing values, filled in as in training):",
        "",
        *_code_block(listing),
        "",
        "Numbers use a dot for decimals; dates are best in ISO 8601 (`2024-05-31` or `2024-05-31T13:45:00`).",
        "",
        "## Predict a CSV file",
        "",
        "```",
        "python -m venv .venv && .venv/bin/pip install -r requirements.txt",
        ".venv/bin/python predict.py input.csv output.csv",
        "```",
        "",
        f"`output.csv` holds the input rows with {output} and `warnings`: what was wrong with a row (a value that "
        "did not parse, a category never seen in training, every feature missing).",
        "",
        "## Serve it over HTTP",
        "",
        "```",
        ".venv/bin/python serve.py --port 8000",
        "curl -s -X POST http://127.0.0.1:8000/predict -H 'Content-Type: application/json' "
        "-d '[{\"column\": \"value\"}]'",
        "```",
        "",
        "`POST /predict` takes a JSON list of records (column -> value) and answers `predictions`, `warnings` and, "
        "for classification, `probabilities`; `GET /schema` lists the columns, `GET /health` answers when it is up, "
        "and `/docs` shows the API. It has no authentication: keep it on 127.0.0.1.",
        "",
        "## Files",
        "",
        "- `model.onnx`: the model; inputs `x_num` (float32, rows x numeric features) and `x_cat` (int64 category "
        "codes, for models that embed categories), output the probabilities or the value.",
        "- `preprocess.json`: the fitted preprocessing (date parts, imputation, scaling, category codes).",
        "- `predict.py`: reads a CSV, applies `preprocess.json` with numpy, runs `model.onnx` (also importable: "
        "`Bundle.load(folder).predict(records)`).",
        "- `serve.py`: the HTTP API around `predict.py`.",
        "- `requirements.txt`, `check.json`, `README.md`: this file.",
    ]
    return "\n".join(lines) + "\n"
