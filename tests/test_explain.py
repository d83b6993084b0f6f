"""Permutation importance and partial dependence over a trained run (workbench/explain.py): on real runs trained
by the worker's own path, on tiny tables where the answer is known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench import datasets, jobs
from workbench.cli import main
from workbench.explain import (
    MIN_ROWS,
    Pace,
    explain_run,
    importance_csv,
    item_explanation,
    plan_budget,
    run_explanation,
)
from workbench.runconfig import RunConfig
from workbench.store import RunStatus

FAMILY_RUNS = [("linear", {"epochs": 15}), ("mlp", {"epochs": 15, "hidden_sizes": [32]}),
               ("gradient_boosting", {"max_iter": 50})]


def three_of_ten(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """Ten columns, of which only c0, c1 and c2 decide the target; one of the others is a date."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"c{i}": rng.normal(size=n) for i in range(9)})
    frame["day"] = pd.date_range("2021-01-01", periods=n, freq="D").astype(str)
    score = 2 * frame["c0"] - 2 * frame["c1"] + 2 * frame["c2"] + rng.normal(scale=0.3, size=n)
    frame["y"] = np.where(score > 0, "yes", "no")
    return frame


def train(store, frame: pd.DataFrame, model: str, params: dict, target: str = "y", **config):
    dataset = datasets.add_dataset(store, frame.to_csv(index=False).encode(), "t").dataset
    run = jobs.submit_run(store, RunConfig(dataset_id=dataset.id, target=target, model=model, params=params,
                                           **config))
    return jobs.run_in_foreground(store, run)


@pytest.mark.parametrize(("model", "params"), FAMILY_RUNS, ids=[m for m, _ in FAMILY_RUNS])
def test_the_three_columns_that_matter_rank_on_top_for_every_model_family(store, model, params):
    run = train(store, three_of_ten(), model, params)
    assert run.status == RunStatus.SUCCEEDED
    explanation = run_explanation(store.get_run(run.id))  # the worker's step stored it
    assert explanation is not None
    columns = [item.column for item in explanation.importance]
    assert set(columns[:3]) == {"c0", "c1", "c2"}, explanation.importance
    # the date column and its parts (year, month, ...) are one column, as the user's table has it
    assert sorted(columns) == sorted([f"c{i}" for i in range(9)] + ["day"])
    assert all(item.std >= 0 for item in explanation.importance)
    assert set(explanation.partial_dependence) == set(columns[:3])
    for curve in explanation.partial_dependence.values():
        assert curve["kind"] == "numeric" and len(curve["grid"]) >= 2
        assert list(curve["curves"]) == ["yes"]  # binary: the positive class's probability
        assert all(0 <= p <= 1 for p in curve["curves"]["yes"])


def test_a_regression_run_is_explained_in_rmse_with_a_prediction_curve(store, regression_frame):
    run = train(store, regression_frame, "gradient_boosting", {"max_iter": 50})
    explanation = run_explanation(store.get_run(run.id))
    assert explanation.metric == "rmse"
    assert explanation.importance[0].column == "x1" and explanation.importance[0].importance > 0
    assert all(list(c["curves"]) == ["prediction"] for c in explanation.partial_dependence.values())
    assert explanation.partial_dependence["colour"]["kind"] == "categorical"


@settings(max_examples=60, deadline=None)
@given(n_test=st.integers(1, 2_000_000), n_columns=st.integers(1, 500),
       per_call=st.floats(0, 1), per_row=st.floats(0, 1e-3), budget=st.floats(0.1, 1e4))
def test_the_plan_stays_within_the_budget_or_at_its_floor(n_test, n_columns, per_call, per_row, budget):
    plan = plan_budget(n_test, n_columns, Pace(per_call, per_row), budget)
    assert min(n_test, MIN_ROWS) <= plan.n_rows <= min(n_test, 10_000)
    assert 2 <= plan.n_repeats <= 5
    floor = plan_budget(n_test, n_columns, Pace(per_call, per_row), 0.0)
    assert plan.estimated_s <= budget * (1 + 1e-9) or plan == floor


def test_importance_samples_the_test_rows_to_fit_the_budget(store, binary_frame):
    run = train(store, binary_frame, "logistic_regression", {}, target="label")
    explanation = explain_run(store, run.id)  # on demand, as for a run trained before explanations existed
    assert explanation.n_test_rows == 90 and explanation.n_rows == 90
    from workbench.datasets import load_table
    from workbench.explain import explain_model, test_rows
    from workbench.predict import load_model_for_run

    rows, y = test_rows(store, store.get_run(run.id), load_table(store, run.dataset_id))
    small = explain_model(load_model_for_run(store, run.id), rows, y, 0.0, max_rows=40)
    assert small.n_rows == 40 and any("random 40 of the 90 test rows" in n for n in small.notes)


def test_a_failing_importance_step_leaves_the_run_succeeded_without_importance(store, binary_frame):
    run = train(store, binary_frame, "logistic_regression", {}, target="label")
    (store.settings.runs_dir / run.id / "model.skops").write_bytes(b"not a model")  # damaged after training
    from workbench.explain import explain_after_training

    store.record_explanation(run.id, {})
    assert explain_after_training(store, run.id, binary_frame) is None
    after = store.get_run(run.id)
    assert after.status == RunStatus.SUCCEEDED and after.explanation == {}


def test_a_group_averages_its_members_importance_with_an_interval(store, binary_frame):
    dataset = datasets.add_dataset(store, binary_frame.to_csv(index=False).encode(), "t").dataset
    group, members = jobs.submit_group(store, RunConfig(dataset_id=dataset.id, target="label",
                                                        model="logistic_regression", repeats=3))
    for member in members:
        jobs.run_in_foreground(store, member)
    explanation = item_explanation(store, group.id)
    assert explanation.importance[0].n_members == group.n_members > 1
    for item in explanation.importance:
        assert item.low <= item.importance <= item.high
    text = importance_csv(explanation)
    assert text.splitlines()[0] == "column,importance,std,low,high,n_members"


def test_the_csv_keeps_hostile_column_names_as_text(store):
    frame = three_of_ten(300).rename(columns={"c0": "=HYPERLINK(\"x\")"})
    run = train(store, frame, "logistic_regression", {})
    text = importance_csv(run_explanation(store.get_run(run.id)))
    assert "'=HYPERLINK" in text


def test_cli_explain_json_has_the_issue_keys(store, binary_frame, capsys):
    run = train(store, binary_frame, "logistic_regression", {}, target="label")
    assert main(["explain", run.id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"importance", "partial_dependence", "advice"}
    assert set(data["importance"][0]) == {"column", "importance", "std"}
    assert set(data["advice"][0]) == {"code", "message", "evidence", "suggestion"}
    assert main(["explain", "nosuchid"]) == 2
    assert "no run or run group" in capsys.readouterr().err
