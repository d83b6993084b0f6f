"""The page of one run (pages/run.py, `/run?run=ID`), through app.py as a browser opens it: what it shows for
finished, regression, queued, deleted and unknown runs, and its actions (predict, export, retrain, delete, cancel)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import make_regression_frame
from tests.test_pages import customers, plotly_charts, texts, train
from workbench import datasets, jobs
from workbench.runconfig import RunConfig
from workbench.store import RunStatus

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


@pytest.fixture(autouse=True)
def _no_background_worker(monkeypatch):
    """Pages start a worker process after a submit; tests train in-process with run_worker instead."""
    monkeypatch.setattr(jobs.LocalExecutor, "ensure_running", lambda self: False)


def run_page(run_id: str | None = None) -> AppTest:
    """The app opened at /run?run=RUN_ID."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()  # pages register on the first run
    if run_id is not None:
        at.query_params["run"] = run_id
    return at.switch_page("pages/run.py").run()


@pytest.fixture
def dataset_id(store) -> str:
    return datasets.add_dataset(store, customers().to_csv(index=False).encode(), "customers.csv").dataset.id


def test_a_finished_run_shows_its_scores_settings_data_and_diagnostics(store, dataset_id):
    run_id = train(store, dataset_id, C=0.01)
    at = run_page(run_id)
    assert not at.exception, at.exception
    assert not at.error
    # C=0.01 on 120 rows predicts the majority class only: the advisor says so, and nothing else warns.
    assert [w.icon for w in at.warning] == [":material/lightbulb:"] and "balanced accuracy" in texts(at.warning)
    assert at.selectbox(key="run.pick").value == run_id
    assert at.metric[0].value == "finished" and at.metric[1].label.startswith("Test accuracy")
    scores, settings = at.dataframe[0].value, at.dataframe[1].value
    assert {"Test", "Validation", "Baseline (majority class)"} <= set(scores.columns)
    assert "log loss ↓" in scores.index and "accuracy ↑" in scores.index
    assert settings.set_index("setting")["changed"].to_dict() == {"C": True, "max_iter": False, "seed": False}
    data = at.dataframe[2].value.set_index("")["Value"]
    assert data["Rows"] == "84 training, 18 validation, 18 test" and data["Dataset"] == "customers.csv"
    assert len(plotly_charts(at)) >= 3  # the validation point, the confusion matrix, ROC and PR curves
    [retrain] = [link for link in at.get("page_link") if link.proto.label == "Retrain with changes"]
    assert retrain.proto.page == "train" and retrain.proto.query_string == f"from_run={run_id}"
    assert at.get("download_button")  # Export


def test_a_regression_run_shows_rmse_curves_and_residuals(store):
    dataset_id = datasets.add_dataset(store, make_regression_frame(n=150).to_csv(index=False).encode(),
                                      "prices.csv").dataset.id
    run_id = train(store, dataset_id, model="mlp", target="y", epochs=3, patience=0)
    at = run_page(run_id)
    assert not at.exception, at.exception
    charts = [c.proto.spec for c in plotly_charts(at)]
    assert any("RMSE of y, lower is better" in spec for spec in charts)
    assert any("Residuals" in spec for spec in charts) and any("Predicted vs actual" in spec for spec in charts)


def test_an_unknown_or_deleted_run_is_one_plain_sentence(store, dataset_id):
    train(store, dataset_id)
    at = run_page("0123456789ab")
    assert not at.exception and not at.error
    assert "There is no run 0123456789ab" in texts(at.warning)
    assert at.selectbox(key="run.pick").value is None


def test_picking_another_run_changes_the_address(store, dataset_id):
    first, second = train(store, dataset_id), train(store, dataset_id, C=0.1)
    at = run_page(first)
    at.selectbox(key="run.pick").select(second).run()
    assert not at.exception
    assert at.query_params["run"] == second
    assert second in texts(at.subheader)
    at.query_params["run"] = first  # a link to the first run, opened in the same session
    at.run()
    assert at.selectbox(key="run.pick").value == first


def test_predict_with_this_run_opens_predict_with_it_chosen(store, dataset_id):
    chosen, newer = train(store, dataset_id, C=0.1), train(store, dataset_id)
    at = run_page(chosen)
    next(b for b in at.button if b.label == "Predict with this run").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Predict"
    picked = next(s for s in at.selectbox if s.label == "Trained run").value
    assert picked == chosen and picked != newer


def test_delete_needs_confirmation_then_says_so_and_forgets_the_address(store, dataset_id):
    run_id = train(store, dataset_id)
    keep = train(store, dataset_id, C=0.1)
    at = run_page(run_id)
    assert next(b for b in at.button if b.label == "Delete").disabled  # until confirmed
    at.checkbox(key=f"run.delete.confirm.{run_id}").check().run()
    next(b for b in at.button if b.label == "Delete").click().run()
    assert not at.exception, at.exception
    assert [r.id for r in store.list_runs()] == [keep]
    assert f"Run {run_id} was deleted" in texts(at.success)
    assert "run" not in at.query_params
    [offered] = at.selectbox(key="run.pick").options
    assert offered.startswith(keep)


def test_a_queued_run_shows_progress_and_cancels_from_its_page(store, dataset_id):
    run = jobs.submit_run(store, RunConfig(dataset_id=dataset_id, target="label", model="mlp"))
    at = run_page(run.id)
    assert not at.exception, at.exception
    assert "Waiting for the worker" in texts(at.caption)
    assert not at.dataframe  # no scores for a run that has not trained
    next(b for b in at.button if b.label == "Cancel this run").click().run()
    assert not at.exception, at.exception
    assert store.get_run(run.id).status == RunStatus.CANCELLED
    assert at.metric[0].value == "cancelled"  # the page shows what the cancel changed
    assert not [b for b in at.button if b.label == "Cancel this run"]


def test_no_runs_yet(home):
    at = run_page()
    assert not at.exception
    assert "No runs yet" in texts(at.info)


def test_the_advisors_suggestion_is_queued_in_one_click(store, dataset_id):
    run_id = train(store, dataset_id, C=0.01)  # majority class only: the advisor names the imbalance
    at = run_page(run_id)
    [queue] = [b for b in at.button if b.label == "Queue this run"][:1]
    queue.click().run()
    assert not at.exception, at.exception
    [queued] = store.list_runs(statuses=(RunStatus.QUEUED,))
    assert queued.dataset_id == dataset_id and queued.target == "label"
    assert f"Queued run {queued.id}" in texts(at.success)
    assert any(link.proto.label == "Open its page" for link in at.get("page_link"))
