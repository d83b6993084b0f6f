"""Runs & Compare (pages/runs.py): one chosen run, links from every table of runs to each run's page, and
selections that stay true when runs are deleted, here or elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_compare import CSV, finished_run
from tests.test_pages import page, texts
from workbench import datasets, jobs

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


@pytest.fixture
def dataset_id(store) -> str:
    return datasets.add_dataset(store, CSV, "small.csv").dataset.id


def runs_page_in_app() -> AppTest:
    """Runs & Compare inside app.py, where links to other pages resolve."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    return at.switch_page("pages/runs.py").run()


def confirmation(at: AppTest):
    """The 'Yes, delete N run(s)' checkbox, or None when there is none."""
    return next((c for c in at.checkbox if c.label.startswith("Yes, delete")), None)


def delete_button(at: AppTest):
    return next(b for b in at.button if b.label == "Delete runs")


def test_one_chosen_run_is_shown_with_a_link_to_its_page(store, dataset_id):
    run = finished_run(store, dataset_id, params={"lr": 0.1})
    at = runs_page_in_app()
    at.multiselect(key="compare").select(run.id).run()
    assert not at.exception, at.exception
    assert "at least two" not in texts(at.info)
    assert "Baseline (majority class)" in at.dataframe[1].value.index  # its scores
    assert at.dataframe[2].value.set_index("setting").loc["lr", "value"] == "0.1"  # its settings
    next(b for b in at.button if b.label.startswith("Open the page of run")).click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Run" and at.query_params["run"] == run.id
    assert at.selectbox(key="run.pick").value == run.id


@pytest.mark.parametrize("name", ["runs", "home"])
def test_every_table_of_runs_links_to_each_runs_page(store, dataset_id, name):
    runs = [finished_run(store, dataset_id) for _ in range(3)]
    at = page(name).run()
    assert not at.exception
    table = at.dataframe[0]
    assert sorted(table.value["Page"]) == sorted(f"run?run={r.id}" for r in runs)
    assert '"Page": {"label": "Run page"' in table.proto.columns and '"type": "link"' in table.proto.columns


def test_after_deleting_runs_no_selection_offers_them(store, dataset_id):
    """Issue 20: after deleting runs the compare selection and the delete list went stale ("Yes, delete 0
    run(s)", a deleted run still offered)."""
    a, b, c, d = (finished_run(store, dataset_id) for _ in range(4))
    at = page("runs").run()
    compare_runs = at.multiselect(key="compare")
    compare_runs.select(a.id).select(b.id).select(c.id).run()
    at.multiselect(key="delete.runs").select(a.id).select(b.id).run()
    confirmation(at).check().run()
    delete_button(at).click().run()
    assert not at.exception, at.exception
    assert {r.id for r in store.list_runs()} == {c.id, d.id}
    assert "Deleted 2 run(s)" in texts(at.success)
    assert at.multiselect(key="compare").value == [c.id]
    for key in ("compare", "delete.runs"):
        assert not any(o.startswith((a.id, b.id)) for o in at.multiselect(key=key).options)
    assert at.multiselect(key="delete.runs").value == [] and confirmation(at) is None
    assert delete_button(at).disabled

    # Deleted elsewhere (the run's page, another tab, the CLI) while chosen and confirmed here.
    at.multiselect(key="delete.runs").select(c.id).run()
    confirmation(at).check().run()
    jobs.delete_run(store, c.id)
    at.run()
    assert not at.exception
    assert at.multiselect(key="compare").value == [] and at.multiselect(key="delete.runs").value == []
    assert confirmation(at) is None, "no 'Yes, delete 0 run(s)' for an emptied list"
    assert delete_button(at).disabled


def test_a_confirmation_belongs_to_the_runs_it_was_given_for(store, dataset_id):
    """Protection: ticking 'Yes, delete 1 run(s)' for one run does not confirm deleting another one added later."""
    a, b = finished_run(store, dataset_id), finished_run(store, dataset_id)
    at = page("runs").run()
    at.multiselect(key="delete.runs").select(a.id).run()
    confirmation(at).check().run()
    assert not delete_button(at).disabled
    at.multiselect(key="delete.runs").select(b.id).run()
    assert confirmation(at).label.startswith("Yes, delete 2 run(s)")
    assert not confirmation(at).value and delete_button(at).disabled
    at.multiselect(key="delete.runs").unselect(b.id).unselect(a.id).select(b.id).run()
    assert not confirmation(at).value and delete_button(at).disabled
    assert store.count_runs() == 2
