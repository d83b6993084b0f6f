"""`ensemble`: greedy selection with replacement over finished runs' kept validation predictions (the math, as
properties), and ensemble runs end to end: trained by the worker's code, scored, saved with copies of their members,
predicted, explained, exported, still whole after a member is deleted; refused in one sentence when they cannot be
built."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_tabm import messy_table
from workbench import contributions, datasets, ensembles, jobs, sweeps
from workbench.ensembles import Candidate
from workbench.errors import UserError
from workbench.evaluation import fold_assignments
from workbench.models.ensemble import average, score, select
from workbench.predict import export_run, load_model, load_model_for_run
from workbench.runconfig import RunConfig
from workbench.runner import Member, execute, load_predictions, save_predictions
from workbench.store import RunResult, RunStatus, Store
from workbench.tasks import Task, higher_is_better

TARGETS = {"binary": "label", "multiclass": "label", "regression": "y"}
# Small and quick members of every kind the ensemble reads: a linear model, trees, boosting.
MEMBERS = {
    "classification": [("logistic_regression", {}), ("random_forest", {"n_estimators": 20, "max_depth": 4}),
                       ("gradient_boosting", {"max_iter": 30})],
    "regression": [("ridge", {}), ("random_forest", {"n_estimators": 20, "max_depth": 4}),
                   ("gradient_boosting", {"max_iter": 30})],
}
ROUNDS = 20


# -- the selection --------------------------------------------------------------------------------------------


@st.composite
def members_predictions(draw):
    """A task, validation targets and 1-5 members' predictions of them (probabilities, or values)."""
    task = draw(st.sampled_from(list(Task)))
    n_rows = draw(st.integers(3, 30))
    n_members = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if task == Task.REGRESSION:
        y = rng.normal(size=n_rows) * draw(st.sampled_from([1e-3, 1.0, 1e4]))
        predictions = [y + rng.normal(scale=rng.uniform(0.01, 3.0) * max(1e-3, float(np.std(y))), size=n_rows)
                       for _ in range(n_members)]
        return task, y, predictions
    n_classes = 2 if task == Task.BINARY else draw(st.integers(3, 5))
    y = rng.integers(0, n_classes, n_rows)
    # Some members are sure and wrong (a probability of 0 for the right class), some are noise, some are good.
    predictions = []
    for _ in range(n_members):
        logits = rng.normal(scale=rng.uniform(0.1, 30.0), size=(n_rows, n_classes))
        logits[np.arange(n_rows), y] += rng.uniform(-3, 3)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        predictions.append(p / p.sum(axis=1, keepdims=True))
    return task, y, predictions


@settings(max_examples=150, deadline=None)
@given(members_predictions(), st.integers(1, 30))
def test_selection_weights_sum_to_one_and_never_score_below_the_best_member(case, rounds):
    task, y, predictions = case
    selection = select(task, y, predictions, rounds)
    weights = selection.weights
    assert weights.shape == (len(predictions),) and (weights >= 0).all()
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert selection.counts.sum() == selection.best_round <= rounds
    assert np.array_equal(selection.counts, np.round(selection.counts))  # picks are whole: weight = count / total
    ensemble = score(task, y, average(predictions, weights))
    members = [score(task, y, p) for p in predictions]
    best_metric = max(m[0] for m in members)
    assert ensemble[0] >= best_metric - 1e-9 * max(1.0, abs(best_metric))  # accuracy, or -RMSE
    if task != Task.REGRESSION:  # and the averaged probabilities are probabilities
        assert np.allclose(average(predictions, weights).sum(axis=1), 1.0)


def test_selection_with_replacement_picks_a_member_again():
    """y = 0 with one member at +1 and one at -3: the best mix is 3 of the first to 1 of the second."""
    y = np.zeros(10)
    selection = select(Task.REGRESSION, y, [np.full(10, 1.0), np.full(10, -3.0), np.full(10, 5.0)], 10)
    assert selection.counts.tolist() == [3, 1, 0]
    assert selection.weights.tolist() == [0.75, 0.25, 0.0]
    assert selection.scores[selection.best_round - 1] == (0.0, 0.0)  # exactly right on every row


def test_selection_keeps_the_best_single_member_when_mixing_never_helps():
    y = np.array([0, 1, 1, 0])
    perfect = np.eye(2)[y] * 0.9 + 0.05
    wrong = 1 - perfect
    selection = select(Task.BINARY, y, [wrong, perfect], 25)
    assert selection.counts.tolist() == [0, 1] and selection.best_round == 1


# -- ensemble runs end to end ---------------------------------------------------------------------------------


def train_members(store, dataset_id: str, task: str, split_seed: int = 0) -> list:
    kind = "regression" if task == "regression" else "classification"
    runs = []
    for model, params in MEMBERS[kind]:
        config = RunConfig(dataset_id, TARGETS[task], model, params=params)
        config.split.seed = split_seed
        run = jobs.run_in_foreground(store, jobs.submit_run(store, config))
        assert run.status == RunStatus.SUCCEEDED, run.error
        runs.append(run)
    return runs


def add_table(store, task: str) -> str:
    return datasets.add_dataset(store, messy_table(task).to_csv(index=False).encode(), f"{task}.csv").dataset.id


@pytest.fixture(scope="module")
def binary_template(tmp_path_factory) -> tuple[Path, str, list[str]]:
    """A workbench home with a binary table and its three member runs, trained once for the tests that copy it."""
    home = tmp_path_factory.mktemp("ensemble") / "wb-home"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WORKBENCH_HOME", str(home))
        env.delenv("WORKBENCH_DATABASE_URL", raising=False)
        store = Store.from_settings()
        dataset_id = add_table(store, "binary")
        run_ids = [r.id for r in train_members(store, dataset_id, "binary")]
        store.close()
    return home, dataset_id, run_ids


@pytest.fixture
def binary_runs(home, binary_template) -> tuple[Store, str, list[str]]:
    """A copy of `binary_template` as this test's home: its store, the dataset id and the member run ids."""
    source, dataset_id, run_ids = binary_template
    shutil.copytree(source, home)
    store = Store.from_settings()
    yield store, dataset_id, run_ids
    store.close()


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_an_ensemble_run_trains_scores_predicts_explains_exports_and_outlives_its_members(store, tmp_path, task):
    dataset_id = add_table(store, task)
    members = train_members(store, dataset_id, task)
    config = RunConfig(dataset_id, TARGETS[task], "ensemble", params={"max_rounds": ROUNDS})
    ensemble = jobs.run_in_foreground(store, jobs.submit_run(store, config))
    assert ensemble.status == RunStatus.SUCCEEDED, ensemble.error
    run = store.get_run(ensemble.id)

    # A run like any other: one epoch per round, test scores with intervals, its pool and weights said.
    metric = run.primary_metric
    assert len(run.epochs) == ROUNDS and run.intervals["test"][metric][0] <= run.primary_value
    assert sorted(run.params["members"].split(",")) == sorted(m.id for m in members)
    assert any(note.startswith("Ensemble weights: ") for note in run.details["notes"])
    sign = 1 if higher_is_better(metric) else -1
    best_member = max(sign * m.metrics["val"][metric] for m in members)
    assert sign * run.metrics["val"][metric] >= best_member - 1e-9

    # Its test predictions are the weighted average of its members' kept ones, on the same rows.
    saved = json.loads((store.settings.runs_dir / run.id / "config.json").read_text())
    weights = {m["run_id"]: m["weight"] for m in saved["members"]}
    assert sum(weights.values()) == pytest.approx(1.0)
    kept = {m.id: load_predictions(jobs.test_predictions_path(store, m.id)) for m in members}
    own = load_predictions(jobs.test_predictions_path(store, run.id))
    for split in ("val", "test"):
        assert all(np.array_equal(k[split].rows, own[split].rows) for k in kept.values())
        expected = average([kept[i][split].predictions for i in weights], list(weights.values()))
        np.testing.assert_allclose(own[split].predictions, expected, rtol=1e-12, atol=1e-12)

    # Predicting with the saved ensemble gives what it was scored with.
    table = datasets.load_table(store, dataset_id)
    test_rows = table.loc[own["test"].rows]
    model = load_model_for_run(store, run.id)
    predicted = model.predict_proba(model.check_schema(test_rows).frame)
    np.testing.assert_allclose(predicted, own["test"].predictions, rtol=1e-6, atol=1e-6)

    # Explained after training (permutation importance over the wrapper), and row by row: its runs' contributions
    # weighed as their predictions, adding up to its own prediction.
    assert run.explanation["importance"] and run.explanation["metric"] == metric
    rows = contributions.explain_rows(store, run.id, test_rows.head(3))
    row_predictions = predicted[:3] if task == "regression" else predicted[np.arange(3), predicted[:3].argmax(axis=1)]
    np.testing.assert_allclose(rows.predicted, row_predictions, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rows.baseline + rows.contributions.sum(axis=1), rows.predicted, rtol=1e-6, atol=1e-6)
    assert list(rows.contributions.columns) == model.input_columns and all(rows.sentences)

    # The native zip carries the members; loaded from it, it predicts the same.
    with zipfile.ZipFile(io.BytesIO(export_run(store, run.id))) as archive:
        names = archive.namelist()
        assert {f"workbench-run-{run.id}/members/{i}/config.json" for i in weights} <= set(names)
        archive.extractall(tmp_path / "export")
    exported = load_model(tmp_path / "export" / f"workbench-run-{run.id}")
    np.testing.assert_allclose(exported.predict_proba(model.check_schema(test_rows).frame), predicted)

    # Deleting every member run leaves the ensemble whole: its members' models were copied.
    for member in members:
        jobs.delete_run(store, member.id)
    again = load_model_for_run(store, run.id)
    np.testing.assert_allclose(again.predict_proba(again.check_schema(test_rows).frame), predicted)


def test_an_ensemble_needs_two_runs_on_the_same_rows(store):
    dataset_id = add_table(store, "binary")
    config = RunConfig(dataset_id, "label", "ensemble")
    with pytest.raises(UserError, match="at least two finished runs .* there is none"):
        jobs.submit_run(store, config)
    first = jobs.run_in_foreground(store, jobs.submit_run(store, RunConfig(dataset_id, "label", "logistic_regression")))
    with pytest.raises(UserError, match="there is one"):
        jobs.submit_run(store, config)
    other_rows = RunConfig(dataset_id, "label", "random_forest", params={"n_estimators": 5})
    other_rows.split.seed = 7
    moved = jobs.run_in_foreground(store, jobs.submit_run(store, other_rows))
    with pytest.raises(UserError, match="there is one"):  # tested on other rows: not a candidate
        jobs.submit_run(store, config)
    named = RunConfig(dataset_id, "label", "ensemble", params={"members": f"{first.id}, {moved.id}"})
    with pytest.raises(UserError, match=f"Run {moved.id} cannot be in this ensemble: it was trained or tested on "
                                        "other rows"):
        jobs.submit_run(store, named)
    with pytest.raises(UserError, match="There is no run 'nope'"):
        jobs.submit_run(store, RunConfig(dataset_id, "label", "ensemble", params={"members": f"{first.id},nope"}))
    with pytest.raises(UserError, match="at least two finished runs .* there is none"):  # none on the first fold
        jobs.submit_run(store, RunConfig(dataset_id, "label", "ensemble", repeats=3))
    with pytest.raises(UserError, match="leave the runs to choose from empty"):
        jobs.submit_run(store, replace(named, repeats=3))
    with pytest.raises(UserError, match="no settings worth searching"):
        sweeps.submit_sweep(store, sweeps.SweepConfig(run=config, n_trials=2))
    assert "ensemble" not in sweeps.models_for(store, dataset_id, "label")  # try every model trains the members


def test_runs_trained_before_validation_predictions_were_kept_are_left_out(binary_runs):
    store, dataset_id, runs = binary_runs
    old = jobs.test_predictions_path(store, runs[0])
    kept = load_predictions(old)
    save_predictions(old, {"test": kept["test"]})  # as a run from before this release left it
    ensemble = jobs.run_in_foreground(store, jobs.submit_run(store, RunConfig(dataset_id, "label", "ensemble",
                                                                              params={"max_rounds": 5})))
    assert ensemble.status == RunStatus.SUCCEEDED, ensemble.error
    assert sorted(ensemble.params["members"].split(",")) == sorted(runs[1:])
    named = RunConfig(dataset_id, "label", "ensemble", params={"members": ",".join(runs)})
    with pytest.raises(UserError, match="before validation predictions were kept"):
        jobs.submit_run(store, named)
    with pytest.raises(UserError, match="is an ensemble itself"):
        jobs.submit_run(store, RunConfig(dataset_id, "label", "ensemble",
                                         params={"members": f"{runs[1]},{ensemble.id}"}))


def test_a_saved_ensemble_naming_a_member_outside_its_folder_is_refused(binary_runs):
    """config.json names the members' folders: a crafted name ('..', a path) is refused as damage, never read."""
    store, dataset_id, _ = binary_runs
    ensemble = jobs.run_in_foreground(store, jobs.submit_run(store, RunConfig(dataset_id, "label", "ensemble",
                                                                              params={"max_rounds": 3})))
    path = store.settings.runs_dir / ensemble.id / "config.json"
    config = json.loads(path.read_text())
    # members/../../<id> is the member run's own folder, outside the ensemble's: it must not be read
    config["members"][0]["run_id"] = "../../" + config["members"][0]["run_id"]
    path.write_text(json.dumps(config))
    with pytest.raises(UserError, match="is damaged"):
        load_model_for_run(store, ensemble.id)


def test_cli_trains_an_ensemble(binary_runs, capsys):
    from tests.test_cli import run_cli

    _, dataset_id, runs = binary_runs
    code, out, err = run_cli(capsys, "train", "--dataset", dataset_id, "--target", "label", "--model", "ensemble",
                             "--set", f"members={runs[0]},{runs[1]}", "--set", "max_rounds=4", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["status"] == RunStatus.SUCCEEDED and shown["model"] == "ensemble"
    code, _, err = run_cli(capsys, "train", "--dataset", dataset_id, "--target", "label", "--model", "ensemble",
                           "--set", f"members={runs[0]}")
    assert code == 2 and err.startswith("error: An ensemble needs at least two runs") and err.count("\n") == 1


def test_picking_the_best_member_again_is_not_mistaken_for_progress():
    """Averaging a member with itself changes the average only by rounding: the first round is kept."""
    rng = np.random.default_rng(3)
    y = rng.normal(size=200) * 1e3
    good, poor = y + rng.normal(size=200), y + 50 * rng.normal(size=200)
    selection = select(Task.REGRESSION, y, [poor, good / 3 * 3], 40)
    assert selection.counts.tolist() == [0, 1] and selection.best_round == 1
    assert len(set(selection.scores)) == 1


def test_a_repeat_of_an_ensemble_chooses_from_the_runs_on_its_fold():
    """A repeated ensemble's member trains on its fold's rows, where the same repeat of other models' run groups
    trained: those runs are its candidates, and a run on another fold is not."""
    frame = messy_table("binary")
    assignment = fold_assignments(frame["label"], 2, 0, Task.BINARY)
    fold, other = (Member(assignment, assignment.member_name(*m)) for m in assignment.members[:2])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        found = []
        for name, model, member in (("a", "logistic_regression", fold), ("b", "random_forest", fold),
                                    ("c", "gradient_boosting", other)):
            outcome = execute(RunConfig("d", "label", model, params=dict(MEMBERS["classification"])[model]), frame,
                              folder / name, member=member, predictions_path=folder / f"{name}.npz")
            assert outcome.status == RunStatus.SUCCEEDED, outcome.error
            found.append(Candidate(name, model, "binary", folder / name, folder / f"{name}.npz"))
        outcome = execute(RunConfig("d", "label", "ensemble", params={"max_rounds": 5}), frame, folder / "e",
                          member=fold, predictions_path=folder / "e.npz", candidates=found)
        assert outcome.status == RunStatus.SUCCEEDED, outcome.error
        assert outcome.params["members"] == "a,b" and outcome.split_fingerprint == fold.fingerprint()
        with pytest.raises(UserError, match="there is one"):
            execute(RunConfig("d", "label", "ensemble"), frame, folder / "f", member=other, candidates=found)


def test_the_one_click_proposal_takes_runs_on_one_split_or_one_repeat_of_run_groups(store):
    dataset_id = add_table(store, "binary")

    def finish(run, fingerprint: str, status=RunStatus.SUCCEEDED):
        store.finish_run(run.id, RunResult(status, primary_metric="accuracy", primary_value=0.9,
                                           split_fingerprint=fingerprint))
        return store.get_run(run.id, with_epochs=False)

    single = [finish(jobs.submit_run(store, RunConfig(dataset_id, "label", m, exclude=exclude)), "fp")
              for m, exclude in (("logistic_regression", ["x1"]), ("random_forest", ["x1", "x2"]))]
    failed = finish(jobs.submit_run(store, RunConfig(dataset_id, "label", "mlp")), "fp", RunStatus.FAILED)
    assert ensembles.proposal([*single, failed]) == single
    assert ensembles.proposal([single[0], failed]) == []
    config = ensembles.config_for(store, [r.id for r in single])
    assert config.params == {"members": ",".join(r.id for r in single)} and config.repeats == 1
    assert config.exclude == ["x1"]  # a column any of them uses is the ensemble's

    repeats = [run for model in ("logistic_regression", "random_forest")
               for run in jobs.submit_group(store, RunConfig(dataset_id, "label", model, repeats=2))[1]]
    repeats = [finish(r, f"fold-{r.member}") for r in repeats]
    chosen = ensembles.proposal(repeats)
    assert len(chosen) == 2 and len({r.member for r in chosen}) == 1 and len({r.group_id for r in chosen}) == 2
    config = ensembles.config_for(store, [r.id for r in chosen])
    assert config.repeats == 2 and config.params == {}  # each repeat chooses from the runs on its own fold
