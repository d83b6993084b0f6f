"""Quick start: a few strong defaults queued for a dataset and target, validated like any submit, trained by the
real worker on the same test rows."""

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
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import make_classification_frame, make_regression_frame
from workbench import datasets, jobs
from workbench.errors import UserError
from workbench.models.registry import get_model
from workbench.quickstart import LARGE_TABLE_ROWS, quick_start, quick_start_plan
from workbench.runconfig import RunConfig, SplitConfig
from workbench.store import RunStatus
from workbench.tasks import Task

ROOT = Path(__file__).resolve().parents[1]


def add(store, frame: pd.DataFrame, name: str = "table.csv") -> str:
    return datasets.add_dataset(store, frame.to_csv(index=False).encode(), name).dataset.id


@given(task=st.sampled_from(list(Task)), n_rows=st.integers(20, 5_000_000))
def test_the_plan_fits_the_task_and_starts_with_the_fastest_strong_model(task, n_rows):
    plan = quick_start_plan(task, n_rows)
    models = [model for model, _ in plan]
    assert models[0] == "gradient_boosting" and models[-1] == "mlp"
    assert len(set(models)) == len(models) >= 3
    for model, params in plan:
        assert task in get_model(model).tasks
        get_model(model).params(**params)  # every override is a real hyperparameter
    assert ("random_forest" in models) == (n_rows <= LARGE_TABLE_ROWS)


def test_the_plan_trains_less_on_larger_tables():
    small, medium = dict(quick_start_plan(Task.BINARY, 1_000)), dict(quick_start_plan(Task.BINARY, 50_000))
    large = dict(quick_start_plan(Task.REGRESSION, 1_000_000))
    assert small["mlp"] == {} and small["random_forest"] == {}
    assert medium["mlp"]["epochs"] < 200 and medium["random_forest"]["n_estimators"] < 300
    assert large["mlp"]["epochs"] <= medium["mlp"]["epochs"] and "ridge" in large


@pytest.mark.parametrize("frame, target, linear, task", [
    (make_classification_frame(n=200), "label", "logistic_regression", Task.BINARY),
    (make_classification_frame(n=200, n_classes=3), "label", "logistic_regression", Task.MULTICLASS),
    (make_regression_frame(n=200), "y", "ridge", Task.REGRESSION),
])
def test_quick_start_queues_ordinary_runs_on_one_split(store, frame, target, linear, task):
    dataset_id = add(store, frame)
    runs = quick_start(store, dataset_id, target)
    assert [r.model for r in runs] == ["gradient_boosting", linear, "random_forest", "mlp"]
    assert {r.status for r in runs} == {RunStatus.QUEUED} and {r.task for r in runs} == {task}
    assert {r.target for r in runs} == {target} and {r.dataset_id for r in runs} == {dataset_id}
    assert all(RunConfig.from_dict(r.config).split == SplitConfig() for r in runs)  # the same test rows
    queued = store.list_runs(statuses=(RunStatus.QUEUED,))
    assert sorted(r.id for r in queued) == sorted(r.id for r in runs)


def hostile_frame() -> pd.DataFrame:
    frame = make_classification_frame(n=60)
    frame.loc[::3, "x1"] = np.nan
    return frame.rename(columns={"label": "‮[click](http://evil.example)\u200b 目标"})


@pytest.mark.parametrize("frame, target, message", [
    (make_classification_frame(n=60), None, "Choose the column to predict"),
    (make_classification_frame(n=60), "nope", "There is no column called 'nope'"),
    (make_classification_frame(n=60).assign(label="same"), "label", "has only one value"),
    (make_classification_frame(n=60).assign(label=np.nan), "label", "empty on every row"),
    (make_classification_frame(n=1), "label", "only 1 row"),
])
def test_a_target_that_cannot_be_trained_is_refused_in_one_sentence_and_queues_nothing(store, frame, target, message):
    dataset_id = add(store, frame)
    with pytest.raises(UserError, match=message) as caught:
        quick_start(store, dataset_id, target)
    assert "\n" not in str(caught.value) and str(caught.value).endswith(".")
    assert store.count_runs() == 0


def test_an_unknown_dataset_is_refused(store):
    with pytest.raises(UserError):
        quick_start(store, "no-such-dataset", "label")
    assert store.count_runs() == 0


def test_submit_runs_queues_all_or_none(store):
    """A quick start never leaves half its runs queued: every config is validated before the first is queued."""
    dataset_id = add(store, make_classification_frame(n=60))
    good = RunConfig(dataset_id, "label", "gradient_boosting")
    with pytest.raises(UserError, match="does not do binary"):
        jobs.submit_runs(store, [good, RunConfig(dataset_id, "label", "ridge")])
    assert store.count_runs() == 0


def test_quick_start_runs_train_and_are_scored_on_the_same_rows(store):
    """On messy data (gaps in numbers, a hostile unicode target name) the in-process worker trains all of them."""
    frame = hostile_frame()
    target = frame.columns[-1]
    dataset_id = add(store, frame)
    runs = quick_start(store, dataset_id, target)
    assert jobs.run_worker(store, once=True) == len(runs)
    finished = store.get_runs([r.id for r in runs])
    assert [r.status for r in finished] == [RunStatus.SUCCEEDED] * len(runs), [r.error for r in finished]
    assert len({r.split_fingerprint for r in finished}) == 1
    assert all(r.primary_value is not None for r in finished)


def test_cli_quickstart_starts_a_worker_process_that_trains_every_run(store, home):
    """`python -m workbench quickstart` queues, starts the local worker (a real process) and returns at once."""
    dataset_id = add(store, make_classification_frame(n=120))
    done = subprocess.run([sys.executable, "-m", "workbench", "quickstart", "--dataset", dataset_id, "--target",
                           "label", "--json"], cwd=ROOT, env=dict(os.environ, WORKBENCH_HOME=str(home)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["worker_started"] is True
    run_ids = [r["run_id"] for r in answer["runs"]]
    assert [r["model"] for r in answer["runs"]] == ["gradient_boosting", "logistic_regression", "random_forest", "mlp"]
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            runs = store.get_runs(run_ids)
            if all(r.is_final for r in runs):
                break
            time.sleep(0.5)
        assert [r.status for r in store.get_runs(run_ids)] == [RunStatus.SUCCEEDED] * 4
    finally:
        for worker in store.live_workers():
            os.kill(worker.pid, signal.SIGTERM)
