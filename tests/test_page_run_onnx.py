"""The portable ONNX export on the Run and Predict pages: built on a click, then offered for download with the
check's figure; a refusal is one sentence on the page, never an error page."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd

from tests.conftest import make_classification_frame
from tests.test_page_run import run_page
from tests.test_pages import _no_background_worker, captured_downloads, customers, page, texts, train  # noqa: F401
from workbench import datasets


def add(store, frame: pd.DataFrame) -> str:
    return datasets.add_dataset(store, frame.to_csv(index=False).encode(), "t.csv").dataset.id


def test_the_run_page_builds_the_onnx_bundle_on_a_click_and_offers_it(store, monkeypatch):
    run_id = train(store, add(store, customers()))
    downloads = captured_downloads(monkeypatch)
    at = run_page(run_id)
    assert not at.exception, at.exception
    assert "Download the ONNX bundle (zip)" not in [b.label for b in at.get("download_button")]  # not before asked
    at.button(key=f"onnx_export.{run_id}.build").click().run()
    assert not at.exception, at.exception
    assert not at.warning and not at.error, texts(at.warning)
    assert "Download the ONNX bundle (zip)" in [b.label for b in at.get("download_button")]
    assert "largest difference from the Workbench's own predictions" in texts(at.caption)
    names = [zipfile.ZipFile(io.BytesIO(data)).namelist() for data in downloads if data.startswith(b"PK")]
    assert any(f"workbench-run-{run_id}-onnx/model.onnx" in listing for listing in names)


def test_a_refused_onnx_export_is_one_sentence_on_the_predict_page(store):
    frame = make_classification_frame(n=200)
    days = pd.date_range("2022-01-01", periods=len(frame), freq="5D")
    frame["day"] = days.strftime("%d-%b-%Y")  # dates the bundle cannot read as the Workbench does (31-Dec-2022)
    frame["label"] = np.where(days.month <= 6, "first half", "second half")
    run_id = train(store, add(store, frame[["day", "label"]]))
    at = page("predict").run()
    assert not at.exception, at.exception
    at.button(key=f"onnx_export.{run_id}.build").click().run()
    assert not at.exception and not at.error, at.exception
    [refusal] = at.warning
    assert "was refused" in texts([refusal]) and texts([refusal]).count(". ") == 0
    assert "Download the ONNX bundle (zip)" not in [b.label for b in at.get("download_button")]
