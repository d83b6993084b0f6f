"""The Ray executor on a real two-node Ray cluster on loopback (tests/ray_cluster.py), one CPU core each, with the
store on the PostgreSQL fixture: runs and sweep trials land on both nodes, cancel reaches either node, and a node
killed mid-run leaves its run interrupted (and its sweep trial failed). Marked `ray`: `-m "not ray"` skips them."""

from __future__ import annotations

import time
import uuid

import numpy as np
import optuna
import pandas as pd
import pytest
import ray
from optuna.trial import TrialState

from tests.conftest import _free_port
from tests.ray_cluster import LocalRayCluster
from workbench import datasets, jobs, sweeps
from workbench.errors import UserError
from workbench.ray_executor import RayExecutor, dispatcher_name, worker_node
from workbench.runconfig import RunConfig
from workbench.store import RunStatus, Store, SweepStatus

pytestmark = pytest.mark.ray
QUICK = {"epochs": 2, "batch_size": 64}
LONG = {"epochs": 1000, "batch_size": 32, "patience": 0}  # minutes of training: these runs end only when cancelled or killed


@pytest.fixture(scope="module")
def cluster():
    local = LocalRayCluster()
    try:
        local.add_node()
        local.add_node()
        yield local
    finally:
        if ray.is_initialized():
            ray.shutdown()
        local.stop()


@pytest.fixture(scope="module")
def team(cluster, postgres_server, tmp_path_factory):
    """One WORKBENCH_HOME and PostgreSQL database for the module's tests, and so one dispatcher on the cluster for
    them all (starting one takes seconds): each test reads only the runs it made. Yields the environment."""
    name = f"wb_ray_{uuid.uuid4().hex[:12]}"
    postgres_server.admin(f"CREATE DATABASE {name}")
    yield {"WORKBENCH_HOME": str(tmp_path_factory.mktemp("ray-home")), "WORKBENCH_DATABASE_URL":
           postgres_server.url(name), "WORKBENCH_EXECUTOR": "ray", "RAY_ADDRESS": cluster.address}
    postgres_server.admin(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def store(cluster, team, monkeypatch):
    cluster.revive()  # a test before may have killed a node
    for variable, value in team.items():
        monkeypatch.setenv(variable, value)
    s = Store.from_settings()
    yield s
    s.close()


@pytest.fixture
def dataset_id(store, binary_frame):
    return datasets.add_dataset(store, binary_frame.to_csv(index=False).encode(), "binary.csv").dataset.id


@pytest.fixture
def big_dataset_id(store):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(5_000, 6)), columns=[f"x{i}" for i in range(6)])
    frame["label"] = np.where(frame["x0"] + rng.normal(size=len(frame)) > 0, "a", "b")
    return datasets.add_dataset(store, frame.to_csv(index=False).encode(), "big.csv").dataset.id


def queue(store: Store, dataset_id: str, params: dict) -> str:
    return jobs.submit_run(store, RunConfig(dataset_id=dataset_id, target="label", model="mlp", params=params)).id


def wait_for(predicate, timeout: float = 120.0, interval: float = 0.2, store: Store | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    runs = [(r.id, r.status, r.epochs_done, worker_node(r.worker_id)) for r in store.list_runs()] if store else None
    raise AssertionError(f"condition not met in time; runs: {runs}; free: {ray.available_resources()}")


def alive_nodes() -> dict[str, bool]:
    """Each live node's id prefix (as in worker ids) -> whether it is the head."""
    return {n["NodeID"][:40]: "node:__internal_head__" in n["Resources"] for n in ray.nodes() if n["Alive"]}


def training_on_both_nodes(store: Store, run_ids: list[str]) -> dict[str, str]:
    """Wait until each run trains (an epoch done) and they are on different nodes; returns run id -> node."""
    def placed():
        runs = store.get_runs(run_ids)
        nodes = {r.id: worker_node(r.worker_id) for r in runs}
        started = all(r.status == RunStatus.RUNNING and r.epochs_done >= 1 for r in runs)
        return nodes if started and len(set(nodes.values())) == len(run_ids) else None
    return wait_for(placed, store=store)


def test_unreachable_cluster_is_one_plain_error_at_once(home, monkeypatch):
    """Protection: the address is probed first; Ray itself would wait a minute or more for it."""
    monkeypatch.setenv("WORKBENCH_EXECUTOR", "ray")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_free_port()}")
    started = time.monotonic()
    with pytest.raises(UserError, match=r"^The Ray cluster at 127\.0\.0\.1:\d+ cannot be reached; .*\.$"):
        jobs.executor_for(Store.from_settings()).ensure_running()
    assert time.monotonic() - started < 10


def test_runs_land_on_both_nodes(store, dataset_id, cluster):
    ids = [queue(store, dataset_id, QUICK) for _ in range(2)]
    executor = jobs.executor_for(store)
    assert isinstance(executor, RayExecutor)
    executor.ensure_running()
    assert executor.ensure_running() is False  # it found the dispatcher the first call started (or found)
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
    assert [n for n in names if n.startswith("workbench-dispatcher-")] == [dispatcher_name(store.settings)]
    runs = wait_for(lambda: all(r.is_final for r in store.get_runs(ids)) and store.get_runs(ids))
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 2, [r.error for r in runs]
    assert {worker_node(r.worker_id) for r in runs} == set(alive_nodes())  # one on each node
    assert all(r.epochs_done == QUICK["epochs"] for r in runs)
    wait_for(lambda: store.list_workers() == [])  # each task's worker row goes with it (after explaining its run)


def test_six_trial_sweep_completes_with_trials_on_both_nodes(store, dataset_id):
    config = sweeps.SweepConfig(RunConfig(dataset_id, "label", "mlp", params=QUICK), n_trials=6, prune=False)
    sweep = sweeps.submit_sweep(store, config)
    jobs.executor_for(store).ensure_running()
    sweep = wait_for(lambda: (s := store.get_sweep(sweep.id)).is_final and s)
    assert sweep.status == SweepStatus.FINISHED and sweep.error is None and sweep.best_run_id is not None
    runs = store.sweep_runs(sweep.id)
    assert sorted(r.trial_number for r in runs) == list(range(6))
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 6, [r.error for r in runs]
    assert {worker_node(r.worker_id) for r in runs} == set(alive_nodes())


def test_cancel_reaches_runs_on_both_nodes(store, big_dataset_id):
    ids = [queue(store, big_dataset_id, LONG) for _ in range(2)]
    jobs.executor_for(store).ensure_running()
    training_on_both_nodes(store, ids)
    asked = time.monotonic()
    for run_id in ids:
        jobs.cancel_run(store, run_id)
    runs = wait_for(lambda: all(r.is_final for r in store.get_runs(ids)) and store.get_runs(ids), timeout=30)
    assert time.monotonic() - asked < 10
    assert [r.status for r in runs] == [RunStatus.CANCELLED] * 2
    assert all(r.epochs_done < LONG["epochs"] for r in runs)


def kill_worker_node(cluster: LocalRayCluster, nodes: dict[str, str]) -> str:
    """Kill the cluster's second node; returns which of `nodes` (id -> node) trained there."""
    head = next(node for node, is_head in alive_nodes().items() if is_head)
    victim = next(key for key, node in nodes.items() if node != head)
    cluster.kill_node(cluster.nodes[1])
    return victim


def test_a_dead_node_leaves_its_run_interrupted(store, big_dataset_id, cluster):
    ids = [queue(store, big_dataset_id, LONG) for _ in range(2)]
    jobs.executor_for(store).ensure_running()
    victim = kill_worker_node(cluster, training_on_both_nodes(store, ids))
    survivor = next(run_id for run_id in ids if run_id != victim)
    run = wait_for(lambda: (r := store.get_run(victim, with_epochs=False)).is_final and r, timeout=60)
    assert run.status == RunStatus.INTERRUPTED and "stopped unexpectedly" in run.error
    assert store.get_run(survivor, with_epochs=False).status == RunStatus.RUNNING  # the head trains on
    jobs.cancel_run(store, survivor)
    wait_for(lambda: store.get_run(survivor, with_epochs=False).status == RunStatus.CANCELLED, timeout=30)


def test_a_sweep_trial_on_a_dead_node_fails_and_the_sweep_finishes(store, big_dataset_id, cluster):
    config = sweeps.SweepConfig(RunConfig(big_dataset_id, "label", "mlp", params=LONG), n_trials=2, prune=False)
    sweep = sweeps.submit_sweep(store, config)
    jobs.executor_for(store).ensure_running()
    runs = wait_for(lambda: len(r := store.sweep_runs(sweep.id)) == 2 and r)
    victim = kill_worker_node(cluster, training_on_both_nodes(store, [r.id for r in runs]))
    wait_for(lambda: store.get_run(victim, with_epochs=False).status == RunStatus.INTERRUPTED, timeout=60)
    jobs.cancel_run(store, next(r.id for r in runs if r.id != victim))  # the other trial ends too
    sweep = wait_for(lambda: (s := store.get_sweep(sweep.id)).is_final and s, timeout=60)
    assert sweep.status == SweepStatus.FINISHED and sweep.error  # no trial finished: it says so
    failed = {r.id: TrialState.FAIL for r in runs}

    def trial_states() -> dict:
        study = optuna.load_study(study_name=sweep.study_name, storage=sweeps.optuna_storage(store))
        return {t.user_attrs["run_id"]: t.state for t in study.get_trials()}

    # Once in a loaded CI run both trials still read RUNNING as the sweep read finished (not reproduced alone or
    # beside two spinning processes): allow the tells a few seconds to show, and say what was seen
    deadline = time.monotonic() + 30
    while (states := trial_states()) != failed and time.monotonic() < deadline:
        time.sleep(0.5)
    assert states == failed
