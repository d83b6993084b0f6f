"""Datasets: content-keyed dedupe, Parquet under WORKBENCH_HOME, display names, samples, delete."""

from __future__ import annotations

import pytest

from workbench import datasets
from workbench.errors import UserError

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
