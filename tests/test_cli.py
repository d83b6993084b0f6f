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
