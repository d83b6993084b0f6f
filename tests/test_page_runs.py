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


# -- run groups: intervals, verdicts, the leaderboard, only what differs (issue 16) -----------------------------------


def stored_group(store, dataset_id: str, model: str, accuracies: list[float], params: dict | None = None):
    """A finished run group written straight to the store on the real fold assignments of the dataset's target
    (as the worker would leave it): one member per accuracy, in member order."""
    from workbench.evaluation import assignment_seed, fold_assignments
    from workbench.store import RunResult, RunStatus

    labels = [("yes" if i % 3 else "no") for i in range(60)]  # tests.test_compare.CSV's target
    assignment = fold_assignments(labels, len(accuracies), assignment_seed(dataset_id, "label"), "binary")
    config = {"dataset_id": dataset_id, "target": "label", "model": model, "params": params or {}}
    group, members = store.create_group(
        {**config, "repeats": len(accuracies)}, model, "label", "binary",
        [(assignment.member_name(*m), config, params or {}) for m in assignment.members], assignment.to_dict(),
        assignment.test_share())
    for run, accuracy in zip(members, accuracies, strict=True):
        test = {"accuracy": accuracy, "log_loss": 1 - accuracy}
        store.finish_run(run.id, RunResult(
            RunStatus.SUCCEEDED, primary_metric="accuracy", primary_value=accuracy, metrics={"test": test, "val": test},
            split_fingerprint=f"{assignment.key}-{run.member}", duration_s=2.0,
            intervals={"test": {"accuracy": [accuracy - 0.1, min(accuracy + 0.1, 1.0)]}}))
    return group


def test_two_groups_on_the_same_folds_get_a_verdict_and_the_band_is_adjustable(store, dataset_id):
    strong = stored_group(store, dataset_id, "mlp", [0.90, 0.92, 0.91, 0.93, 0.90], params={"lr": 0.01})
    weak = stored_group(store, dataset_id, "logistic_regression", [0.80, 0.81, 0.79, 0.82, 0.80])
    at = page("runs").run()
    assert not at.exception, at.exception
    groups_table = next(df.value for df in at.dataframe if "Group" in df.value.columns and "Repeats" in df.value)
    assert set(groups_table["Group"]) == {strong.id, weak.id}
    assert groups_table.set_index("Group").loc[strong.id, "Score (95% interval)"]== "0.912 (0.89-0.94)"
    at.multiselect(key="compare").select(strong.id).select(weak.id).run()
    assert not at.exception, at.exception
    assert "Clearly better." in texts(at.success) and "mlp" in texts(at.success)
    # A band wider than the gap: the same verdict can no longer call it a difference.
    at.number_input(key="verdict.band").set_value(0.5).run()
    assert not at.exception and "Practically the same." in texts(at.info)
    # Settings: only what differs, with a toggle for all.
    settings = next(df.value for df in at.dataframe if df.value.index.name == "setting")
    assert "model" in settings.index and "target" not in settings.index
    at.toggle(key="compare.all_settings").set_value(True).run()
    settings = next(df.value for df in at.dataframe if df.value.index.name == "setting")
    assert "target" in settings.index
    board = next(df.value for df in at.dataframe if "Tied with best" in df.value.columns and "Cost" in df.value)
    assert list(board["Model"]) == ["mlp", "logistic_regression"]
    assert list(board["Tied with best"]) == ["yes", "no"]


def test_items_tested_on_different_rows_are_not_compared_and_the_page_says_why(store, dataset_id):
    group = stored_group(store, dataset_id, "mlp", [0.90, 0.92, 0.91, 0.93, 0.90])
    run = finished_run(store, dataset_id)
    at = page("runs").run()
    at.multiselect(key="compare").select(group.id).select(run.id).run()
    assert not at.exception, at.exception
    assert "Not compared" in texts(at.warning) and "repeat the run too" in texts(at.warning)
    assert not at.success


def test_three_groups_are_ranked_without_crowning_a_winner_the_evidence_does_not_support(store, dataset_id):
    a = stored_group(store, dataset_id, "mlp", [0.90, 0.88, 0.91, 0.87, 0.90])
    b = stored_group(store, dataset_id, "cnn", [0.89, 0.90, 0.88, 0.90, 0.89])
    c = stored_group(store, dataset_id, "logistic_regression", [0.60, 0.61, 0.59, 0.62, 0.60])
    at = page("runs").run()
    at.multiselect(key="compare").select(a.id).select(b.id).select(c.id).run()
    assert not at.exception, at.exception
    assert "No single winner" in texts(at.info)
    ranking = next(df.value for df in at.dataframe if "Rank" in df.value.columns and "p against the best" in df.value)
    tied = dict(zip(ranking["Run or group"].str.split(" · ").str[0], ranking["Tied with best"], strict=True))
    assert tied == {f"group {a.id}": True, f"group {b.id}": True, f"group {c.id}": False}
