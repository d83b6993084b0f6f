"""The sweep page (pages/sweeps.py, `/sweeps?sweep=ID`) and the Train page's search panel: a search started from the
form, its trials, best-so-far, importances and trial table, retraining the best with repeats, and "Try every model";
then a 4-trial sweep from the Train form in a real browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_pages import customers, plotly_charts, texts
from workbench import datasets, jobs, sweeps
from workbench.models.registry import MODELS
from workbench.runconfig import RunConfig
from workbench.store import RunStatus, SweepStatus

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


@pytest.fixture(autouse=True)
def _no_background_worker(monkeypatch):
    """Pages start a worker process after a submit; tests train in-process with run_worker instead."""
    monkeypatch.setattr(jobs.LocalExecutor, "ensure_running", lambda self: False)


@pytest.fixture
def dataset_id(store) -> str:
    return datasets.add_dataset(store, customers().to_csv(index=False).encode(), "customers.csv").dataset.id


def app_at(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()  # pages register on the first run
    for key, value in query.items():
        at.query_params[key] = value
    return at.switch_page(page).run()


def finished_sweep(store, dataset_id: str, trials: int = 4) -> str:
    sweep = sweeps.submit_sweep(store, sweeps.SweepConfig(RunConfig(dataset_id, "label", "logistic_regression"),
                                                          n_trials=trials, seed=3))
    jobs.run_worker(store, once=True)
    assert store.get_sweep(sweep.id).status == SweepStatus.FINISHED
    return sweep.id


def test_with_no_sweep_the_page_says_where_to_start_one(store):
    at = app_at("pages/sweeps.py")
    assert not at.exception, at.exception
    assert "On **Train**, open **Not sure which settings or model? Search**" in texts(at.info)


def test_a_finished_sweep_shows_every_trial_the_best_and_what_mattered(store, dataset_id):
    sweep_id = finished_sweep(store, dataset_id)
    at = app_at("pages/sweeps.py", sweep=sweep_id)
    assert not at.exception, at.exception
    assert not at.error and not at.warning
    assert at.selectbox(key="sweeps.pick").value == sweep_id
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "finished" and metrics["Trials ended"] == "4 of 4"
    best = sweeps.sweep_summary(store, sweep_id).best
    assert metrics["Best validation accuracy"] == f"{best.value:.4f}"
    table = next(df.value for df in at.dataframe if "Trial" in df.value.columns)
    runs = {r.trial_number: r for r in store.sweep_runs(sweep_id)}
    assert list(table["Trial"]) == [0, 1, 2, 3]
    assert list(table["Page"]) == [f"run?run={runs[n].id}" for n in range(4)]
    assert set(table["Ended"]) == {"finished"}
    assert len(plotly_charts(at)) >= 1  # best so far; importances and parallel coordinates when scores differ


def test_an_unknown_sweep_in_the_address_says_so_and_shows_the_newest(store, dataset_id):
    sweep_id = finished_sweep(store, dataset_id, trials=2)
    at = app_at("pages/sweeps.py", sweep="nosuchsweep")
    assert not at.exception, at.exception
    assert "There is no sweep nosuchsweep" in texts(at.warning)
    assert at.selectbox(key="sweeps.pick").value == sweep_id


def test_retraining_the_best_queues_a_group_with_its_settings(store, dataset_id):
    sweep_id = finished_sweep(store, dataset_id, trials=3)
    at = app_at("pages/sweeps.py", sweep=sweep_id)
    at.number_input(key=f"sweeps.repeats.{sweep_id}").set_value(3)
    at.button(key=f"sweeps.retrain.{sweep_id}").click().run()
    assert not at.exception, at.exception
    [group] = store.list_groups()
    best = store.get_run(store.get_sweep(sweep_id).best_run_id)
    assert group.config["params"] == best.config["params"] and group.config["repeats"] == 3
    assert "Queued run group" in texts(at.success)


def test_the_search_panel_starts_a_sweep_of_the_chosen_model_and_opens_its_page(store, dataset_id):
    at = app_at("pages/train.py")
    at.selectbox(key="model").set_value("linear").run()
    at.number_input(key="sweep.trials").set_value(5)
    at.button[[b.label for b in at.button].index("Start search")].click().run()
    assert not at.exception, at.exception
    [sweep] = store.list_sweeps()
    assert sweep.model == "linear" and sweep.n_trials == 5 and sweep.status == SweepStatus.RUNNING
    assert sweep.config["prune"] is True  # on by default for a neural model
    searched = {d["name"] for d in sweep.config["search_space"]["dimensions"] if d["kind"] != "fixed"}
    assert "lr" in searched and "seed" not in searched
    assert at.query_params["sweep"] == sweep.id  # the page switched to this sweep


def test_try_every_model_queues_each_model_that_fits_the_task(store, dataset_id):
    at = app_at("pages/train.py")
    at.button[[b.label for b in at.button].index("Try every model")].click().run()
    assert not at.exception, at.exception
    queued = store.list_runs(statuses=(RunStatus.QUEUED,))
    assert sorted(r.model for r in queued) == sorted(n for n, s in MODELS.items()
                                                     if "binary" in s.tasks and n != "ensemble")


def test_every_default_range_reads_back_as_the_same_search(store):
    for model in (m for m in MODELS if m != "ensemble"):  # an ensemble is not searched (sweeps.submit_sweep)
        for dimension in sweeps.SearchSpace.for_model(model).dimensions:
            back = sweeps.parse_dimension(model, dimension.name, dimension.as_text())
            assert back.kind == dimension.kind and back.log == dimension.log and back.choices == dimension.choices
            if dimension.kind in ("float", "int"):
                assert back.low == pytest.approx(dimension.low, rel=1e-5)
                assert back.high == pytest.approx(dimension.high, rel=1e-5)


def test_a_four_trial_sweep_from_the_train_form_in_a_browser(store, home, monkeypatch):
    """The user's way: the Train form's search panel starts a 4-trial sweep (the app starts the worker), the page
    switches to the sweep, which fills in live until all four trials have ended."""
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, LONG, open_page, served_app, set_number, settle

    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium")
    monkeypatch.undo()  # this test wants the real worker process
    datasets.add_dataset(store, customers(200).to_csv(index=False).encode(), "customers.csv")
    with served_app(home) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_role("heading", name="Workbench").wait_for()
            open_page(page, "Train")
            settle(page)
            page.get_by_label("Architecture", exact=True).first.click()
            page.keyboard.type("logistic_regression")
            page.keyboard.press("Enter")
            settle(page)
            page.get_by_text("Not sure which settings or model? Search").click()
            set_number(page, "Trials", "4")
            page.get_by_role("button", name="Start search").click()
            page.get_by_role("heading", name="Sweeps", exact=True).wait_for(timeout=LONG)
            expect(page.get_by_text("4 of 4", exact=True)).to_be_visible(timeout=LONG)
            expect(page.get_by_text("finished", exact=True).first).to_be_visible(timeout=LONG)
            settle(page)  # the live part hands over to the finished page: for a moment both are drawn
            expect(page.get_by_text("Validation accuracy of each trial").first).to_be_visible()
            expect(page.get_by_role("button", name="Retrain the best with repeats")).to_be_visible()
            assert page.get_by_test_id("stException").count() == 0
            [sweep] = store.list_sweeps()
            assert sweep.status == SweepStatus.FINISHED and len(store.sweep_runs(sweep.id)) == 4
        finally:
            browser.close()


def test_a_trials_run_page_links_back_to_its_sweep(store, dataset_id):
    sweep_id = finished_sweep(store, dataset_id, trials=2)
    trial = store.sweep_runs(sweep_id)[1]
    at = app_at("pages/run.py", run=trial.id)
    assert not at.exception, at.exception
    [link] = [link for link in at.get("page_link") if "of sweep" in link.proto.label]
    assert link.proto.page == "sweeps" and link.proto.query_string == f"sweep={sweep_id}"
    assert link.proto.label.startswith("Trial 1 of sweep")


def test_a_search_can_start_from_the_forms_settings_and_an_earlier_runs(store, dataset_id):
    from tests.test_pages import train

    earlier = train(store, dataset_id, C=0.05)
    at = app_at("pages/train.py")
    at.selectbox(key="model").set_value("logistic_regression").run()
    at.number_input(key="param.logistic_regression.C").set_value(7.0).run()
    at.number_input(key="sweep.trials").set_value(3)
    assert at.checkbox(key="sweep.try_form.logistic_regression").value  # on once a setting was changed
    at.multiselect(key="sweep.try_runs.logistic_regression").select(earlier)
    at.button[[b.label for b in at.button].index("Start search")].click().run()
    assert not at.exception, at.exception
    [sweep] = store.list_sweeps()
    jobs.run_worker(store, once=True)
    tried = {r.trial_number: r.params["C"] for r in store.sweep_runs(sweep.id)}
    assert tried[1] == pytest.approx(7.0) and tried[2] == pytest.approx(0.05)  # right after the defaults
