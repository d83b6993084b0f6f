"""The CLI: JSON shapes, WORKBENCH_HOME, and `error: ...` with exit code 2 for every user error."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
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
    assert predictions[0] == "x1,x2,colour,flag,prediction,proba_no,proba_yes,warnings"
    assert "'=cmd" in predictions[2]
    assert predictions[2].endswith(",'colour': '=cmd|' /C calc'!A0' was never seen in training")
    assert err == "note: Column 'colour' has 1 category the model never saw in training ('=cmd|' /C calc'!A0') on " \
                  "1 row; they are predicted as an unknown category and those rows are flagged.\n"

    zip_path = tmp_path / "model.zip"
    code, _, err = run_cli(capsys, "export", run["run_id"], "--out", str(zip_path))
    assert code == 0, err
    import zipfile
    names = {n.rsplit("/", 1)[-1] for n in zipfile.ZipFile(zip_path).namelist()}
    assert names == {"config.json", "preprocessor.skops", "weights.safetensors", "README.md", "predict.py"}

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


def test_train_says_what_preparation_decided_and_names_a_column_typed_with_other_spaces(home, capsys, tmp_path):
    frame = pd.DataFrame({"x": np.arange(40.0), "when": pd.date_range("2024-01-01", periods=40).strftime("%d.%m.%Y")})
    frame["Sale Price"] = 2 * frame["x"]
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    code, out, err = run_cli(capsys, "train", "--csv", str(path), "--target", "sale price ", "--model", "ridge")
    assert code == 2 and err == "error: There is no column called 'sale price ' to predict. Did you mean 'Sale Price'?\n"
    code, out, err = run_cli(capsys, "train", "--csv", str(path), "--target", "Sale Price", "--model", "ridge")
    assert code == 0, err
    assert "  note: 'when' writes its dates day first; they were read as day/month/year." in out.splitlines()


@pytest.mark.parametrize("extra,message", [
    (["--model", "nope"], "no model called 'nope'"),
    (["--model", "mlp", "--set", "wings=2"], "no hyperparameter 'wings'"),
    (["--model", "mlp", "--set", "lr=7"], "'lr' must be at most 1.0"),
    (["--model", "mlp", "--set", "lr"], "--set takes NAME=VALUE"),
    (["--model", "mlp", "--target", "missing"], "no column called 'missing'"),
    (["--model", "mlp", "--target", "constant"], "only one value"),
    (["--model", "mlp", "--repeats", "0"], "Repeats must be a whole number from 1 to 50, not 0"),
    (["--model", "mlp", "--repeats", "51"], "Repeats must be a whole number from 1 to 50"),
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


def test_predict_notes_go_to_stderr_and_the_csv_to_stdout(dataset_id, capsys, tmp_path):
    """Issue 15 item 7: a typo in a number, a date in a number column, an unseen category and an empty row are
    each flagged in the row's `warnings` and in a note; nothing is imputed without a word."""
    code, out, err = run_cli(capsys, "train", "--dataset", dataset_id, "--target", "label", "--model",
                             "logistic_regression", "--json")
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    rows = ["x1,x2,colour,flag,extra"] + [f"{i / 10},{-i / 10},red,true,1" for i in range(30)]
    rows[3] = "39.3x,0.5,red,false,1"
    rows[5] = "0.2,2024-01-02,red,false,1"
    rows[7] = "0.2,0.1,purple,false,1"
    rows[9] = ",,,,1"
    path = tmp_path / "new.csv"
    path.write_text("\n".join(rows) + "\n")
    code, out, err = run_cli(capsys, "predict", run_id, str(path))
    assert code == 0, err
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == 30
    assert [r["warnings"] for r in table[:9]] == [
        "", "", "'x1': '39.3x' is not a number", "", "'x2': '2024-01-02' is a date, not a number", "",
        "'colour': 'purple' was never seen in training", "", "every feature is missing"]
    notes = err.splitlines()
    assert all(n.startswith("note: ") for n in notes)
    assert any("Column 'x1' should hold numbers, but 1 row has other values (such as '39.3x')" in n for n in notes)
    assert any("Column 'x2' should hold numbers" in n and "'2024-01-02'" in n for n in notes)
    assert any("'purple'" in n for n in notes)
    assert any(n.startswith("note: 1 row has every feature missing") for n in notes)
    assert "note: The model does not use the column 'extra'; it was ignored." in notes


@pytest.mark.parametrize("args,message", [
    (["compare", "nope1", "nope2"], "There is no run with id 'nope1'."),
    (["compare", "nope1"], "There is no run with id 'nope1'."),
    (["leaderboard", "nope", "--target", "label"], "There is no dataset with id 'nope'."),
])
def test_compare_and_leaderboard_of_unknown_ids_are_one_plain_error(home, capsys, args, message):
    code, out, err = run_cli(capsys, *args)
    assert (code, out, err) == (2, "", f"error: {message}\n")


def test_compare_of_one_run_or_a_run_without_kept_predictions_says_why(dataset_id, capsys):
    code, out, _ = run_cli(capsys, "train", "--dataset", dataset_id, "--target", "label", "--model",
                           "logistic_regression", "--json")
    run_id = json.loads(out)["run_id"]
    code, out, err = run_cli(capsys, "compare", run_id)
    assert code == 2 and err.startswith("error: At least two finished runs or groups are needed to compare.")
    code, out, err = run_cli(capsys, "compare", run_id, run_id, "--json")
    assert code == 2 and "At least two" in err  # the same run twice is one item


@pytest.mark.parametrize("variable", ["WORKBENCH_MAX_UPLOAD_MB", "WORKBENCH_MAX_ROWS", "WORKBENCH_HEARTBEAT_TIMEOUT_S",
                                      "WORKBENCH_WORKERS"])
@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan"])
def test_a_bad_limit_in_the_environment_is_one_plain_error(home, capsys, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    code, out, err = run_cli(capsys, "datasets")
    assert code == 2
    assert err == f"error: The environment variable {variable} must be a {'whole ' if 'TIMEOUT' not in variable else ''}" \
                  f"number above 0, not '{value}'.\n"


def test_terminal_escapes_in_names_are_printed_escaped(home, capsys, tmp_path):
    """A column name with terminal escape codes must not recolour, retitle or clear the user's terminal."""
    path = tmp_path / "hostile.csv"
    path.write_text('"\x1b[31mred\x1b[0m","\x1b]0;owned\x07",naïve 名前,"\u202eevil"\n1,2,3,4\n5,6,7,8\n')
    code, out, err = run_cli(capsys, "ingest", str(path))
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b[31mred\\x1b[0m" in out and "naïve 名前" in out and "\\u202eevil" in out
    dataset_id = out.split()[1]
    code, out, err = run_cli(capsys, "profile", dataset_id, "--target", "naïve 名前")
    assert code == 0, err
    assert "\x1b" not in out and "\\x1b[31mred" in out
    code, out, err = run_cli(capsys, "profile", dataset_id, "--target", "\x1b[2J")
    assert code == 2 and err == "error: There is no column called '\\x1b[2J'.\n"


@pytest.mark.parametrize("table,message", [
    ("a,b,t\n" + "1,2,\n" * 30, "The target 't' is empty on every row; there is nothing to learn from."),
    ("a,b,t\n1,2,x\n", "The table has only 1 row; at least 20 are needed to train."),
    ("t\n" + "".join(f"{i / 7}\n" for i in range(30)),
     "No usable feature columns are left once the target and excluded columns are removed."),
    ("a,t\n" + "".join(f"{i},name {i}\n" for i in range(30)),
     "The target 't' has 30 different values in 30 rows: most values appear once, so there is nothing to learn "
     "about them. Choose another column to predict."),
])
def test_train_names_the_real_cause(home, capsys, tmp_path, table, message):
    path = tmp_path / "t.csv"
    path.write_text(table)
    code, out, err = run_cli(capsys, "train", "--csv", str(path), "--target", "t", "--model", "mlp")
    assert (code, err) == (2, f"error: {message}\n")


@pytest.mark.parametrize("repeats", ["1", "2"])
def test_a_run_stopped_by_its_data_exits_2_with_its_sentence(home, capsys, tmp_path, repeats):
    """Columns that are all identifiers pass the checks made before queueing; preparation refuses them in the run.
    The run is shown (it is stored, failed) and the CLI exits 2 with the sentence, as for an error found earlier."""
    path = tmp_path / "ids.csv"
    path.write_text("code,t\n" + "".join(f"k{i},{i % 3}\n" for i in range(40)))
    code, out, err = run_cli(capsys, "train", "--csv", str(path), "--target", "t", "--model", "logistic_regression",
                             "--repeats", repeats)
    assert code == 2 and " failed" in out
    assert err == "error: No usable feature columns are left once the target and excluded columns are removed.\n"


@pytest.mark.parametrize(("repeats", "members", "why"), [
    ("2", 5, " (--repeats 2 is rounded up to whole rounds of 5-fold cross-validation)"), ("5", 5, "")])
def test_a_repeated_run_counts_its_members_and_says_why_there_are_more_than_asked(home, capsys, binary_frame,
                                                                                 tmp_path, repeats, members, why):
    path = tmp_path / "customers.csv"
    binary_frame.to_csv(path, index=False)
    code, out, _ = run_cli(capsys, "train", "--csv", str(path), "--target", "label", "--model",
                           "logistic_regression", "--repeats", repeats)
    first = out.splitlines()[0]
    assert code == 0 and f"  {members} of {members} members finished in " in first and first.endswith(f"s{why}")


def test_train_on_an_empty_target_exits_2_every_time(home, tmp_path):
    """Issue 15: `train` on an all-missing target sometimes aborted at exit ('terminate called without an active
    exception', exit 134) instead of exiting 2 with its one error line."""
    path = tmp_path / "empty-target.csv"
    path.write_text("a,b,t\n" + "".join(f"{i},{i % 3},\n" for i in range(40)))
    env = dict(os.environ, WORKBENCH_HOME=str(home))
    for _ in range(4):
        result = subprocess.run([sys.executable, "-m", "workbench", "train", "--csv", str(path), "--target", "t",
                                 "--model", "mlp"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert (result.returncode, result.stderr) == (
            2, "error: The target 't' is empty on every row; there is nothing to learn from.\n")


def test_quickstart_queues_and_says_what(dataset_id, capsys, monkeypatch):
    from workbench import jobs

    monkeypatch.setattr(jobs.LocalExecutor, "ensure_running", lambda self: False)  # the real worker: test_quickstart
    code, out, err = run_cli(capsys, "quickstart", "--dataset", dataset_id, "--target", "label")
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[3] for line in lines[:4]] == ["gradient_boosting", "logistic_regression", "random_forest",
                                                       "mlp"]
    assert lines[4].startswith("a worker trains them; follow them with: python -m workbench runs --dataset")
    code, out, _ = run_cli(capsys, "runs", "--json")
    assert {r["status"] for r in json.loads(out)} == {"queued"} and len(json.loads(out)) == 4


@pytest.mark.parametrize("args, message", [
    (["--target", "nope"], "There is no column called 'nope' to predict."),
    (["--target", "x1", "--dataset", "missing-id"], "no dataset with id 'missing-id'"),
    ([], "The following arguments are required: --target."),
])
def test_quickstart_user_errors_exit_2_and_queue_nothing(dataset_id, capsys, args, message):
    code, out, err = run_cli(capsys, "quickstart", "--dataset", dataset_id, *args)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    code, out, _ = run_cli(capsys, "runs", "--json")
    assert json.loads(out) == []


def test_output_piped_into_a_reader_that_stops_early_is_not_an_error(home, tmp_path):
    """`workbench profile ID | head -1`: the reader closes the pipe; no traceback, no `error:`, exit 0."""
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"column_{i}" for i in range(2000)) + "\n" + ",".join("1" for _ in range(2000)) + "\n")
    env = dict(os.environ, WORKBENCH_HOME=str(home))
    ingested = subprocess.run([sys.executable, "-m", "workbench", "ingest", str(path), "--json"], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=True)
    dataset_id = json.loads(ingested.stdout)["dataset_id"]
    reader = subprocess.Popen([sys.executable, "-m", "workbench", "profile", dataset_id], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout.readline()
    reader.stdout.close()  # like `head -1` after its line
    assert reader.wait(timeout=60) == 0
    assert reader.stderr.read() == b""
