"""Every page through streamlit's AppTest, on a fresh WORKBENCH_HOME: empty states, upload, profile, a run
submitted through the form and trained, the comparison of two runs, predictions and their download."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from tests.conftest import make_classification_frame, make_regression_frame
from tests.test_compare import finished_run
from ui.text import WORD_JOINER
from workbench import datasets, jobs
from workbench.runconfig import RunConfig
from workbench.store import RunResult, RunStatus

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


def page(name: str) -> AppTest:
    return AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=TIMEOUT)


def plotly_charts(at: AppTest) -> list:
    return list(at.get("plotly_chart"))


def table_with(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page that has this column."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def visible(markdown: str) -> str:
    """The characters Streamlit shows for markdown whose user text went through escape_markdown: its backslash
    escapes resolved (CommonMark escapes ASCII punctuation), its word joiners invisible, its entity a space."""
    unescaped = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown.replace("&#32;", " "))
    return unescaped.replace(WORD_JOINER, "")


def texts(elements) -> str:
    return " ".join(visible(str(e.value)) for e in elements)


@pytest.fixture(autouse=True)
def _no_background_worker(monkeypatch):
    """Pages start a worker process after a submit; tests train in-process with run_worker instead."""
    monkeypatch.setattr(jobs.LocalExecutor, "ensure_running", lambda self: False)


LABELS = {"yes": "churned", "no": "stayed"}  # yes/no would be read as a boolean column


def customers(n: int = 120, seed: int = 0) -> pd.DataFrame:
    frame = make_classification_frame(n=n, seed=seed)
    frame["label"] = frame["label"].map(LABELS)
    return frame


@pytest.fixture
def tiny_csv() -> bytes:
    return customers().to_csv(index=False).encode()


@pytest.fixture
def dataset_id(store, tiny_csv) -> str:
    return datasets.add_dataset(store, tiny_csv, "tiny.csv").dataset.id


def train(store, dataset_id: str, model: str = "logistic_regression", target: str = "label", **params) -> str:
    run = jobs.submit_run(store, RunConfig(dataset_id=dataset_id, target=target, model=model, params=params))
    jobs.run_worker(store, once=True)
    assert store.get_run(run.id).status == "succeeded", store.get_run(run.id).error
    return run.id


# -- empty workbench --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "pages").glob("*.py")))
def test_every_page_has_an_empty_state(home, name):
    at = page(name).run()
    assert not at.exception
    if name != "home":
        assert at.info, "an empty page says what to do first"


def test_app_entry_point_runs(home):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.title[0].value == "Workbench"


def test_an_unexpected_error_is_one_sentence_with_a_reference(home, monkeypatch):
    """A bug in the engine must not put a traceback on the page: one sentence, a reference id, details in the log."""
    from workbench.store import Store

    def broken(self, *args, **kwargs):
        raise RuntimeError("a bug deep inside the engine")

    monkeypatch.setattr(Store, "list_datasets", broken)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    (error,) = at.error
    reference = re.search(r"reference \*\*([0-9a-f]{8})\*\*", error.value).group(1)
    assert "a bug deep inside" not in error.value and "Traceback" not in error.value
    log = (home / "logs" / "errors.log").read_text(encoding="utf-8")
    assert f"reference {reference}" in log and "RuntimeError: a bug deep inside the engine" in log


# -- home -------------------------------------------------------------------------------------------


def test_home_adds_a_sample_and_counts_it(store):
    at = page("home").run()
    at.selectbox[0].select("iris")
    at.button[0].click().run()
    assert not at.exception
    assert "iris" in texts(at.success)
    assert [d.name for d in store.list_datasets()] == ["iris (sample)"]
    at.run()
    assert [m.value for m in at.metric][1] == "1"


# -- data -------------------------------------------------------------------------------------------


def test_upload_shows_profile_notes_and_histogram(store):
    at = page("data").run()
    csv = b"id;amount;city;label\n" + b"".join(
        f"{i};{i * 1.5:.1f}".replace(".", ",").encode() + f";{'Paris' if i % 3 else 'Lyon'};{i % 2}\n".encode()
        for i in range(40))
    at.file_uploader[0].upload("sales.csv", csv, "text/csv").run()
    assert not at.exception
    assert "sales.csv" in texts(at.success)
    assert "semicolon" in texts(at.info)  # what the reader repaired or detected
    assert "identifier" in texts(at.warning)
    columns = table_with(at, "Kind")
    assert list(columns["Column"]) == ["id", "amount", "city", "label"]
    assert plotly_charts(at)
    assert len(store.list_datasets()) == 1


def test_bad_file_shows_one_sentence_not_an_exception(store):
    at = page("data").run()
    at.file_uploader[0].upload("book.xlsx", b"PK\x03\x04 not really a workbook", "application/octet-stream").run()
    assert not at.exception
    assert "ZIP" in at.error[0].value
    assert store.list_datasets() == []


def test_target_aware_warnings(store):
    frame = make_classification_frame(n=200)
    frame["leak"] = frame["label"].map({"yes": 1.0, "no": 0.0})
    datasets.add_dataset(store, frame.to_csv(index=False).encode(), "leaky.csv")
    at = page("data").run()
    assert "predicts the target" not in texts(at.warning)
    target = next(s for s in at.selectbox if s.label.startswith("Column you want to predict"))
    target.select("label").run()
    assert not at.exception
    assert "'leak' predicts the target almost perfectly" in texts(at.warning)


def test_upload_limit_follows_the_setting(home, monkeypatch):
    """The browser refuses files over WORKBENCH_MAX_UPLOAD_MB before sending them (each uploader carries the limit);
    app.py makes the server's own cap the same; the caption says it."""
    from streamlit import config

    monkeypatch.setenv("WORKBENCH_MAX_UPLOAD_MB", "3")
    before = config.get_option("server.maxUploadSize")
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
        assert not at.exception
        assert config.get_option("server.maxUploadSize") == 3
    finally:
        config.set_option("server.maxUploadSize", before)
    at = page("data").run()
    assert [u.proto.max_upload_size_mb for u in at.get("file_uploader")] == [3]
    assert "Files up to 3 MB." in texts(at.caption)


def test_delete_dataset_needs_confirmation(store, dataset_id):
    at = page("data").run()
    delete = next(b for b in at.button if b.label == "Delete dataset")
    assert delete.disabled
    next(c for c in at.checkbox if c.label == "Yes, delete it").check().run()
    next(b for b in at.button if b.label == "Delete dataset").click().run()
    assert not at.exception
    assert store.list_datasets() == []
    assert at.info  # back to the empty state


def confirm_delete_dataset(at: AppTest) -> AppTest:
    next(c for c in at.checkbox if c.label == "Yes, delete it").check().run()
    return at


def click_delete_dataset(at: AppTest) -> AppTest:
    return next(b for b in at.button if b.label == "Delete dataset").click().run()


def test_a_dataset_with_queued_runs_is_not_deleted(store, dataset_id):
    """The engine refuses to delete a dataset whose runs are queued or running; the page shows its sentence."""
    run = jobs.submit_run(store, RunConfig(dataset_id=dataset_id, target="label", model="logistic_regression"))
    at = click_delete_dataset(confirm_delete_dataset(page("data").run()))
    assert not at.exception
    assert len(at.error) == 1 and "queued or running" in texts(at.error)
    assert [d.id for d in store.list_datasets()] == [dataset_id]
    assert store.get_run(run.id).status == RunStatus.QUEUED


# -- train ------------------------------------------------------------------------------------------


def test_submit_through_the_form_then_see_it_succeed(store, dataset_id):
    at = page("train").run()
    assert not at.exception
    at.selectbox(key="model").select("mlp").run()
    at.number_input(key="param.mlp.epochs").set_value(3).run()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert "queued" in texts(at.success)
    [run] = store.list_runs()
    assert run.status == "queued" and run.model == "mlp" and run.target == "label"
    assert run.params["epochs"] == 3

    jobs.run_worker(store, once=True)
    at.run()
    assert not at.exception
    assert store.get_run(run.id).status == "succeeded"
    assert "succeeded" in table_with(at, "Status")["Status"].iloc[0]


def test_impossible_settings_are_refused_plainly(store, dataset_id):
    at = page("train").run()
    at.number_input(key="train_pct").set_value(90).run()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    assert "add up to 1" in at.error[0].value
    assert store.count_runs() == 0


def test_live_panel_shows_a_running_run_and_cancels_it(store, dataset_id):
    run = jobs.submit_run(store, RunConfig(dataset_id=dataset_id, target="label", model="mlp"))
    at = page("train").run()
    assert run.id in texts(at.markdown)
    next(b for b in at.button if b.key == f"cancel.{run.id}").click().run()
    assert not at.exception
    assert store.get_run(run.id).status == "cancelled"


# -- runs & compare ---------------------------------------------------------------------------------


def test_compare_two_trained_runs(store, dataset_id):
    first = train(store, dataset_id, C=1.0)
    second = train(store, dataset_id, C=0.01)
    at = page("runs").run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 2
    at.multiselect(key="compare").select(first).select(second).run()
    assert not at.exception
    assert not at.warning  # same dataset, same split: same test rows
    scores = at.dataframe[1].value
    assert "Baseline (majority class)" in scores.index
    diff = at.dataframe[2].value
    assert list(diff.index) == ["C"]
    assert len(plotly_charts(at)) >= 3  # bars, parallel coordinates, diagnostics


def test_compare_warns_about_different_test_rows(store, dataset_id):
    a = finished_run(store, dataset_id, fingerprint="fp-a")
    b = finished_run(store, dataset_id, fingerprint="fp-b", split_seed=1)
    at = page("runs").run()
    at.multiselect(key="compare").select(a.id).select(b.id).run()
    assert not at.exception
    assert "different rows" in texts(at.warning)


def test_runs_page_with_hundreds_of_runs_filters_and_deletes(store, dataset_id):
    runs = [finished_run(store, dataset_id, params={"lr": 10.0 ** -(i % 4)}, epochs=0) for i in range(300)]
    store.finish_run(runs[0].id, RunResult(RunStatus.FAILED, error="boom"))
    at = page("runs").run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 300
    at.multiselect(key="filter.status").select("failed").run()
    assert len(at.dataframe[0].value) == 1
    at.multiselect(key="delete.runs").select(runs[0].id).run()
    next(c for c in at.checkbox if c.label.startswith("Yes, delete 1 run")).check().run()
    next(b for b in at.button if b.label == "Delete runs").click().run()
    assert not at.exception
    assert store.count_runs() == 299


# -- predict ----------------------------------------------------------------------------------------


def captured_downloads(monkeypatch) -> list[bytes]:
    """The bytes every download button hands to the browser (AppTest keeps them in memory storage)."""
    captured: list[bytes] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        captured.append(path_or_data if isinstance(path_or_data, bytes) else str(path_or_data).encode())
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return captured


def test_predict_a_csv_and_download_it(store, dataset_id, monkeypatch):
    run_id = train(store, dataset_id)
    downloads = captured_downloads(monkeypatch)
    new_rows = customers(n=10, seed=1).drop(columns=["label"])
    new_rows.loc[0, "colour"] = "=HYPERLINK(1)"  # an unseen category that is also a spreadsheet formula
    at = page("predict").run()
    assert not at.exception
    at.file_uploader(key="predict_upload").upload("new.csv", new_rows.to_csv(index=False).encode(), "text/csv")
    at.run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    shown = at.dataframe[0].value
    assert len(shown) == 10 and "prediction" in shown.columns
    assert {"proba_churned", "proba_stayed"} <= set(shown.columns)
    assert at.download_button(key="download_predictions")
    text = downloads[-1].decode()
    assert text.splitlines()[0].startswith("x1,x2,colour,flag")
    assert "'=HYPERLINK(1)" in text and run_id


def test_predict_names_a_missing_column(store, dataset_id):
    train(store, dataset_id)
    at = page("predict").run()
    at.file_uploader(key="predict_upload").upload("new.csv", b"x1,flag\n1,true\n", "text/csv").run()
    assert not at.exception
    assert "x2" in at.error[0].value


def test_predict_shows_what_did_not_fit_the_training_schema(store, dataset_id):
    """A typo in a number, an unseen category and an empty row are named in notes and flagged per row."""
    train(store, dataset_id)
    new_rows = customers(n=6, seed=2).drop(columns=["label"]).astype({"x1": object, "colour": object, "flag": object})
    new_rows.loc[0, "x1"] = "39.3x"
    new_rows.loc[1, "colour"] = "purple"
    new_rows.loc[2, ["x1", "x2", "colour", "flag"]] = None
    at = page("predict").run()
    at.file_uploader(key="predict_upload").upload("new.csv", new_rows.to_csv(index=False).encode(), "text/csv")
    at.run()
    assert not at.exception, at.exception
    notes = texts(at.info).replace(WORD_JOINER, "").replace("\\", "")
    assert "39.3x" in notes and "purple" in notes and "every" in notes, notes
    assert "3 rows are flagged" in texts(at.success)
    warnings = at.dataframe[0].value["warnings"].tolist()
    assert all(warnings[:3]) and not any(warnings[3:]), warnings


def test_what_if_form_predicts_one_row(store, dataset_id):
    run_id = train(store, dataset_id)
    at = page("predict").run()
    assert at.number_input(key=f"what_if.{run_id}.x1").value == pytest.approx(
        datasets.load_table(store, dataset_id)["x1"].median())
    at.number_input(key=f"what_if.{run_id}.x1").set_value(3.0)
    next(b for b in at.button if b.label == "Predict this row").click().run()
    assert not at.exception
    assert at.metric[0].label == "Predicted label"
    assert at.metric[0].value in LABELS.values()
    assert plotly_charts(at)


def test_regression_compare_and_predict(store):
    dataset_id = datasets.add_dataset(store, make_regression_frame(n=150).to_csv(index=False).encode(),
                                      "reg.csv").dataset.id
    a = train(store, dataset_id, model="ridge", target="y")
    b = train(store, dataset_id, model="ridge", target="y", alpha=10.0)
    at = page("runs").run()
    at.multiselect(key="compare").select(a).select(b).run()
    assert not at.exception
    assert "Baseline (mean)" in at.dataframe[1].value.index
    at = page("predict").run()
    assert not at.exception
    pd.testing.assert_index_equal(pd.Index([r.id for r in store.list_runs()]), pd.Index([b, a]))


def test_data_page_takes_every_column_as_target_on_a_table_with_missing_numbers(store):
    """Issue 14: a 344-row penguins-like table with gaps in several numeric columns; picking a categorical target
    crashed the page (a -1e300 missing-value fill overflowed float32 inside scikit-learn's tree)."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = 344
    frame = pd.DataFrame({
        "species": rng.choice(["Adelie", "Gentoo", "Chinstrap"], n),
        "island": rng.choice(["Biscoe", "Dream", "Torgersen"], n),
        "bill_length_mm": rng.normal(44, 5, n).round(1),
        "bill_depth_mm": rng.normal(17, 2, n).round(1),
        "flipper_length_mm": rng.normal(200, 14, n).round(0),
        "body_mass_g": rng.normal(4200, 800, n).round(0),
        "sex": rng.choice(["male", "female"], n),
        "year": rng.choice([2007, 2008, 2009], n),
    })
    frame.loc[[3, 271], ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]] = np.nan
    frame.loc[rng.choice(n, 11, replace=False), "sex"] = np.nan
    datasets.add_dataset(store, frame.to_csv(index=False).encode(), "penguins.csv")
    at = page("data").run()
    for name in frame.columns:
        target = next(s for s in at.selectbox if s.label.startswith("Column you want to predict"))
        target.select(name).run()
        assert not at.exception, (name, at.exception)
        assert not at.error, (name, texts(at.error))
