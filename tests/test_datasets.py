"""Datasets: content-keyed dedupe (also when processes race), Parquet under WORKBENCH_HOME, display names,
samples, delete (refused while a run of the dataset is active)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import make_classification_frame
from workbench import datasets
from workbench.errors import UserError
from workbench.store import Store

ROOT = Path(__file__).resolve().parents[1]
CSV = b"x,y,label\n1,2,a\n3,4,b\n5,6,a\n7,8,b\n"


def test_same_bytes_twice_is_one_dataset(store, home):
    first = datasets.add_dataset(store, CSV, "one.csv")
    second = datasets.add_dataset(store, CSV, "renamed.csv")
    assert first.created and not second.created
    assert first.dataset.id == second.dataset.id
    assert len(store.list_datasets()) == 1
    assert len(list((home / "datasets").glob("*.parquet"))) == 1


def test_table_round_trips_through_parquet(store):
    added = datasets.add_dataset(store, CSV, "one.csv")
    table = datasets.load_table(store, added.dataset.id)
    assert table["x"].tolist() == [1, 3, 5, 7]
    assert table["label"].tolist() == ["a", "b", "a", "b"]


def test_file_name_never_becomes_a_path(store, home):
    added = datasets.add_dataset(store, CSV, "../../etc/passwd.csv")
    assert added.dataset.name == "passwd.csv"
    files = list(home.rglob("*"))
    assert all(home in f.parents for f in files)
    assert not (home.parent.parent / "etc").exists()


def test_control_characters_are_dropped_from_names():
    assert datasets.display_name("bad\x00\x1bname.csv", "x") == "badname.csv"
    assert datasets.display_name("", "fallback") == "fallback"


def test_samples_ingest_by_name(store):
    added = datasets.add_sample(store, "wine")
    assert added.dataset.n_rows == 178
    assert "cultivar" in [c["name"] for c in added.dataset.schema]
    with pytest.raises(UserError, match="no sample called 'nope'"):
        datasets.add_sample(store, "nope")


def test_delete_removes_row_and_file(store, home):
    added = datasets.add_dataset(store, CSV, "one.csv")
    datasets.delete_dataset(store, added.dataset.id)
    assert store.list_datasets() == []
    assert list((home / "datasets").glob("*.parquet")) == []


def test_refused_file_leaves_nothing_behind(store, home):
    with pytest.raises(UserError):
        datasets.add_dataset(store, b"a,b\n1,2,3\n", "bad.csv")
    assert store.list_datasets() == []
    assert not (home / "datasets").exists() or not list((home / "datasets").iterdir())


def test_full_disk_leaves_no_half_written_dataset(store, home, monkeypatch):
    import errno

    import pandas as pd

    def disk_full(self, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"PAR1 half")  # a partial write before the failure
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    with pytest.raises(UserError, match="The disk is full"):
        datasets.add_dataset(store, CSV, "one.csv")
    assert store.list_datasets() == []
    assert list((home / "datasets").iterdir()) == []


def test_four_processes_ingesting_one_file_at_once_lose_nothing(tmp_path, monkeypatch):
    """Five times, on a fresh home each time (so the first open of the database races too), four
    `python -m workbench ingest` of the same file at once: all succeed with one dataset whose file is there."""
    frame = make_classification_frame(n=30_000)
    frame.loc[::7, "x1"] = None
    path = tmp_path / "leads – ünïcode.csv"
    frame.to_csv(path, index=False)
    for attempt in range(5):
        home = tmp_path / f"home-{attempt}"
        env = dict(os.environ, WORKBENCH_HOME=str(home))
        env.pop("WORKBENCH_DATABASE_URL", None)
        processes = [subprocess.Popen([sys.executable, "-m", "workbench", "ingest", str(path), "--json"], cwd=ROOT,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(4)]
        results = [(p.wait(timeout=240), *p.communicate()) for p in processes]
        assert [code for code, _, _ in results] == [0] * 4, results
        outputs = [json.loads(out) for _, out, _ in results]
        assert len({o["dataset_id"] for o in outputs}) == 1
        assert sum(o["created"] for o in outputs) >= 1
        monkeypatch.setenv("WORKBENCH_HOME", str(home))
        store = Store.from_settings()
        [dataset] = store.list_datasets()
        assert datasets.load_table(store, dataset).shape == frame.shape
        assert [f.name for f in (home / "datasets").iterdir()] == [dataset.file_name]  # no stray files
        store.close()


def test_a_dataset_whose_file_went_missing_gets_it_back_when_the_bytes_come_again(store, home):
    added = datasets.add_dataset(store, CSV, "one.csv")
    (home / "datasets" / added.dataset.file_name).unlink()
    with pytest.raises(UserError, match="missing"):
        datasets.load_table(store, added.dataset.id)
    again = datasets.add_dataset(store, CSV, "one again.csv")
    assert not again.created and again.dataset.id == added.dataset.id
    assert datasets.load_table(store, added.dataset.id)["x"].tolist() == [1, 3, 5, 7]


def test_the_data_page_refuses_to_delete_a_dataset_that_a_run_is_training_on(store, home):
    added = datasets.add_dataset(store, CSV, "one.csv")
    run = store.create_run({"dataset_id": added.dataset.id, "target": "label", "model": "mlp"}, model="mlp",
                           target="label", task="binary", params={})
    at = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=60).run()
    at.checkbox(key=f"confirm_delete_{added.dataset.id}").check().run()
    next(b for b in at.button if b.label == "Delete dataset").click().run()
    assert not at.exception
    assert any("queued or running" in e.value for e in at.error)
    assert [d.id for d in store.list_datasets()] == [added.dataset.id]
    assert store.get_run(run.id).dataset_id == added.dataset.id
