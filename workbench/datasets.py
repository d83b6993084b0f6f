"""Datasets: ingest once (keyed by content), keep the table as Parquet, profile, delete."""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pyarrow.fs import LocalFileSystem

from workbench.errors import UserError, storage_error_message
from workbench.ingest import ingest_bytes, read_path
from workbench.jobs import recover_stale_runs, remove_run_files
from workbench.profile import profile_table, target_warnings
from workbench.samples import SAMPLES, load_sample
from workbench.store import Dataset, Store, utcnow


@dataclass
class AddedDataset:
    dataset: Dataset
    created: bool  # False when the same bytes were ingested before


def display_name(name: str | None, fallback: str) -> str:
    """Only the last path part, printable characters only: a display name never becomes a path."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:120] or fallback


def add_dataset(store: Store, data: bytes, name: str | None = None) -> AddedDataset:
    """Ingest bytes once: the same bytes again (also from another process at the same moment) are the same
    dataset. Each attempt writes its own file and removes only that one when it loses the race or fails."""
    content_hash = hashlib.sha256(data).hexdigest()
    existing = store.find_dataset_by_hash(content_hash)
    if existing is not None:
        _restore_missing_file(store, existing, data)
        return AddedDataset(existing, created=False)
    ingested = ingest_bytes(data)
    profile = profile_table(ingested.table)
    dataset_id = content_hash[:16]
    file_name = f"{dataset_id}-{uuid.uuid4().hex[:8]}.parquet"
    _write_parquet_atomically(ingested.table, store.settings.datasets_dir / file_name)
    schema = [{"name": c["name"], "kind": c["kind"], "dtype": c["dtype"]} for c in profile["columns"]]
    dataset = Dataset(
        id=dataset_id, name=display_name(name, f"dataset-{dataset_id[:8]}"), content_hash=content_hash,
        n_rows=len(ingested.table), n_columns=ingested.table.shape[1], size_bytes=len(data), file_name=file_name,
        schema=schema, profile=profile, notes=ingested.notes, created_at=utcnow(),
    )
    try:
        stored, created = store.add_dataset(dataset)
    except BaseException:
        (store.settings.datasets_dir / file_name).unlink(missing_ok=True)
        raise
    if not created:  # another process stored the same bytes first: its row points to its own file
        (store.settings.datasets_dir / file_name).unlink(missing_ok=True)
    return AddedDataset(stored, created)


def _restore_missing_file(store: Store, dataset: Dataset, data: bytes) -> None:
    """A dataset row whose file is gone (deleted by hand, or by an older version's race) gets it back."""
    path = store.settings.datasets_dir / dataset.file_name
    if not path.is_file():
        _write_parquet_atomically(ingest_bytes(data).table, path)


def add_path(store: Store, path: str | Path, name: str | None = None) -> AddedDataset:
    return add_dataset(store, read_path(path), name or Path(path).name)


def add_sample(store: Store, sample: str) -> AddedDataset:
    frame = load_sample(sample)
    return add_dataset(store, frame.to_csv(index=False).encode("utf-8"), f"{sample} (sample)")


def sample_names() -> dict[str, str]:
    return {name: s.description for name, s in SAMPLES.items()}


def load_table(store: Store, dataset: Dataset | str) -> pd.DataFrame:
    if isinstance(dataset, str):
        dataset = store.get_dataset(dataset)
    path = store.settings.datasets_dir / dataset.file_name
    if not path.is_file():
        raise UserError(f"The data file of dataset '{dataset.name}' is missing from {path.parent}.")
    # Arrow opens the file itself. Given a Python file object (what pandas passes without a filesystem), the scan's
    # worker threads hold buffers that only the GIL can free; one still waiting for it while the interpreter shuts
    # down is ended by Python inside Arrow's C++ code: "terminate called without an active exception", exit 134.
    return pd.read_parquet(path, filesystem=LocalFileSystem())


def profile_with_target(store: Store, dataset_id: str, target: str | None = None) -> dict[str, Any]:
    """The stored profile, plus the target-aware warnings when a target is given."""
    dataset = store.get_dataset(dataset_id)
    profile = dict(dataset.profile)
    if target:
        profile["warnings"] = profile["warnings"] + target_warnings(load_table(store, dataset), profile, target)
    return profile


def delete_dataset(store: Store, dataset_id: str) -> Dataset:
    """Delete a dataset, its runs and their files, and its sweeps with their Optuna studies; refused while one of its
    runs is queued or running or one of its sweeps is running."""
    recover_stale_runs(store)  # a run whose worker died no longer counts as running
    studies = [s.study_name for s in store.list_sweeps(dataset_id)]
    dataset, run_ids = store.delete_dataset(dataset_id)
    (store.settings.datasets_dir / dataset.file_name).unlink(missing_ok=True)
    for run_id in run_ids:
        remove_run_files(store, run_id)
    if studies:
        from workbench.sweeps import delete_studies  # not at the top: Optuna is slow to import

        delete_studies(store, studies)
    return dataset


def _write_parquet_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write to a temporary name in the same folder, then rename: never a half-written dataset."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".parquet")
    except OSError as exc:
        raise UserError(storage_error_message(exc) or f"Could not write the dataset: {exc.strerror}.") from exc
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if message := storage_error_message(exc):
            raise UserError(message) from exc
        raise
