"""Honest comparison wired in (issue 16): an interval on every score, repeated runs as groups trained by the real
worker on their stored folds, "is A better than B" for groups and runs, the leaderboard, and their CLI commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_classification_frame, make_regression_frame
from tests.test_compare import finished_run
from ui import charts
from workbench import compare, datasets, groups, jobs
from workbench.errors import UserError
from workbench.evaluation import FoldAssignments, fold_assignments
from workbench.models.registry import MODELS
from workbench.runconfig import RunConfig
from workbench.runner import Member, execute, load_test_predictions, member_split
from workbench.store import RunStatus
from workbench.tasks import Task

ROOT = Path(__file__).resolve().parents[1]


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, WORKBENCH_HOME=str(home)))


# -- 1. an interval on every score --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model,frame,target", [
    ("logistic_regression", make_classification_frame(300, n_classes=3), "label"),
    ("ridge", make_regression_frame(300), "y"),
])
def test_every_test_score_gets_an_interval_around_it_and_the_predictions_are_kept(tmp_path, model, frame, target):
    outcome = execute(RunConfig("d", target, model), frame, tmp_path / "run", predictions_path=tmp_path / "p.npz")
    assert outcome.status == RunStatus.SUCCEEDED
    test, intervals = outcome.metrics["test"], outcome.intervals["test"]
    assert set(intervals) == set(test)
    for metric, (low, high) in intervals.items():
        assert low <= test[metric] <= high, metric
    assert intervals[outcome.primary_metric][0] < intervals[outcome.primary_metric][1]  # 45 rows: a real width
    y, predictions = load_test_predictions(tmp_path / "p.npz")
    assert len(y) == len(predictions) == outcome.n_test
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json", "model.skops",
                                                                   "preprocessor.skops"]  # not in an export
    again = execute(RunConfig("d", target, model), frame, tmp_path / "again")
    assert [p.name for p in tmp_path.rglob("*.npz")] == ["p.npz"]  # nothing kept without a path
    assert again.intervals == outcome.intervals  # seeded: the same predictions give the same interval


def test_tables_and_bars_show_intervals_and_older_runs_their_point_only(store):
    dataset_id = datasets.add_dataset(store, make_classification_frame(60).to_csv(index=False).encode(),
                                      "c.csv").dataset.id
    old = finished_run(store, dataset_id, test={"accuracy": 0.8})
    new = finished_run(store, dataset_id, test={"accuracy": 0.842})
    store.finish_run(new.id, store_result(new, {"test": {"accuracy": [0.81, 0.87]}}))
    new = store.get_run(new.id)
    shown = charts.highlight_best(compare.compare_metrics([old, new])).data
    names = compare.run_names([old, new])
    assert shown.loc[names[new.id], "accuracy"] == "0.842 (0.81-0.87)"
    assert shown.loc[names[old.id], "accuracy"] == "0.800"
    scores = compare.compare_metrics([old, new])
    bars = charts.metric_bars(scores.table, "accuracy", scores.baseline_rows, scores.intervals).data[0]
    labels = list(scores.table["accuracy"].dropna().index)
    assert bars.error_y.array[labels.index(names[new.id])] == pytest.approx(0.87 - 0.842)
    assert bars.error_y.arrayminus[labels.index(names[old.id])] == 0


def store_result(run, intervals):
    from workbench.store import RunResult

    return RunResult(RunStatus.SUCCEEDED, intervals=intervals, primary_metric=run.primary_metric,
                     primary_value=run.primary_value)


# -- 2. repeats: a run group -----------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(12, 80), repeats=st.integers(2, 7), missing=st.integers(0, 5), classes=st.integers(2, 4),
       data=st.data())
def test_a_members_rows_are_its_stored_folds_test_rows_and_a_validation_part_of_the_rest(n, repeats, missing, classes,
                                                                                         data):
    frame = make_classification_frame(n + missing, n_classes=classes, seed=n)
    frame.index = pd.Index([f"row ✓ {i}" for i in range(len(frame))])[::-1]  # labels, not positions
    frame.loc[frame.index[:missing], "label"] = None
    present = frame["label"].dropna()
    assignment = fold_assignments(present, repeats, seed=7, task=Task.MULTICLASS if classes > 2 else Task.BINARY)
    stored = FoldAssignments.from_dict(json.loads(json.dumps(assignment.to_dict())))
    round_, fold = data.draw(st.sampled_from(stored.members))
    name = stored.member_name(round_, fold)
    split = member_split(frame, RunConfig("d", "label", "mlp"), Task.BINARY, Member(stored, name))
    _, test_positions = assignment.split(round_, fold)
    assert list(split.test) == sorted(present.index[test_positions])
    parts = [set(split.train), set(split.val), set(split.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set().union(*parts) == set(present.index) and split.train.size and split.val.size
    assert split.fingerprint == Member(assignment, name).fingerprint()


def test_a_three_repeat_group_trains_on_the_real_worker_with_every_member_on_its_stored_folds(store, home):
    frame = make_classification_frame(120)
    dataset_id = datasets.add_dataset(store, frame.to_csv(index=False).encode(), "tiny.csv").dataset.id
    first = jobs.submit_run(store, RunConfig(dataset_id, "label", "logistic_regression", repeats=3,
                                             params={"seed": 4}))
    group = store.get_group(first.group_id, with_scheme=True)
    assert group.n_members == 5 and first.member == "r0f0"  # k-fold: a whole round of 5 folds
    worker = subprocess.run([sys.executable, "-m", "workbench", "worker", "--once"], cwd=ROOT, timeout=300,
                            env=dict(os.environ, WORKBENCH_HOME=str(home)), capture_output=True, text=True)
    assert worker.returncode == 0, worker.stdout + worker.stderr
    members = store.group_runs(group.id)
    assert [r.status for r in members] == [RunStatus.SUCCEEDED] * 5, [r.error for r in members]
    assignment = FoldAssignments.from_dict(group.scheme)
    assert assignment.to_dict() == fold_assignments(frame["label"], 3, assignment.seed, Task.BINARY).to_dict()
    for run in members:
        _, test = assignment.split(*next(m for m in assignment.members if assignment.member_name(*m) == run.member))
        y, _ = load_test_predictions(jobs.test_predictions_path(store, run.id))
        assert run.details["n_test"] == len(test) == len(y)
        assert run.params["seed"] == 4 and run.config["repeats"] == 1 and run.intervals["test"]["accuracy"]
    assert sum(r.details["n_test"] for r in members) == len(frame)  # every row tested once per round
    assert len({r.split_fingerprint for r in members}) == 5
    summary = groups.summarize(group, members)
    accuracy = summary.metrics["accuracy"]
    assert accuracy.n == 5 and accuracy.ci_low < accuracy.mean < accuracy.ci_high
    assert accuracy.mean == pytest.approx(np.mean([r.metrics["test"]["accuracy"] for r in members]))

    # A second group on the same dataset, target and repeats, trained in the foreground by the CLI: the same folds,
    # so the two compare as groups, in the JSON shape.
    trained = cli(home, "train", "--dataset", dataset_id, "--target", "label", "--model", "random_forest",
                  "--repeats", "3", "--json")
    assert trained.returncode == 0, trained.stderr
    other = json.loads(trained.stdout)
    assert other["finished"] == 5 and set(other["metrics"]["accuracy"]) == {"mean", "sd", "ci_low", "ci_high", "n"}
    assert store.get_group(other["group_id"]).scheme_key == group.scheme_key
    compared = cli(home, "compare", group.id, other["group_id"], "--json")
    assert compared.returncode == 0, compared.stderr
    result = json.loads(compared.stdout)
    assert set(result) == {"metric", "higher_is_better", "items", "pairs", "tied_with_best"}
    assert result["metric"] == "accuracy" and result["higher_is_better"] is True
    assert {i["id"] for i in result["items"]} == {group.id, other["group_id"]}
    assert all(set(i) == {"id", "kind", "n", "mean", "ci_low", "ci_high"} and i["kind"] == "group" and i["n"] == 5
               for i in result["items"])
    [pair] = result["pairs"]
    assert set(pair) == {"a", "b", "difference", "ci_low", "ci_high", "p_value", "prob_a_better", "verdict"}
    assert pair["verdict"] in {"clearly_better", "probably_better", "no_clear_winner", "practically_same"}
    assert pair["a"] == result["items"][0]["id"] and pair["difference"] >= 0
    # The Scores tab: one row per group (its mean and interval over the repeats), one per single run, and a
    # baseline row for the groups' shared folds (their members' baselines averaged) besides the run's own.
    second = store.get_group(other["group_id"])
    summaries = [groups.summarize(g, store.group_runs(g.id)) for g in (group, second)]
    side = groups.scores_side_by_side(summaries, [members[0]])
    group_rows = [f"group {g.id[:6]} · {g.model}" for g in (group, second)]
    assert list(side.table.index[:3]) == [*group_rows, f"logistic_regression · {members[0].id[:6]}"]
    assert len(side.baseline_rows) == 2 and side.baseline_rows[0].endswith("mean over the folds")
    for row, summary in zip(group_rows, summaries, strict=True):
        assert side.table.loc[row, "accuracy"] == pytest.approx(summary.metrics["accuracy"].mean)
        assert side.intervals[row]["accuracy"] == (summary.metrics["accuracy"].ci_low,
                                                   summary.metrics["accuracy"].ci_high)
    assert side.table.loc[side.baseline_rows[0], "accuracy"] == pytest.approx(
        np.mean([r.baseline["test"]["accuracy"] for r in members]))
    assert set(side.best["accuracy"]) <= {*group_rows, side.table.index[2]}
    # Two members with the same test rows compare as single runs; a group and a run do not, and say why.
    runs = cli(home, "compare", members[0].id, other["member_ids"][0], "--metric", "log_loss", "--json")
    assert runs.returncode == 0, runs.stderr
    assert json.loads(runs.stdout)["pairs"][0]["verdict"] != "clearly_better"  # single runs: at most "probably"
    mixed = cli(home, "compare", group.id, members[1].id)
    assert mixed.returncode == 2 and "repeat the run too" in mixed.stderr
    jobs.delete_run(store, members[1].id)  # its kept test predictions go with it
    assert load_test_predictions(jobs.test_predictions_path(store, members[1].id)) is None
    assert not list(store.settings.test_predictions_dir.glob(f"*{members[1].id}*"))
    board = cli(home, "leaderboard", dataset_id, "--target", "label", "--json")
    assert board.returncode == 0, board.stderr
    rows = json.loads(board.stdout)["rows"]
    assert {r["model"] for r in rows} == {"logistic_regression", "random_forest"} and rows[0]["tied_with_best"]
    assert all(r["kind"] == "group" and r["cost_s"] > 0 for r in rows)


def test_the_app_keeps_workbench_workers_workers_and_members_train_on_all_of_them(store, home, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKERS", "2")
    store = type(store).from_settings()
    frame = make_classification_frame(150)
    dataset_id = datasets.add_dataset(store, frame.to_csv(index=False).encode(), "tiny.csv").dataset.id
    first = jobs.submit_run(store, RunConfig(dataset_id, "label", "random_forest", repeats=10,
                                             params={"n_estimators": 200}))
    executor = jobs.LocalExecutor(store)
    try:
        assert executor.ensure_running() is True
        assert len(store.live_workers()) == 2 and executor.ensure_running() is False
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not all(r.is_final for r in store.group_runs(first.group_id)):
            time.sleep(0.5)
        members = store.group_runs(first.group_id)
        assert [r.status for r in members] == [RunStatus.SUCCEEDED] * 10
        assert len({r.worker_id for r in members}) == 2  # both workers took members
    finally:
        for worker in store.live_workers():
            os.kill(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while store.live_workers() and time.monotonic() < deadline:
        time.sleep(0.2)


# -- in a browser ------------------------------------------------------------------------------------------------------


@pytest.mark.browser
def test_two_groups_started_from_the_train_form_get_a_verdict_in_a_browser(store, home):
    """The user's way: two models with 5 repeats each, started from the Train form (the app starts the worker),
    then both groups picked on Runs & Compare: a verdict in plain words, and the leaderboard."""
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser import (
        CHROMIUM,
        CHROMIUM_ARGS,
        LONG,
        open_page,
        served_app,
        set_number,
        settle,
        start_training,
        wait_for,
    )

    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium")
    frame = make_classification_frame(200)
    datasets.add_dataset(store, frame.to_csv(index=False).encode(), "customers.csv")
    with served_app(home) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_role("heading", name="Workbench").wait_for()
            open_page(page, "Train")
            for n, model in enumerate(("logistic_regression", "random_forest"), start=1):
                settle(page)  # typed, then Enter: the live panel of the first group re-renders above the form
                page.get_by_label("Architecture", exact=True).first.click()
                page.keyboard.type(model)
                page.keyboard.press("Enter")
                settle(page)
                expect(page.get_by_text(MODELS[model].description.split(":")[0]).first).to_be_visible()
                set_number(page, "Repeats", "5")
                start_training(page, lambda: len(store.list_groups()), n)
                assert page.get_by_test_id("stException").count() == 0
            made = store.list_groups()
            assert sorted(g.model for g in made) == ["logistic_regression", "random_forest"]
            members = [r for g in made for r in store.group_runs(g.id)]
            assert len(members) == 10
            wait_for(lambda: all(r.status == RunStatus.SUCCEEDED for r in store.get_runs([m.id for m in members])),
                     LONG / 1000, "the ten members to be trained by the worker")

            open_page(page, "Runs & Compare")
            for group in made:  # typed, then Enter: the long option list re-renders under the mouse
                page.get_by_label("Runs or groups to compare", exact=True).first.click()
                page.keyboard.type(f"group {group.id}")
                page.keyboard.press("Enter")
                page.keyboard.press("Escape")
                settle(page)
            verdict = page.get_by_text(re_verdict())
            expect(verdict.first).to_be_visible(timeout=LONG)
            # .first: while Streamlit re-renders, the stale copy of the heading can stand beside the new one
            expect(page.get_by_text("Leaderboard", exact=True).first).to_be_visible()
            assert page.get_by_test_id("stException").count() == 0
        finally:
            browser.close()


def re_verdict():
    import re

    return re.compile(r"^(Clearly better|Probably better|No clear winner|Practically the same)\.")


def test_a_groups_interval_never_leaves_the_range_its_metric_can_take():
    from workbench.store import Run, RunGroup
    from workbench.store.entities import utcnow

    group = RunGroup("g", "d", "label", "mlp", "binary", {}, "key", 0.25, 5, utcnow())
    members = [Run(f"r{i}", "d", RunStatus.SUCCEEDED, "mlp", "label", "binary", {}, {}, None, utcnow(), None, None,
                   None, None, False, 1, 1, None, 0, 1.0, "accuracy", a, "fp",
                   {"test": {"accuracy": a, "log_loss": loss}}, {}, {}, {}, None, member=f"r0f{i}")
               for i, (a, loss) in enumerate([(1.0, 0.01), (0.95, 0.2), (1.0, 0.02), (0.97, 0.01), (1.0, 0.3)])]
    summary = groups.summarize(group, members)
    accuracy, loss = summary.metrics["accuracy"], summary.metrics["log_loss"]
    assert accuracy.ci_high == 1.0 and accuracy.ci_low < accuracy.mean < 1.0
    assert loss.ci_low == 0.0 < loss.mean < loss.ci_high


def test_a_member_refuses_a_table_that_is_not_the_one_its_folds_were_made_for():
    frame = make_classification_frame(60)
    assignment = fold_assignments(frame["label"], 5, seed=1, task=Task.BINARY)
    with pytest.raises(UserError, match="no longer has the 60 rows with a target"):
        member_split(frame.assign(label=frame["label"].where(frame.index > 0)), RunConfig("d", "label", "mlp"),
                     Task.BINARY, Member(assignment, "r0f0"))
