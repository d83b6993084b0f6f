"""Sweeps (workbench/sweeps.py): search spaces from the schema, real Optuna studies on a real SQLite file beside the
store's tables, pruning, cancel, a killed worker's trial, two workers sharing a study, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState
from sqlalchemy import create_engine, inspect

from tests.conftest import make_classification_frame
from workbench import datasets, sweeps
from workbench.errors import UserError
from workbench.jobs import recover_stale_runs
from workbench.models.registry import MODELS, resolve_params
from workbench.runconfig import RunConfig
from workbench.store import RunStatus, Store, SweepStatus, schema
from workbench.store.schema import VERSION_TABLE
from workbench.sweeps import SearchSpace, SweepConfig, parse_dimension

ROOT = Path(__file__).resolve().parents[1]
# A linear model with everything but the learning rate fixed: a few epochs on a tiny table.
LINEAR_FIXED = {"epochs": 4, "weight_decay": 1e-4, "patience": 0, "weight_averaging": 0.0}


@pytest.fixture
def dataset_id(store):
    frame = make_classification_frame(300)
    return datasets.add_dataset(store, frame.to_csv(index=False).encode(), "tiny").dataset.id


def linear_sweep(dataset_id: str, **kwargs) -> SweepConfig:
    params = {**LINEAR_FIXED, **kwargs.pop("fixed", {})}
    return SweepConfig(RunConfig(dataset_id, "label", "linear", params=params), **kwargs)


def trial_states(store: Store, sweep_id: str) -> list[TrialState]:
    study = optuna.load_study(study_name=store.get_sweep(sweep_id).study_name, storage=sweeps.optuna_storage(store))
    return [t.state for t in study.get_trials(deepcopy=False)]


# -- search spaces -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_models_default_space_is_valid_and_starts_from_its_defaults(model):
    space = SearchSpace.for_model(model)
    assert space.searched, model
    defaults = resolve_params(model, {}).__dict__
    trial = space.trial_params(defaults)
    for name, dimension in space.searched.items():
        assert name not in {"seed", "epochs", "device"}
        dimension.distribution()  # Optuna accepts it
        if dimension.kind in ("float", "int"):
            assert dimension.low < dimension.high
            assert not dimension.log or dimension.low > 0
    assert trial, f"{model}: its defaults lie outside its own space"
    # A trial's values always make a valid run: the defaults, and each range's ends.
    resolve_params(model, space.run_params({**trial, **{n: d.low if d.low is not None else d.choices[-1]
                                                        for n, d in space.searched.items()}}))
    resolve_params(model, space.run_params({**trial, **{n: d.high if d.high is not None else d.choices[0]
                                                        for n, d in space.searched.items()}}))


def test_learning_rate_and_weight_decay_are_searched_on_a_log_scale():
    space = SearchSpace.for_model("mlp").searched
    assert space["lr"].log and space["lr"].low < 2e-3 < space["lr"].high
    assert space["weight_decay"].log
    assert space["batch_norm"].choices == (False, True)
    assert "256,256" in space["hidden_sizes"].choices


@settings(max_examples=40, deadline=None)
@given(low=st.floats(1e-6, 1.0), high=st.floats(1e-6, 1.0), log=st.booleans())
def test_a_range_parses_or_is_refused_in_one_sentence(low, high, log):
    text = f"{low!r}:{high!r}" + (":log" if log else "")
    if low < high:
        d = parse_dimension("mlp", "lr", text)
        assert (d.kind, d.low, d.high, d.log) == ("float", low, high, log)
    else:
        with pytest.raises(UserError) as error:
            parse_dimension("mlp", "lr", text)
        assert str(error.value).count(".") <= 3 and "\n" not in str(error.value)


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=30))
def test_any_space_text_parses_or_gives_one_plain_sentence(text):
    for name in ("dropout", "hidden_sizes", "activation", "batch_norm", "nope\x1b[31m"):
        try:
            d = parse_dimension("mlp", name, text)
        except UserError as error:
            assert "\n" not in str(error) and "Traceback" not in str(error)
        else:
            if d.searched:
                d.distribution()


@pytest.mark.parametrize("space,fixed,message", [
    ({"lr": "0.1:0.01"}, {}, "from a lower to a higher"),
    ({"lr": "0:0.1:log"}, {}, "within"),
    ({"dropout": "0:0.5:log"}, {}, "above 0"),
    ({"activation": "relu,swishy"}, {}, "must be one of"),
    ({"activation": "0:1"}, {}, "rather than a range"),
    ({"nope": "1:2"}, {}, "no hyperparameter 'nope'"),
    ({"lr": "0.001:0.01"}, {"lr": 0.01}, "both searched and fixed"),
    ({}, {"hidden_sizes": "x"}, "whole numbers"),
])
def test_bad_spaces_are_refused(space, fixed, message):
    with pytest.raises(UserError, match=message):
        SearchSpace.for_model("mlp", space, fixed)


def test_choices_of_lists_and_a_single_value_fixes():
    d = parse_dimension("mlp", "hidden_sizes", "64/128,64")
    assert d.choices == ("64", "128,64")
    assert SearchSpace.for_model("mlp", {"hidden_sizes": "64/128,64"}).run_params(
        {**SearchSpace.for_model("mlp").trial_params(resolve_params("mlp", {}).__dict__), "hidden_sizes": "128,64"}
    )["hidden_sizes"] == [128, 64]
    assert parse_dimension("mlp", "dropout", "0.2") == sweeps.Dimension("dropout", "fixed", value=0.2)


# -- the database ------------------------------------------------------------------------------------------------


def test_optuna_tables_live_beside_the_stores_and_migrations_still_run(home):
    store = Store.from_settings()
    url = store.settings.database_url
    study = optuna.create_study(storage=sweeps.optuna_storage(store), study_name="side-by-side")
    study.enqueue_trial({"x": 1.0})
    store.close()
    again = Store.from_settings()  # our migrations open and check the same database again
    assert again.schema_revision() == schema.head_revision()
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"datasets", "runs", "sweeps", VERSION_TABLE, "studies", "trials", "alembic_version"} <= tables
    assert optuna.load_study(study_name="side-by-side", storage=url).get_trials()[0].state == TrialState.WAITING
    # Optuna's connections commit as the store's do (WAL, synchronous NORMAL = 1): not one disk wait per report.
    with sweeps.optuna_storage(again).engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


# -- running sweeps ----------------------------------------------------------------------------------------------


def test_a_sweep_finds_the_planted_learning_rate(store, dataset_id):
    """1e-5 cannot learn in four epochs; 0.1 can. The defaults (0.01) lie outside this narrow space."""
    sweep = sweeps.submit_sweep(store, linear_sweep(dataset_id, n_trials=4, space={"lr": "0.00001,0.1"}, seed=3))
    worker = store.register_worker()
    done = sweeps.run_sweep(store, sweep.id, worker.id, poll_s=0.05)
    summary = sweeps.sweep_summary(store, sweep.id)
    assert done.status == SweepStatus.FINISHED and summary.n_complete == 4
    tried = {t.params["lr"] for t in summary.trials}
    assert tried == {1e-5, 0.1}, "the seeded sampler should try both"
    assert summary.best.params["lr"] == 0.1 and summary.best.value > 0.8
    assert max(t.value for t in summary.trials if t.params["lr"] == 1e-5) < summary.best.value - 0.15
    best = store.get_run(done.best_run_id)
    assert best.sweep_id == sweep.id and best.params["lr"] == 0.1 and best.status == RunStatus.SUCCEEDED
    assert summary.to_json()["best_params"] == {"lr": 0.1}
    assert [n for n, _ in summary.best_so_far] == [t.number for t in summary.trials]


def test_a_bad_trial_is_pruned_and_keeps_its_curves(store, dataset_id):
    """Four good configurations first (the defaults and three known good), then one that cannot learn: the median
    pruner stops it after its warm-up epochs."""
    config = linear_sweep(dataset_id, n_trials=5, fixed={"epochs": 5}, space={"lr": "0.000001:0.1:log"},
                          known_good=[{"lr": 0.05}, {"lr": 0.03}, {"lr": 0.02}, {"lr": 1e-6}])
    sweep = sweeps.submit_sweep(store, config)
    assert sweep.config["prune"] is True  # on by default for a neural model
    sweeps.run_sweep(store, sweep.id, store.register_worker().id, poll_s=0.05)
    runs = store.sweep_runs(sweep.id)
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 4 + [RunStatus.PRUNED]
    pruned = store.get_run(runs[-1].id)
    assert len(pruned.epochs) == sweeps.MEDIAN_WARMUP_EPOCHS < 5  # stopped early, its epochs kept
    assert "Pruned" in pruned.error
    assert trial_states(store, sweep.id)[-1] == TrialState.PRUNED
    assert sweeps.sweep_summary(store, sweep.id).n_pruned == 1


def test_cancel_stops_the_running_trial_and_starts_no_more(store, dataset_id):
    sweep = sweeps.submit_sweep(store, linear_sweep(dataset_id, n_trials=50))
    worker = store.register_worker()
    started = sweeps.start_next_trial(store, worker.id)
    assert started.run.status == RunStatus.RUNNING and started.run.trial_number == 0
    assert sweeps.cancel_sweep(store, sweep.id).status == SweepStatus.CANCELLED
    assert sweeps.train_trial(store, started) == RunStatus.CANCELLED
    assert sweeps.start_next_trial(store, worker.id) is None
    assert store.claim_trial_slot(sweep.id) is None  # also for a worker that read the sweep before the cancel
    assert [r.status for r in store.sweep_runs(sweep.id)] == [RunStatus.CANCELLED]
    assert trial_states(store, sweep.id)[0] == TrialState.FAIL
    with pytest.raises(UserError, match="already ended"):
        sweeps.cancel_sweep(store, sweep.id)


def test_a_sweep_ends_when_its_time_is_up(store, dataset_id):
    sweep = sweeps.submit_sweep(store, linear_sweep(dataset_id, n_trials=50, timeout_s=0.01))
    time.sleep(0.05)
    assert sweeps.start_next_trial(store, store.register_worker().id) is None
    ended = store.get_sweep(sweep.id)
    assert ended.status == SweepStatus.FINISHED and ended.trials_started == 0 and ended.error


def test_a_killed_workers_trial_does_not_hang_the_sweep(home, store, dataset_id):
    config = linear_sweep(dataset_id, n_trials=1, fixed={"epochs": 100_000}, prune=False)
    sweep = sweeps.submit_sweep(store, config)
    worker = subprocess.Popen([sys.executable, "-m", "workbench", "worker", "--once"], cwd=ROOT,
                              env=dict(os.environ, WORKBENCH_HOME=str(home)), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(r.epochs_done >= 1 for r in store.sweep_runs(sweep.id)):
            assert time.monotonic() < deadline and worker.poll() is None, "the worker never trained the trial"
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert recover_stale_runs(store)  # its process is gone: the run ends interrupted
    ended = sweeps.settle(store, sweep.id)
    assert ended.status == SweepStatus.FINISHED and ended.error  # its one slot is counted; nothing hangs
    assert [r.status for r in store.sweep_runs(sweep.id)] == [RunStatus.INTERRUPTED]
    assert trial_states(store, sweep.id) == [TrialState.FAIL]


def test_two_workers_share_a_study_without_overshooting_or_locking(home, dataset_id, capsys):
    """20 trials, two processes (this one and one more), SQLite: every trial completes, no trial is lost or run
    twice, and nothing reports a locked database."""
    from workbench.cli import main

    code = main(["sweep", "--dataset", dataset_id, "--target", "label", "--model", "linear", "--trials", "20",
                 "--workers", "2", "--fix", "epochs=2", "--fix", "patience=0", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"sweep_id", "status", "model", "n_trials", "n_complete", "n_pruned", "n_failed",
                         "best_run_id", "best_params", "best_value", "metric", "direction", "duration_s"}
    assert (data["status"], data["n_trials"], data["n_complete"], data["n_failed"]) == ("finished", 20, 20, 0)
    store = Store.from_settings()
    runs = store.sweep_runs(data["sweep_id"])
    assert sorted(r.trial_number for r in runs) == list(range(20))
    assert len({r.worker_id for r in runs}) == 2, "both workers should have trained trials"
    assert all(r.status == RunStatus.SUCCEEDED and not r.error for r in runs)
    assert len({json.dumps(r.config["params"], sort_keys=True) for r in runs}) == 20  # no duplicate draws
    assert "locked" not in err.lower()


def test_a_sweep_is_not_finished_while_its_last_trial_is_being_started(store, dataset_id, monkeypatch):
    """Another worker's settle between taking the last slot and asking the study for its trial (a race a two-node
    sweep met in CI) leaves the sweep running; a slot whose worker died there stops counting after the heartbeat
    timeout."""
    sweep = sweeps.submit_sweep(store, linear_sweep(dataset_id, n_trials=1))
    assert store.claim_trial_slot(sweep.id) == 0  # the slot is taken; its trial and run are not there yet
    assert sweeps.settle(store, sweep.id).status == SweepStatus.RUNNING
    later = sweeps.utcnow() + timedelta(seconds=store.settings.heartbeat_timeout_s + 1)
    monkeypatch.setattr(sweeps, "utcnow", lambda: later)
    settled = sweeps.settle(store, sweep.id)
    assert settled.status != SweepStatus.RUNNING and settled.error  # no trial finished


def test_store_never_hands_out_more_slots_than_trials(store, dataset_id):
    sweep = sweeps.submit_sweep(store, linear_sweep(dataset_id, n_trials=5))
    slots, threads = [], []
    for _ in range(8):
        thread = threading.Thread(target=lambda: slots.extend(
            s for s in (store.claim_trial_slot(sweep.id) for _ in range(3)) if s is not None))
        threads.append(thread)
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(slots) == [0, 1, 2, 3, 4]


def test_retrain_best_queues_a_group_with_the_best_configuration(store, dataset_id):
    sweep = sweeps.submit_sweep(store, linear_sweep(dataset_id, n_trials=2))
    with pytest.raises(UserError, match="no finished trial"):
        sweeps.retrain_best(store, sweep.id)
    sweeps.run_sweep(store, sweep.id, store.register_worker().id, poll_s=0.05)
    group, members = sweeps.retrain_best(store, sweep.id, repeats=3)
    best = store.get_run(store.get_sweep(sweep.id).best_run_id)
    assert group.n_members == len(members) >= 3
    assert all(m.status == RunStatus.QUEUED and m.sweep_id is None for m in members)
    assert members[0].config["params"]["lr"] == best.config["params"]["lr"]


def test_try_every_model_queues_each_fitting_model_once(store, dataset_id):
    runs = sweeps.try_every_model(store, dataset_id, "label")
    assert [r.model for r in runs] == [n for n, s in MODELS.items() if "binary" in s.tasks and n != "ensemble"]
    assert "ridge" not in {r.model for r in runs}  # and the ensemble of them is offered once they have finished
    assert all(r.status == RunStatus.QUEUED and r.config["params"] == {} for r in runs)


def test_deleting_a_dataset_waits_for_its_running_sweep(store, dataset_id):
    sweep = sweeps.submit_sweep(store, linear_sweep(dataset_id, n_trials=3))
    with pytest.raises(UserError, match="running sweep"):
        datasets.delete_dataset(store, dataset_id)
    sweeps.cancel_sweep(store, sweep.id)
    assert sweep.study_name in optuna.get_all_study_names(sweeps.optuna_storage(store))
    datasets.delete_dataset(store, dataset_id)
    assert store.list_sweeps() == []
    assert sweep.study_name not in optuna.get_all_study_names(sweeps.optuna_storage(store))  # nothing left behind


# -- CLI ---------------------------------------------------------------------------------------------------------


def test_cli_sweep_tries_an_earlier_runs_settings_right_after_the_defaults(store, dataset_id, capsys):
    from workbench import jobs
    from workbench.cli import main

    earlier = jobs.run_in_foreground(store, jobs.submit_run(store, RunConfig(dataset_id, "label", "logistic_regression",
                                                                             params={"C": 0.05})))
    assert main(["sweep", "--dataset", dataset_id, "--target", "label", "--model", "logistic_regression",
                 "--trials", "2", "--try-run", earlier.id, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert store.sweep_runs(result["sweep_id"])[1].params["C"] == pytest.approx(0.05)
    assert main(["sweep", "--dataset", dataset_id, "--target", "label", "--model", "linear", "--try-run",
                 earlier.id]) == 2
    assert "can only start from a linear run" in capsys.readouterr().err


def test_cli_background_list_show_and_cancel(store, dataset_id, capsys, monkeypatch):
    from workbench import jobs
    from workbench.cli import main

    monkeypatch.setattr(jobs.LocalExecutor, "ensure_running", lambda self: False)  # no worker: nothing runs
    assert main(["sweep", "--dataset", dataset_id, "--target", "label", "--model", "linear", "--trials", "3",
                 "--background", "--json"]) == 0
    queued = json.loads(capsys.readouterr().out)
    assert queued["status"] == "running" and queued["n_complete"] == 0
    assert main(["sweeps", "--json"]) == 0
    assert [s["sweep_id"] for s in json.loads(capsys.readouterr().out)] == [queued["sweep_id"]]
    assert main(["show-sweep", queued["sweep_id"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["trials"][0]["state"] == "waiting" and "lr" in shown["space"]
    assert main(["cancel-sweep", queued["sweep_id"]]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert store.get_sweep(queued["sweep_id"]).status == SweepStatus.CANCELLED


@pytest.mark.parametrize("args,message", [
    (["--space", "lr=1:0.1"], "from a lower to a higher"),
    (["--space", "lr"], "NAME=VALUE"),
    (["--fix", "nope=1"], "no hyperparameter 'nope'"),
    (["--trials", "0"], "number of trials"),
    (["--workers", "0"], "--workers"),
])
def test_cli_bad_sweeps_exit_2_with_one_sentence(store, dataset_id, capsys, args, message):
    from workbench.cli import main

    code = main(["sweep", "--dataset", dataset_id, "--target", "label", "--model", "mlp", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert store.list_sweeps() == []


def test_an_mlp_sweep_searches_its_usual_settings_and_not_the_recipe_options():
    searched = set(sweeps.SearchSpace.for_model("mlp").searched)
    assert searched == {"lr", "weight_decay", "hidden_sizes", "activation", "dropout", "batch_norm"}
    wider = sweeps.SearchSpace.for_model("mlp", space={"adam_beta2": "0.9:0.999"})  # the user may still ask
    assert "adam_beta2" in wider.searched
