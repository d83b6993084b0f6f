"""Honest comparison wired in (issue 16): an interval on every score, repeated runs as groups trained by the real
worker on their stored folds, "is A better than B" for groups and runs, the leaderboard, and their CLI commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
from workbench.evaluation import FoldAssignments, fold_assignments
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
    outcome = execute(RunConfig("d", target, model), frame, tmp_path / "run")
    assert outcome.status == RunStatus.SUCCEEDED
    test, intervals = outcome.metrics["test"], outcome.intervals["test"]
    assert set(intervals) == set(test)
    for metric, (low, high) in intervals.items():
        assert low <= test[metric] <= high, metric
    assert intervals[outcome.primary_metric][0] < intervals[outcome.primary_metric][1]  # 45 rows: a real width
    y, predictions = load_test_predictions(tmp_path / "run")
    assert len(y) == len(predictions) == outcome.n_test
    again = execute(RunConfig("d", target, model), frame, tmp_path / "again")
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
    assert shown.loc[names[new.id], "accuracy"] == "0.8420 (0.81-0.87)"
    assert shown.loc[names[old.id], "accuracy"] == "0.8000"
    scores = compare.compare_metrics([old, new])
    bars = charts.metric_bars(scores.table, "accuracy", scores.baseline_rows, scores.intervals).data[0]
    labels = list(scores.table["accuracy"].dropna().index)
    assert bars.error_y.array[labels.index(names[new.id])] == pytest.approx(0.87 - 0.842)
    assert bars.error_y.arrayminus[labels.index(names[old.id])] == 0


def store_result(run, intervals):
    from workbench.store import RunResult

    return RunResult(RunStatus.SUCCEEDED, intervals=intervals, primary_metric=run.primary_metric,
                     primary_value=run.primary_value)
