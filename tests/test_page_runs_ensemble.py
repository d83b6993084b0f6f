"""Runs & Compare (pages/runs.py) offers an ensemble in one click: of the runs "Try every model" queued, once they
have all finished, and of runs chosen to compare; the Train form (pages/train.py) builds one too."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_ensemble import binary_runs, binary_template  # noqa: F401 (fixtures)
from tests.test_pages import page, texts
from workbench import jobs
from workbench.runconfig import RunConfig
from workbench.store import RunStatus

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60
BUILD = "Build an ensemble of these runs"


@pytest.fixture(autouse=True)
def _no_background_worker(monkeypatch):
    """Tests train in-process with run_worker instead of the worker process the page starts."""
    monkeypatch.setattr(jobs.LocalExecutor, "ensure_running", lambda self: False)


def runs_page(**query: str) -> AppTest:
    """Runs & Compare inside app.py (where links to other pages resolve), with these query parameters."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/runs.py")
    for name, value in query.items():
        at.query_params[name] = value
    return at.run()


def build_button(at: AppTest):
    return next((b for b in at.button if b.label == BUILD), None)


def test_try_every_model_ends_by_proposing_an_ensemble_of_its_runs(binary_runs):  # noqa: F811
    store, dataset_id, runs = binary_runs
    waiting = jobs.submit_run(store, RunConfig(dataset_id, "label", "logistic_regression", params={"C": 0.5}))
    at = runs_page(every=",".join([*runs, waiting.id]))
    assert not at.exception, at.exception
    assert "Try every model: 3 of 4 runs have ended." in texts(at.info)
    assert build_button(at) is None  # not before every run has ended

    jobs.run_worker(store, once=True)
    at = runs_page(every=",".join([*runs, waiting.id]))
    assert not at.exception, at.exception
    assert "all 4 runs have ended, 4 of them successfully" in texts(at.success)
    build_button(at).click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Run"
    ensemble = store.get_run(at.query_params["run"])
    assert ensemble.model == "ensemble" and ensemble.status == RunStatus.QUEUED
    assert sorted(ensemble.config["params"]["members"].split(",")) == sorted([*runs, waiting.id])
    jobs.run_worker(store, once=True)
    assert store.get_run(ensemble.id).status == RunStatus.SUCCEEDED


def test_runs_chosen_to_compare_can_be_ensembled(binary_runs):  # noqa: F811
    store, _, runs = binary_runs
    at = runs_page()
    at.multiselect(key="compare").select(runs[0]).run()
    assert build_button(at) is None  # one run is no ensemble
    at.multiselect(key="compare").select(runs[1]).run()
    assert not at.exception, at.exception
    build_button(at).click().run()
    ensemble = store.get_run(at.query_params["run"])
    assert sorted(ensemble.config["params"]["members"].split(",")) == sorted(runs[:2])


def test_the_train_form_builds_an_ensemble_of_every_finished_run(binary_runs):  # noqa: F811
    store, dataset_id, runs = binary_runs
    at = page("train")
    at.query_params.update(dataset=dataset_id, target="label", model="ensemble")
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="model").value == "ensemble"
    members = next(w for w in at.text_input if w.label == "Runs to choose from")
    assert members.value == "" and members.proto.placeholder == "every finished run on these rows"
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception and not at.error, (at.exception, texts(at.error))
    [queued] = [r for r in store.list_runs() if r.model == "ensemble"]
    jobs.run_worker(store, once=True)
    assert store.get_run(queued.id).status == RunStatus.SUCCEEDED
