"""Portable ONNX export (issue 22, item 2): every model family becomes model.onnx plus a numpy-only predict.py that
predicts what the Workbench predicts, on messy rows too; what does not convert, or does not match, is refused in one
sentence; and the bundle runs in a fresh virtual environment with only its own requirements (marked slow)."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tests.conftest import make_classification_frame
from workbench import datasets, jobs
from workbench.cli import main
from workbench.errors import UserError
from workbench.models import registry
from workbench.models.layers import ActivationSize
from workbench.models.params import NeuralParams
from workbench.onnx_export import TOLERANCE, bundle_check, export_onnx
from workbench.predict import load_model_for_run
from workbench.runconfig import PrepConfig, RunConfig
from workbench.store import RunStatus, Store

TARGETS = ("label", "churned", "amount")  # multiclass, binary, regression
SMALL = {  # a few seconds to train and to export
    "linear": {"epochs": 2},
    "mlp": {"epochs": 2, "hidden_sizes": [16]},
    "cnn": {"epochs": 2, "channels": 8, "depth": 1},
    "rnn": {"epochs": 2, "hidden_size": 8, "d_token": 4},
    "transformer": {"epochs": 2, "d_model": 8, "n_heads": 2, "n_layers": 1},
    "tabm": {"epochs": 2, "k": 4, "width": 16, "n_blocks": 1},
    "random_forest": {"n_estimators": 20},
    "gradient_boosting": {"max_iter": 30},
}
# Every family; classification for each, regression where the output path differs (target scaling, TabM's members,
# trees' sums), one with min-max and one with robust scaling. Neural models other than linear embed categories and
# scale by quantiles (the MLP: robust). The MLP with each activation ONNX writes differently (relu, selu, mish).
CASES = [("linear", "churned", None), ("mlp", "label", None), ("cnn", "churned", None), ("rnn", "label", None),
         ("transformer", "churned", None), ("tabm", "label", None), ("logistic_regression", "label", None),
         ("random_forest", "churned", None), ("gradient_boosting", "label", None), ("tabm", "amount", None),
         ("ridge", "amount", "minmax"), ("mlp", "amount", "robust"), ("random_forest", "amount", None),
         ("gradient_boosting", "amount", None), ("mlp", "churned", None)]
CASE_PARAMS = {("mlp", "amount", "robust"): {"numeric_embeddings": "none", "activation": "selu"},  # (default: pbld)
               ("mlp", "churned", None): {"activation": "mish"}}


def messy_frame(n: int, seed: int) -> pd.DataFrame:
    """Numbers with gaps, a category with gaps, unicode and a rare value, true/false, dates with times, three
    targets."""
    frame = make_classification_frame(n=n, n_classes=3, seed=seed)
    rng = np.random.default_rng(seed)
    frame["churned"] = np.where(frame["x1"] + frame["flag"] > 0.5, "yes", "no")
    frame["amount"] = 1000 + 40 * frame["x1"] - 25 * frame["x2"] + rng.normal(scale=2, size=n)
    frame["colour"] = frame["colour"].replace({"blue": "bleu ciel 🎨"}).astype(object)
    frame.loc[::9, "colour"] = None
    frame.loc[[1, 2, 4], "colour"] = "rare 🐢"  # under 5 rows: grouped with other rare categories by the encoder
    frame.loc[::7, "x2"] = np.nan
    frame["größe (cm)"] = rng.integers(150, 200, size=n).astype(float)
    frame.loc[::5, "größe (cm)"] = np.nan
    frame["signed up"] = pd.date_range("2021-03-01 08:00", periods=n, freq="29h").strftime("%Y-%m-%d %H:%M:%S")
    return frame


def new_rows() -> pd.DataFrame:
    """Rows to predict, with what goes wrong in real files: an unseen category, a typo in a number, a row with
    nothing, an empty category, a time with an offset (last: the Workbench's reader gives naive times after one
    with an offset that offset too, a pandas quirk)."""
    rows = messy_frame(40, seed=1).drop(columns=list(TARGETS)).astype(object)
    rows.loc[0, "colour"] = "purple"
    rows.loc[1, "x1"] = "39.3x"
    rows.loc[2, :] = None
    rows.loc[3, "colour"] = None
    rows.loc[len(rows) - 1, "signed up"] = "2022-05-01T10:00:00+02:00"
    return rows


@dataclass
class Trained:
    store: Store
    runs: dict[tuple[str, str, str | None], str]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """One store with a run of every case, trained once for the module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WORKBENCH_HOME", str(tmp_path_factory.mktemp("onnx") / "home"))
        patch.delenv("WORKBENCH_DATABASE_URL", raising=False)
        patch.setenv("WORKBENCH_WORKERS", "1")
        store = Store.from_settings()
        dataset_id = datasets.add_dataset(store, messy_frame(240, seed=0).to_csv(index=False).encode(),
                                          "messy.csv").dataset.id
        runs = {}
        for model, target, scaling in CASES:
            config = RunConfig(dataset_id, target, model, exclude=[t for t in TARGETS if t != target],
                               params={**SMALL.get(model, {}), **CASE_PARAMS.get((model, target, scaling), {})},
                               prep=PrepConfig(scaling=scaling or "auto"))
            runs[(model, target, scaling)] = jobs.submit_run(store, config).id
        jobs.run_worker(store, once=True)
        for run_id in runs.values():
            assert store.get_run(run_id).status == RunStatus.SUCCEEDED, store.get_run(run_id).error
        yield Trained(store, runs)
        store.close()


def unzip(data: bytes, folder: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(folder)
        (top,) = {name.split("/")[0] for name in archive.namelist()}
    return folder / top


def bundle_code(folder: Path):
    """The unzipped bundle's own predict.py, imported from its file."""
    name = f"bundle_predict_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, folder / "predict.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def workbench_prediction(store: Store, run_id: str, csv_text: str) -> pd.DataFrame:
    return load_model_for_run(store, run_id).predict_csv(csv_text.encode()).table


def assert_same_predictions(expected: pd.DataFrame, classes: list[str] | None, result) -> None:
    if classes is None:
        ours = expected["prediction"].to_numpy(dtype="float64")
        theirs = np.asarray(result.predictions, dtype="float64")
        relative = np.abs(theirs - ours) / np.maximum(np.abs(ours), np.sqrt(np.mean(ours**2)))
        assert relative.max() <= TOLERANCE, relative
    else:
        ours = expected[[f"proba_{c}" for c in classes]].to_numpy(dtype="float64")
        assert np.abs(result.probabilities - ours).max() <= TOLERANCE
        assert result.predictions == expected["prediction"].tolist()
    flagged = [row for row, text in enumerate(result.warnings) if text]
    assert flagged == [row for row, text in enumerate(expected["warnings"]) if text]


@pytest.mark.parametrize("case", CASES, ids=["-".join(filter(None, case)) for case in CASES])
def test_every_family_exports_and_its_bundle_predicts_what_the_workbench_predicts(trained, tmp_path, case):
    run_id = trained.runs[case]
    data = export_onnx(trained.store, run_id)
    check = bundle_check(data)
    assert check.passed and check.rows == min(100, trained.store.get_run(run_id).details["n_test"])
    folder = unzip(data, tmp_path)
    assert {p.name for p in folder.iterdir()} == {"model.onnx", "preprocess.json", "predict.py", "serve.py",
                                                  "requirements.txt", "check.json", "README.md"}
    assert f"{check.max_difference:.2e}" in (folder / "README.md").read_text(encoding="utf-8")
    csv_text = new_rows().to_csv(index=False)
    predict = bundle_code(folder)
    bundle = predict.Bundle.load(folder)
    _, records = predict.read_rows(io.StringIO(csv_text))
    result = bundle.predict(records)
    assert_same_predictions(workbench_prediction(trained.store, run_id, csv_text), bundle.classes, result)
    assert "39.3x" in result.warnings[1] and "purple" in result.warnings[0] and result.warnings[2]


def test_cli_writes_the_onnx_bundle_and_says_how_close_it_is(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(trained.store.settings.home))
    run_id = trained.runs[("gradient_boosting", "label", None)]
    out = tmp_path / "bundle.zip"
    assert main(["export", run_id, "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ONNX bundle" in printed and "largest difference" in printed
    assert bundle_check(out.read_bytes()).passed
    assert main(["export", run_id, "--out", str(tmp_path / "native.zip")]) == 0  # native stays the default
    with zipfile.ZipFile(tmp_path / "native.zip") as archive:
        assert any(name.endswith("/model.skops") for name in archive.namelist())


def test_the_bundles_predict_script_writes_csv_that_a_spreadsheet_cannot_run(trained, tmp_path, capsys):
    """Protection: formula neutralisation in the bundle's own CSV writer (it cannot use the Workbench's)."""
    folder = unzip(export_onnx(trained.store, trained.runs[("gradient_boosting", "label", None)]), tmp_path)
    rows = new_rows()
    rows.loc[5, "colour"] = "=HYPERLINK(1)"
    rows.loc[6, "x1"] = "-1.5"
    rows["@extra"] = "+1"
    rows.to_csv(tmp_path / "in.csv", index=False)
    assert bundle_code(folder).main([str(tmp_path / "in.csv"), str(tmp_path / "out.csv")]) == 0
    assert "note: 4 row(s) have values that did not fit" in capsys.readouterr().err
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as handle:
        written = list(csv.reader(handle))
    header, cells = written[0], written[1:]
    assert "'@extra" in header and header[-1] == "warnings"
    assert cells[5][header.index("colour")] == "'=HYPERLINK(1)"
    assert cells[6][header.index("x1")] == "-1.5"  # a number stays a number
    assert all(row[header.index("'@extra")] == "+1" for row in cells)  # '+1' is a number too
    assert "was never seen in training" in cells[5][-1]


# -- refusals -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InverseErfParams(NeuralParams):
    pass


class InverseErfNet(nn.Module):
    """A network with an operation (erfinv) that torch.onnx has no conversion for."""

    def __init__(self, n_numeric: int, cardinalities: list[int], n_outputs: int, params: InverseErfParams):
        super().__init__()
        self.linear = nn.Linear(n_numeric, n_outputs)

    def activation_size(self) -> ActivationSize:
        return ActivationSize(training=8.0, inference=4.0)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return torch.erfinv(0.5 * torch.tanh(self.linear(x_num)))


def train(store: Store, frame: pd.DataFrame, target: str, model: str, **params) -> str:
    dataset_id = datasets.add_dataset(store, frame.to_csv(index=False).encode(), "t.csv").dataset.id
    run = jobs.submit_run(store, RunConfig(dataset_id, target, model, params=params))
    jobs.run_worker(store, once=True)
    assert store.get_run(run.id).status == RunStatus.SUCCEEDED, store.get_run(run.id).error
    return run.id


def test_a_model_family_that_does_not_convert_is_refused_in_one_sentence(store, monkeypatch, capsys):
    monkeypatch.setitem(registry.MODELS, "inverse_erf", registry.ModelSpec(
        "inverse_erf", "neural", "A test network.", "Never.", InverseErfParams, InverseErfNet, categorical="onehot"))
    run_id = train(store, make_classification_frame(n=120), "label", "inverse_erf", epochs=1)
    with pytest.raises(UserError) as refused:
        export_onnx(store, run_id)
    message = str(refused.value)
    assert "inverse_erf" in message and "ONNX" in message
    assert message.count(". ") == 0 and message.endswith(".") and "\n" not in message
    assert main(["export", run_id, "--format", "onnx"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


def dated_frame(date_format: str) -> pd.DataFrame:
    """A label that is the half of the year of a date column written in `date_format`."""
    frame = make_classification_frame(n=200).drop(columns=["x1", "x2", "colour", "flag"])
    days = pd.date_range("2022-01-01", periods=len(frame), freq="5D")
    frame["day"] = days.strftime(date_format)
    frame["label"] = np.where(days.month <= 6, "first half", "second half")
    return frame


def test_a_bundle_that_would_predict_otherwise_is_refused(store):
    """Protection: the check. Dates written '31-Dec-2023' are read by the Workbench but not by the bundle's date
    reader: its predictions differ, and the export is refused instead of handing out a wrong model."""
    run_id = train(store, dated_frame("%d-%b-%Y"), "label", "logistic_regression")
    with pytest.raises(UserError, match=r"was refused: on \d+ test rows it differs from the Workbench's predictions"):
        export_onnx(store, run_id)


@pytest.mark.parametrize("date_format", ["%d.%m.%Y", "%d/%m/%Y %H:%M", "%m-%d-%y"])
def test_the_bundle_reads_dates_written_as_numbers_in_the_order_the_run_read_them(store, date_format):
    """Day first (31.12.2023, 31/12/2023 10:00) or month first (12-31-23): the bundle reads each column in the order
    the Workbench chose for it, and so predicts what the Workbench predicts."""
    run_id = train(store, dated_frame(date_format), "label", "logistic_regression")
    export_onnx(store, run_id)  # refused if any test row's prediction differed


# -- the bundle on its own, in a fresh virtual environment -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_json(url: str, body) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.mark.slow
def test_the_bundle_predicts_and_serves_in_a_fresh_virtual_environment(trained, tmp_path):
    """Only the bundle's requirements.txt installed (pip's cache makes a second run fast): predict.py on a CSV gives
    the Workbench's predictions, and serve.py answers a request on a loopback port."""
    run_id = trained.runs[("mlp", "label", None)]
    folder = unzip(export_onnx(trained.store, run_id), tmp_path / "bundle")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    installed = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r",
                                str(folder / "requirements.txt")], capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WORKBENCH_HOME")}
    csv_text = new_rows().to_csv(index=False)
    (tmp_path / "in.csv").write_text(csv_text, encoding="utf-8")
    done = subprocess.run([python, "predict.py", str(tmp_path / "in.csv"), str(tmp_path / "out.csv")], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = workbench_prediction(trained.store, run_id, csv_text)
    predicted = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    classes = load_model_for_run(trained.store, run_id).classes
    assert predicted["prediction"].tolist() == expected["prediction"].tolist()
    proba = [f"proba_{c}" for c in classes]
    assert np.abs(predicted[proba].to_numpy(dtype="float64") - expected[proba].to_numpy(dtype="float64")).max() \
        <= TOLERANCE
    assert (predicted["warnings"] != "").tolist() == (expected["warnings"] != "").tolist()

    port = free_port()
    server = subprocess.Popen([python, "serve.py", "--port", str(port)], cwd=folder, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    assert json.loads(answer.read()) == {"status": "ok"}
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "serve.py did not start within 60 s"
                time.sleep(0.3)
        record = {k: None if pd.isna(v) else v.item() if hasattr(v, "item") else v for k, v in new_rows().iloc[5].items()}
        answer = post_json(f"http://127.0.0.1:{port}/predict", [record])
        assert answer["predictions"] == [expected["prediction"][5]]
        assert abs(answer["probabilities"][0][classes[0]] - expected[f"proba_{classes[0]}"][5]) <= TOLERANCE
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_an_ensemble_is_refused_in_one_sentence_that_points_to_the_native_export(trained):
    store = trained.store
    member = store.get_run(trained.runs[("random_forest", "churned", None)], with_epochs=False)
    ensemble = jobs.submit_run(store, RunConfig(member.dataset_id, "churned", "ensemble",
                                                exclude=[t for t in TARGETS if t != "churned"]))
    jobs.run_worker(store, once=True)
    assert store.get_run(ensemble.id).status == RunStatus.SUCCEEDED, store.get_run(ensemble.id).error
    with pytest.raises(UserError, match="native export") as refused:
        export_onnx(store, ensemble.id)
    assert "\n" not in str(refused.value)


OUTPUTS = ["prediction", "proba_a", "warnings"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([*OUTPUTS, "x", "prediction (input)", "prediction (input 2)", "warnings (input)"]),
                unique=True, max_size=6))
def test_the_bundle_names_input_columns_apart_from_its_outputs_as_the_workbench_does(header):
    from workbench.onnx_bundle.predict import named_apart
    from workbench.predict import _out_of_the_way

    renamed = _out_of_the_way(header, OUTPUTS)
    names = named_apart(header, OUTPUTS)
    assert names == [renamed.get(h, h) for h in header]
    assert len(set(names + OUTPUTS)) == len(names) + len(OUTPUTS)
