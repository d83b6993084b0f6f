"""The Train page: plain settings, state kept in the URL, retrain from a stored run, the started run's message, and
the time-ordered split offered on tables with dates."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.test_pages import customers, page, texts, train
from workbench import datasets, jobs
from workbench.models.registry import DEFAULT_MODEL


@pytest.fixture(autouse=True)
def _no_background_worker(monkeypatch):
    """Tests train in-process with run_worker instead of the worker process the page starts."""
    monkeypatch.setattr(jobs.LocalExecutor, "ensure_running", lambda self: False)


@pytest.fixture
def dataset_id(store) -> str:
    return datasets.add_dataset(store, customers().to_csv(index=False).encode(), "tiny.csv").dataset.id


def start(at):
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception
    return at


def test_the_form_opens_on_gradient_boosting_with_plain_labels_and_a_time_estimate(store, dataset_id):
    at = page("train").run()
    assert not at.exception
    assert at.selectbox(key="model").value == DEFAULT_MODEL
    at.selectbox(key="model").select("mlp").run()
    labels = [w.label for w in at.number_input] + [w.label for w in at.text_input]
    assert "Learning rate" in labels and "lr" not in labels
    assert "Expected training time on this table" in texts(at.caption)
    assert any("Setting" in (w.help or "") and "lr" in (w.help or "") for w in at.number_input)
    assert "Advanced settings" in [e.label for e in at.expander]


def test_auto_preprocessing_says_what_it_is_for_the_model_picked(store, dataset_id):
    at = page("train").run()
    assert "Auto for gradient_boosting: numbers standardise; categories one-hot." in texts(at.caption)
    at.selectbox(key="model").select("mlp").run()
    assert "Auto for mlp: numbers robust, outliers clipped smoothly; categories learned embeddings." in texts(at.caption)
    at.selectbox(key="model").select("transformer").run()
    at.selectbox(key="categorical").select("onehot").run()
    assert "Auto for transformer: numbers quantile to a normal shape." in texts(at.caption)
    at.selectbox(key="scaling").select("minmax").run()
    assert "Auto for" not in texts(at.caption)


def test_the_form_survives_a_refresh_through_the_url(store, dataset_id):
    at = page("train").run()
    at.selectbox(key="model").select("mlp").run()
    at.number_input(key="param.mlp.epochs").set_value(7).run()
    url = {key: at.query_params[key] for key in at.query_params}
    assert url["model"] == "mlp" and url["epochs"] == "7" and url["dataset"] == dataset_id

    refreshed = page("train")  # a new session: only the URL is left
    refreshed.query_params.update({key: value for key, value in url.items()})
    refreshed.run()
    assert not refreshed.exception
    assert refreshed.selectbox(key="model").value == "mlp"
    assert refreshed.number_input(key="param.mlp.epochs").value == 7


def test_retrain_with_changes_prefills_the_form_from_a_stored_run(store, dataset_id):
    run_id = train(store, dataset_id, model="logistic_regression", C=0.25)
    at = page("train")
    at.query_params["from_run"] = run_id
    at.run()
    assert not at.exception
    assert at.selectbox(key="model").value == "logistic_regression"
    assert at.number_input(key="param.logistic_regression.C").value == 0.25
    assert "from_run" not in at.query_params  # the URL now describes the form itself
    at.query_params["from_run"] = "no-such-run"
    assert not page("train").run().exception


def test_the_queued_message_goes_when_its_run_ends(store, dataset_id):
    at = page("train").run()
    at.selectbox(key="model").select("logistic_regression").run()
    start(at)
    [run] = store.list_runs()
    assert f"Run **{run.id}** is queued" in texts(at.success)
    jobs.run_worker(store, once=True)
    at.run()
    assert not at.exception
    assert run.id not in texts(at.success)


def test_a_table_with_dates_offers_a_time_split_and_warns_about_a_random_one(store):
    frame = customers(n=120)
    frame["signed_up"] = pd.date_range("2021-01-01", periods=len(frame), freq="D").strftime("%Y-%m-%d")
    added = datasets.add_dataset(store, frame.to_csv(index=False).encode(), "dated.csv").dataset
    at = page("train").run()
    at.selectbox(key=f"target.{added.id}").select("label").run()
    assert not at.exception
    assert "after the test rows" in texts(at.warning)
    at.selectbox(key=f"order_by.{added.id}").select("signed_up").run()
    assert "after the test rows" not in texts(at.warning)
    at.selectbox(key="model").select("logistic_regression").run()
    start(at)
    [run] = store.list_runs()
    assert run.config["split"]["order_by"] == "signed_up"


def test_repeats_on_the_form_queue_a_run_group_and_stay_in_the_url(store, dataset_id):
    at = page("train").run()
    at.selectbox(key="model").select("logistic_regression").run()
    at.number_input(key="repeats").set_value(5).run()
    assert at.query_params.get("repeats") in ("5", ["5"])
    start(at)
    runs = store.list_runs()
    assert len(runs) == 5 and len({r.group_id for r in runs}) == 1 and runs[0].group_id is not None
