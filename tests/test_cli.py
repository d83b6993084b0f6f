"""The CLI: JSON shapes, WORKBENCH_HOME, and `error: ...` with exit code 2 for every user error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_ingest_json_shape(home, tmp_path, capsys):
    path = tmp_path / "data.csv"
    path.write_text("id;amount;label\n1;1,5;yes\n2;2,5;no\n3;3,5;yes\n")
    code, out, err = run_cli(capsys, "ingest", str(path), "--name", "Sales", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) >= {"dataset_id", "name", "rows", "columns", "warnings", "notes"}
    assert data["name"] == "Sales" and data["rows"] == 3
    assert {"name": "amount", "kind": "numeric", "missing": 0, "distinct": 3} in data["columns"]
    assert any("semicolon" in n for n in data["notes"])
    assert any("decimal commas" in n for n in data["notes"])


def test_datasets_profile_and_delete(home, capsys):
    code, out, _ = run_cli(capsys, "ingest", "--sample", "breast_cancer", "--json")
    dataset_id = json.loads(out)["dataset_id"]
    code, out, _ = run_cli(capsys, "datasets", "--json")
    assert [d["dataset_id"] for d in json.loads(out)] == [dataset_id]
    code, out, _ = run_cli(capsys, "profile", dataset_id, "--target", "diagnosis", "--json")
    assert code == 0 and json.loads(out)["n_rows"] == 569
    code, out, _ = run_cli(capsys, "delete-dataset", dataset_id)
    assert code == 0
    code, out, _ = run_cli(capsys, "datasets", "--json")
    assert json.loads(out) == []


@pytest.mark.parametrize(
    "args,message",
    [
        (["ingest", "/no/such/file.csv"], "There is no file at"),
        (["profile", "missing-id"], "no dataset with id 'missing-id'"),
        (["ingest", "--sample", "nope"], "no sample called 'nope'"),
        (["profile"], "required"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(home, capsys, args, message):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_csv_in_a_real_process(home, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    env = dict(os.environ, WORKBENCH_HOME=str(home))
    result = subprocess.run([sys.executable, "-m", "workbench", "ingest", str(path)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: Line 3 has 3 fields but the header has 2; fix that row or remove it."
    assert (home / "workbench.db").exists()


def test_engine_never_imports_streamlit():
    offenders = [p for p in (ROOT / "workbench").rglob("*.py") if "import streamlit" in p.read_text()]
    assert offenders == []


@pytest.fixture
def dataset_id(home, capsys, binary_frame, tmp_path):
    path = tmp_path / "customers.csv"
    binary_frame.to_csv(path, index=False)
    code, out, err = run_cli(capsys, "ingest", str(path), "--json")
    assert code == 0, err
    return json.loads(out)["dataset_id"]


def test_models_json_lists_the_catalog(home, capsys):
    code, out, _ = run_cli(capsys, "models", "--json")
    names = [m["name"] for m in json.loads(out)]
    assert code == 0 and "mlp" in names and "gradient_boosting" in names


def test_train_json_shape_and_run_commands(dataset_id, capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", "--dataset", dataset_id, "--target", "label", "--model", "mlp",
                             "--set", "epochs=3", "--set", "hidden_sizes=32,16", "--seed", "1", "--json")
    assert code == 0, err
    run = json.loads(out)
    assert set(run) >= {"run_id", "status", "model", "task", "target", "params", "device", "epochs_run",
                        "duration_s", "metrics", "baseline", "error"}
    assert run["status"] == "succeeded" and run["task"] == "binary" and run["epochs_run"] == 3
    assert run["params"]["hidden_sizes"] == [32, 16] and run["params"]["seed"] == 1
    assert {"accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"} <= set(
        run["metrics"]["test"])
    assert "accuracy" in run["baseline"]["test"]

    new_rows = tmp_path / "new.csv"
    new_rows.write_text("x1,x2,colour,flag\n0.5,-1,red,true\n-2,1,=cmd|' /C calc'!A0,false\n")
    out_path = tmp_path / "pred.csv"
    code, out, err = run_cli(capsys, "predict", run["run_id"], str(new_rows), "--out", str(out_path))
    assert code == 0, err
    predictions = out_path.read_text().splitlines()
    assert predictions[0] == "x1,x2,colour,flag,prediction,proba_no,proba_yes"
    assert "'=cmd" in predictions[2]

    zip_path = tmp_path / "model.zip"
    code, _, err = run_cli(capsys, "export", run["run_id"], "--out", str(zip_path))
    assert code == 0, err
    import zipfile
    names = {n.rsplit("/", 1)[-1] for n in zipfile.ZipFile(zip_path).namelist()}
    assert names == {"config.json", "preprocessor.skops", "weights.safetensors"}

    code, out, _ = run_cli(capsys, "runs", "--json")
    assert [r["run_id"] for r in json.loads(out)] == [run["run_id"]]
    code, out, _ = run_cli(capsys, "show", run["run_id"], "--json")
    assert json.loads(out)["status"] == "succeeded"
    code, _, _ = run_cli(capsys, "delete-run", run["run_id"])
    assert code == 0
    code, _, err = run_cli(capsys, "show", run["run_id"])
    assert code == 2 and "no run with id" in err


def test_train_from_a_csv_path(home, capsys, regression_frame, tmp_path):
    path = tmp_path / "reg.csv"
    regression_frame.to_csv(path, index=False)
    code, out, err = run_cli(capsys, "train", "--csv", str(path), "--target", "y", "--model", "ridge", "--json")
    assert code == 0, err
    assert set(json.loads(out)["metrics"]["test"]) == {"rmse", "mae", "r2"}


@pytest.mark.parametrize("extra,message", [
    (["--model", "nope"], "no model called 'nope'"),
    (["--model", "mlp", "--set", "wings=2"], "no hyperparameter 'wings'"),
    (["--model", "mlp", "--set", "lr=7"], "'lr' must be at most 1.0"),
    (["--model", "mlp", "--set", "lr"], "--set takes KEY=VALUE"),
    (["--model", "mlp", "--target", "missing"], "no column called 'missing'"),
    (["--model", "mlp", "--target", "constant"], "only one value"),
])
def test_train_user_errors_exit_2(dataset_id, capsys, extra, message, home, tmp_path, binary_frame):
    if "constant" in extra:
        path = tmp_path / "constant.csv"
        binary_frame.assign(constant="same").to_csv(path, index=False)
        args = ["train", "--csv", str(path), "--target", "constant", "--model", "mlp"]
    else:
        args = ["train", "--dataset", dataset_id, "--target", "label", *extra]
        if extra.count("--target"):
            args = ["train", "--dataset", dataset_id, *extra]
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
