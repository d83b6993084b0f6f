"""The Ray cluster executor (WORKBENCH_EXECUTOR=ray, RAY_ADDRESS): each queued run and each sweep trial becomes a
Ray task that trains on whichever node has the resources it asks for (one CPU core; one GPU for a neural run when
the cluster has GPUs).

The store stays the single source of truth. A task claims its run from the store (the same compare-and-set as a
local worker), trains it with the local worker's code (jobs.run_in_foreground, jobs.trial_in_foreground: heartbeats,
progress, cancel and the result all go through the store), and registers as a worker whose id names its Ray node.

A detached dispatcher actor on the head node, one per database, turns the queue into tasks. It owns them, so they
outlive the page or CLI call that woke it (a driver's own tasks die with the driver). It also ends the runs of a dead
node `interrupted` (the workers' heartbeat recovery, and at once when Ray reports the node dead) and settles a sweep
whose last trials died, so that nothing stays running forever.

Every node reads datasets and writes artifacts under the same WORKBENCH_HOME path (storage they all see) and reaches
the same database (PostgreSQL for a team): see the README's "Team set-up".
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayError

from workbench import jobs
from workbench.config import Settings
from workbench.errors import UserError
from workbench.models.registry import get_model
from workbench.store import RunStatus, Store, SweepStatus
from workbench.store.api import new_id

log = logging.getLogger(__name__)
NAMESPACE = "workbench"
CONNECT_TIMEOUT_S = 3.0
DISPATCHER_START_TIMEOUT_S = 120.0  # a new actor's process imports torch; on a busy node that takes a while
DISPATCH_POLL_S = 1.0
WORKER_PREFIX = "ray-"
# A Ray worker's id: "ray-" + the first 40 of its node id's 56 hex digits + "-" + a new id: fits the store's 64.
NODE_ID_CHARS = 40


def connect(settings: Settings) -> None:
    """Connect this process to the cluster at RAY_ADDRESS (once). A cluster that cannot be reached is one plain
    sentence, at once: Ray itself would wait a minute or more for it."""
    address = settings.ray_address
    if not address:
        raise UserError("WORKBENCH_EXECUTOR=ray needs RAY_ADDRESS, the head node's host:port "
                        "(see the README's Team set-up).")
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError):
        raise UserError(f"The Ray cluster at {address} cannot be reached; start its head node (ray start --head) "
                        "or correct RAY_ADDRESS (queued runs start with the next submission that reaches it).") from None
    if ray.is_initialized():
        if ray.get_runtime_context().gcs_address == address:
            return
        ray.shutdown()  # RAY_ADDRESS changed (tests): connect to the new cluster
    # Tasks import this package from the same path on every node (the README's set-up); the driver's working
    # directory, which Ray adds by default, may be anywhere.
    package_root = str(Path(__file__).resolve().parents[1])
    ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": package_root}})


def dispatcher_name(settings: Settings) -> str:
    """One dispatcher per database; hashed, so that a password in the URL never shows in the cluster's actor list."""
    return "workbench-dispatcher-" + hashlib.sha256(settings.database_url.encode()).hexdigest()[:16]


class RayExecutor:
    def __init__(self, store: Store):
        self.store = store

    def ensure_running(self) -> bool:
        """Make sure the store's dispatcher lives on the cluster and have it look at the queue now; returns
        whether this call started it. Raises UserError when the cluster cannot be reached."""
        settings = self.store.settings
        connect(settings)
        name = dispatcher_name(settings)
        try:
            ray.get_actor(name, namespace=NAMESPACE).wake.remote()
            return False
        except ValueError:  # none yet
            pass
        dispatcher = Dispatcher.options(name=name, get_if_exists=True).remote(settings)
        try:  # the first wake waits for the actor, so that a dispatcher that cannot start is told here
            ray.get(dispatcher.wake.remote(), timeout=DISPATCHER_START_TIMEOUT_S)
        except GetTimeoutError:
            log.warning("the dispatcher is still starting; it will pick up the queue when it has")
        except RayError as exc:
            log.error("the dispatcher could not start: %s", exc)
            raise UserError("The Ray cluster could not start the workbench's dispatcher; see the head node's "
                            "Ray logs.") from None
        return True

    def stop(self) -> None:
        """Stop the store's dispatcher (its running tasks go on and finish). The next ensure_running starts one."""
        connect(self.store.settings)
        try:
            ray.kill(ray.get_actor(dispatcher_name(self.store.settings), namespace=NAMESPACE), no_restart=True)
        except ValueError:
            pass


def worker_node(worker_id: str | None) -> str | None:
    """The Ray node (the first NODE_ID_CHARS of its id) of a Ray task's worker id; None for a local worker."""
    if not worker_id or not worker_id.startswith(WORKER_PREFIX):
        return None
    return worker_id[len(WORKER_PREFIX):len(WORKER_PREFIX) + NODE_ID_CHARS]


def recover_lost_runs(store: Store) -> list[str]:
    """Runs whose worker is gone end `interrupted`: jobs.recover_stale_runs (a dead process on this host, a heartbeat
    past the timeout on any), and at once the runs of Ray workers on nodes the cluster reports dead."""
    alive = {node["NodeID"][:NODE_ID_CHARS] for node in ray.nodes() if node["Alive"]}
    dead = [w.id for w in store.list_workers() if (node := worker_node(w.id)) is not None and node not in alive]
    return store.interrupt_stale_runs(dead) + jobs.recover_stale_runs(store)


def _worker_id() -> str:
    return f"{WORKER_PREFIX}{ray.get_runtime_context().get_node_id()[:NODE_ID_CHARS]}-{new_id()}"


# Not retried by Ray: a task whose node died has its run interrupted (and its sweep trial failed) by recovery.
@ray.remote(max_retries=0)
def train_run(settings: Settings, run_id: str) -> str:
    """Claim a queued run and train it here; returns how it ended (a run someone else claimed is left alone)."""
    store = Store.from_settings(settings, migrate=False)
    try:
        run = jobs.run_in_foreground(store, store.get_run(run_id, with_epochs=False), worker_id=_worker_id())
        return str(run.status)
    finally:
        store.close()


@ray.remote(max_retries=0)
def train_trial(settings: Settings, sweep_id: str) -> str | None:
    """Start the sweep's next trial and train it here; None when the sweep had no trial left to start."""
    store = Store.from_settings(settings, migrate=False)
    try:
        run = jobs.trial_in_foreground(store, sweep_id, worker_id=_worker_id())
        return None if run is None else str(run.status)
    finally:
        store.close()


@ray.remote(num_cpus=0, max_concurrency=2, max_restarts=-1, lifetime="detached",
            resources={"node:__internal_head__": 0.001})
class Dispatcher:
    """Submits a Ray task for each queued run and for each trial slot a running sweep has left (at most as many
    in flight per sweep as the cluster has CPU cores), and recovers runs whose node died. Polls the store each
    DISPATCH_POLL_S, and at once when woken (a run was just submitted)."""

    def __init__(self, settings: Settings):
        self.store = Store.from_settings(settings, migrate=False)
        self.in_flight: dict[ray.ObjectRef, str] = {}  # a task: its run's id, or its sweep's id
        self.woken = threading.Event()
        threading.Thread(target=self._loop, name="dispatch", daemon=True).start()

    def wake(self) -> None:
        self.woken.set()

    def _loop(self) -> None:
        while True:
            self.woken.wait(DISPATCH_POLL_S)
            self.woken.clear()
            try:
                self.dispatch()
            except Exception:  # a database restart or a cluster hiccup must not end the dispatcher
                log.warning("dispatch failed", exc_info=True)

    def dispatch(self) -> None:
        self._collect_finished()
        recover_lost_runs(self.store)
        resources = ray.cluster_resources()
        for run in reversed(self.store.list_runs(statuses=(RunStatus.QUEUED,))):  # oldest first
            if run.id not in self.in_flight.values():
                self._submit(train_run, run.id, run.model, run.params, resources)
        self._submit_trials(resources)

    def _collect_finished(self) -> None:
        if not self.in_flight:
            return
        finished, _ = ray.wait(list(self.in_flight), num_returns=len(self.in_flight), timeout=0)
        for ref in finished:
            key = self.in_flight.pop(ref)
            try:
                ray.get(ref)
            except RayError as exc:  # its worker or node died: recovery ends its run
                log.warning("the task for %s ended without finishing: %s", key, exc)

    def _submit_trials(self, resources: dict[str, float]) -> None:
        from workbench.sweeps import Plan, settle  # sweeps imports optuna: only when there are sweeps

        capacity = max(1, int(resources.get("CPU", 1)))
        for sweep in self.store.list_sweeps(statuses=(SweepStatus.RUNNING,)):
            in_flight = sum(key == sweep.id for key in self.in_flight.values())
            left = sweep.n_trials - sweep.trials_started
            if left <= 0:  # finish it once its last trials ended (a dead node's: reconciled as failed)
                settle(self.store, sweep.id)
                continue
            params = Plan.of(sweep).config.run.params
            for _ in range(min(left, capacity) - in_flight):
                self._submit(train_trial, sweep.id, sweep.model, params, resources)

    def _submit(self, task: Any, key: str, model: str, params: dict[str, Any], resources: dict[str, float]) -> None:
        gpu = (get_model(model).family == "neural" and params.get("device") != "cpu"
               and resources.get("GPU", 0) >= 1)
        ref = task.options(num_cpus=1, num_gpus=1 if gpu else 0).remote(self.store.settings, key)
        self.in_flight[ref] = key
