"""Running runs: submit to the queue, the local worker that claims and trains them, and the executor seam.

`executor_for` picks who trains queued runs: WORKBENCH_WORKERS local worker processes per WORKBENCH_HOME, each
training queued runs one after another (LocalExecutor), or Ray tasks on a cluster (workbench.ray_executor).
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from workbench.callbacks import Callback, EpochRecord, RunCancelled
from workbench.devices import share_cores
from workbench.errors import BROKE, UserError
from workbench.runconfig import RunConfig
from workbench.store import EpochMetrics, Run, RunGroup, RunResult, RunStatus, Store

if TYPE_CHECKING:
    import pandas as pd

    from workbench.runner import Member, Preparations

log = logging.getLogger(__name__)
HEARTBEAT_INTERVAL_S = 2.0
PROGRESS_INTERVAL_S = 0.5
IDLE_POLL_S = 0.5
AUTO_WORKER_IDLE_EXIT_S = 900  # a worker the app started goes away after 15 idle minutes
SEED_LIMIT = 2 ** 31  # training seeds are below this (models.params)


def submit_run(store: Store, config: RunConfig) -> Run:
    """Validate against the dataset, then queue. Returns at once; a worker trains it. With repeats above 1 the
    run is a group (`submit_group`) and this returns its first member (its `group_id` names the group)."""
    if config.repeats > 1:
        return submit_group(store, config)[1][0]
    return submit_runs(store, [config])[0]


def submit_runs(store: Store, configs: list[RunConfig]) -> list[Run]:
    """Validate every config against its dataset first, then queue them in order: all or none."""
    from workbench.datasets import load_table  # not at the top: datasets imports jobs, and `runs` stays light
    from workbench.ensembles import ENSEMBLE, check_submission
    from workbench.runner import validate_config

    tables = {}
    resolved = []
    for config in configs:
        config.validate()
        if config.dataset_id not in tables:
            tables[config.dataset_id] = load_table(store, store.get_dataset(config.dataset_id))
        resolved.append(validate_config(config, tables[config.dataset_id]))
        if config.model == ENSEMBLE:
            check_submission(store, config, tables[config.dataset_id], resolved[-1].task)
    return [store.create_run(config.to_dict(), model=config.model, target=config.target, task=r.task,
                             params=r.params) for config, r in zip(configs, resolved, strict=True)]


def submit_group(store: Store, config: RunConfig) -> tuple[RunGroup, list[Run]]:
    """A repeated run: the fold assignments of this dataset, target and number of repeats (the same for every group
    made so, and stored with the group), and one queued member run per (round, fold). Members are ordinary runs
    with one repeat; each trains with the training seed plus its round."""
    from workbench.datasets import load_table
    from workbench.ensembles import ENSEMBLE, check_submission
    from workbench.evaluation import assignment_seed, fold_assignments
    from workbench.runner import Member, member_split, validate_config

    config.validate()
    dataset = store.get_dataset(config.dataset_id)
    table = load_table(store, dataset)
    resolved = validate_config(config, table)
    assignment = fold_assignments(table[config.target].dropna(), config.repeats,
                                  assignment_seed(dataset.id, config.target), resolved.task)
    if config.model == ENSEMBLE:  # each repeat ensembles the runs on its fold's rows: checked on the first fold
        first = Member(assignment, assignment.member_name(*assignment.members[0]))
        check_submission(store, config, table, resolved.task, member_split(table, config, resolved.task, first))
    members = []
    for round_, fold in assignment.members:
        params, member_params = dict(resolved.params), dict(config.params)
        if "seed" in params:
            params["seed"] = member_params["seed"] = (int(params["seed"]) + round_) % SEED_LIMIT
        member_config = replace(config, repeats=1, params=member_params)
        members.append((assignment.member_name(round_, fold), member_config.to_dict(), params))
    return store.create_group(config.to_dict(), model=config.model, target=config.target, task=resolved.task,
                              members=members, scheme=assignment.to_dict(), test_share=assignment.test_share())


class StoreCallback(Callback):
    """Writes progress to the store (one row per epoch) and turns a cancel request into RunCancelled."""

    def __init__(self, store: Store, run_id: str):
        self.store, self.run_id = store, run_id
        self._last_check = 0.0

    def on_train_begin(self, total_epochs: int, batches_per_epoch: int) -> None:
        self.store.record_plan(self.run_id, epochs_planned=total_epochs, batches_per_epoch=batches_per_epoch)

    def on_batch_end(self, epoch: int, batch: int) -> None:
        now = time.monotonic()
        if now - self._last_check < PROGRESS_INTERVAL_S:
            return
        self._last_check = now
        if self.store.heartbeat_run(self.run_id, batches_done=batch + 1):
            raise RunCancelled("Cancelled by the user.")

    def on_epoch_end(self, record: EpochRecord) -> None:
        if self.store.record_epoch(self.run_id, EpochMetrics(
                epoch=record.epoch, train_loss=record.train_loss, val_loss=record.val_loss,
                val_metric=record.val_metric, lr=record.lr, seconds=record.seconds)):
            raise RunCancelled("Cancelled by the user.")


@functools.cache
def _preparations() -> Preparations:
    """This process's last table and preparation: a worker's next trial of the same sweep reuses them."""
    from workbench.runner import Preparations  # torch: not at the top, so that `runs` stays light

    return Preparations()


def read_table(store: Store, dataset_id: str) -> pd.DataFrame:
    """A dataset's table, the same object as last time while its file is unchanged (so its preparation is reused)."""
    from workbench.datasets import load_table

    dataset = store.get_dataset(dataset_id)
    path = store.settings.datasets_dir / dataset.file_name
    try:
        stat = path.stat()
    except OSError:
        return load_table(store, dataset)  # says which file is missing
    return _preparations().table((str(path), stat.st_size, stat.st_mtime_ns), lambda: load_table(store, dataset))


def execute_run(store: Store, run: Run, callbacks: Sequence[Callback] = ()) -> str:
    """Train one claimed run and record how it ended. Never raises for a run's own failure. `callbacks` come after
    the store's (a sweep trial's pruning callback: the epoch is recorded before it may stop the run)."""
    from workbench.ensembles import ENSEMBLE, candidates
    from workbench.explain import explain_after_training
    from workbench.runner import execute

    run_dir = store.settings.runs_dir / run.id
    try:
        config = RunConfig.from_dict(run.config)
        table = read_table(store, config.dataset_id)
        member = run_member(store, run)
        outcome = execute(config, table, run_dir, callbacks=[StoreCallback(store, run.id), *callbacks],
                          member=member, predictions_path=test_predictions_path(store, run.id),
                          candidates=candidates(store, config) if config.model == ENSEMBLE else (),
                          preparations=_preparations())
    except UserError as exc:
        store.finish_run(run.id, RunResult(RunStatus.FAILED, error=str(exc)))
        return RunStatus.FAILED
    except Exception as exc:  # a bug or a resource failure: recorded, and the worker goes on
        log.error("run %s failed:\n%s", run.id, traceback.format_exc())
        store.finish_run(run.id, RunResult(RunStatus.FAILED, error=f"{BROKE}{exc}"))
        return RunStatus.FAILED
    test = outcome.metrics.get("test", {})
    store.finish_run(run.id, RunResult(
        status=outcome.status, error=outcome.error, task=outcome.task, params=outcome.params, device=outcome.device,
        duration_s=outcome.duration_s, epochs_done=outcome.epochs_run, primary_metric=outcome.primary_metric,
        primary_value=test.get(outcome.primary_metric), split_fingerprint=outcome.split_fingerprint,
        metrics=outcome.metrics, baseline=outcome.baseline, curves=outcome.curves, intervals=outcome.intervals or None,
        details={"notes": outcome.notes, "n_train": outcome.n_train, "n_val": outcome.n_val,
                 "n_test": outcome.n_test, "dropped_target_rows": outcome.dropped_target_rows,
                 "versions": package_versions()},
    ))
    # What the model learned, after its result is recorded so that a failure here never touches it. A sweep's
    # trials are left to `explain` on demand: they are many, and the study waits for each trial's result.
    if outcome.status == RunStatus.SUCCEEDED and run.sweep_id is None:
        explain_after_training(store, run.id, table)
    return outcome.status


def run_member(store: Store, run: Run) -> Member | None:
    """Which member of its group's stored folds a repeated run's member is; None for a single run."""
    from workbench.evaluation import FoldAssignments
    from workbench.runner import Member

    if not (run.group_id and run.member):
        return None
    scheme = store.get_group(run.group_id, with_scheme=True).scheme
    return Member(FoldAssignments.from_dict(scheme), run.member)


def package_versions() -> dict[str, str]:
    import numpy
    import pandas
    import sklearn
    import torch

    return {"python": sys.version.split()[0], "torch": torch.__version__, "scikit-learn": sklearn.__version__,
            "pandas": pandas.__version__, "numpy": numpy.__version__}


class _Heartbeat(threading.Thread):
    """Beats for the worker and its current run, even while a long fit holds the main thread, and finds runs
    whose worker is gone (on any host) so that they end interrupted instead of staying running."""

    def __init__(self, store: Store, worker_id: str):
        super().__init__(daemon=True)
        self.store, self.worker_id = store, worker_id
        self.run_id: str | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(HEARTBEAT_INTERVAL_S):
            try:
                self.store.heartbeat_worker(self.worker_id)
                if self.run_id:
                    self.store.heartbeat_run(self.run_id)
                recover_stale_runs(self.store)
            except Exception:  # a database busy for longer than the retries must not kill the heartbeat thread
                log.warning("heartbeat failed", exc_info=True)

    def stop(self) -> None:
        self._stop_event.set()


def recover_stale_runs(store: Store) -> list[str]:
    """Running runs whose worker is gone end `interrupted`; returns their ids. As Optuna's fail_stale_trials,
    an explicit call, never a side effect of a read: workers make it at start and with every heartbeat, the
    executor before it looks for a worker, the CLI when it opens the store, and the Train and Runs pages once
    per load. A worker on this host whose process has exited is gone at once; any other after the heartbeat
    timeout."""
    host = socket.gethostname()
    dead = [w.id for w in store.list_workers() if w.hostname == host and not _pid_alive(w.pid)]
    return store.interrupt_stale_runs(dead)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed child that its parent has not reaped yet is a zombie: not alive for us.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


# artifacts.save_run writes a run's model into `runs/.RUNID-xxxxxxxx` and renames it when complete.
_RUN_TEMP_FOLDER = re.compile(r"\.(?P<run_id>[0-9a-f]+)-")


def sweep_run_temp_folders(store: Store) -> list[Path]:
    """Remove half-written model folders of runs that are not running (their worker was killed while saving)."""
    runs_dir = store.settings.runs_dir
    if not runs_dir.is_dir():
        return []
    running = {r.id for r in store.list_runs(statuses=(RunStatus.RUNNING,))}
    removed = []
    for path in runs_dir.iterdir():
        match = _RUN_TEMP_FOLDER.match(path.name)
        if match and match["run_id"] not in running and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def remove_run_files(store: Store, run_id: str) -> None:
    """A deleted run's saved model, any half-written copy of it, its kept test predictions and its monitoring files
    (the reference distribution, and logged prediction rows)."""
    runs_dir = store.settings.runs_dir
    for path in [runs_dir / run_id, *runs_dir.glob(f".{run_id}-*"), store.settings.monitoring_dir / run_id]:
        shutil.rmtree(path, ignore_errors=True)
    predictions = test_predictions_path(store, run_id)
    for path in (predictions, predictions.with_name(f".{predictions.name}.tmp")):
        path.unlink(missing_ok=True)


def test_predictions_path(store: Store, run_id: str) -> Path:
    """Where a run's validation and test targets and predictions are kept (workbench.runner.save_predictions)."""
    return store.settings.test_predictions_dir / f"{run_id}.npz"


def run_worker(store: Store, once: bool = False, idle_exit_s: float | None = None) -> int:
    """Claim and train queued runs one at a time. `once`: stop when the queue is empty.

    Returns how many runs it processed.
    """
    # SIGTERM unwinds like an exception, so the finally below deregisters the worker; a run it was
    # training then reads as interrupted at the next recovery instead of after the heartbeat timeout.
    signal.signal(signal.SIGTERM, _raise_system_exit)
    # Loaded before the worker registers, so that a worker seen alive takes runs at once: the first idle poll
    # would otherwise spend seconds importing the sweep machinery (Optuna) on a slow machine.
    import workbench.sweeps  # noqa: F401  (sweeps imports jobs)

    share_cores(store.settings.workers)
    recover_stale_runs(store)
    sweep_run_temp_folders(store)
    worker = store.register_worker()
    heartbeat = _Heartbeat(store, worker.id)
    heartbeat.start()
    processed, idle_since = 0, time.monotonic()
    try:
        while True:
            run = store.claim_next_run(worker.id)
            if run is None and _train_next_trial(store, worker.id, heartbeat):  # queued runs come first
                processed += 1
                idle_since = time.monotonic()
                continue
            if run is None:
                if once or (idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s):
                    return processed
                time.sleep(IDLE_POLL_S)
                continue
            log.info("claimed run %s", run.id)
            heartbeat.run_id = run.id
            status = execute_run(store, run)
            heartbeat.run_id = None
            log.info("run %s ended %s", run.id, status)
            processed += 1
            idle_since = time.monotonic()
    finally:
        heartbeat.stop()
        store.stop_worker(worker.id)


def _train_next_trial(store: Store, worker_id: str, heartbeat: _Heartbeat) -> bool:
    """Start and train the next trial of a running sweep, if one has a trial to start; returns whether it did."""
    from workbench.sweeps import start_next_trial, train_trial  # sweeps imports jobs

    started = start_next_trial(store, worker_id)
    if started is None:
        return False
    log.info("trial %s of sweep %s: run %s", started.trial.number, started.sweep.id, started.run.id)
    heartbeat.run_id = started.run.id
    try:
        status = train_trial(store, started)
    finally:
        heartbeat.run_id = None
    log.info("run %s ended %s", started.run.id, status)
    return True


def run_in_foreground(store: Store, run: Run, worker_id: str | None = None) -> Run:
    """Train a just-submitted run in this process (the CLI's `train` without --background, a Ray task)."""
    worker = store.register_worker(worker_id=worker_id)
    heartbeat = _Heartbeat(store, worker.id)
    heartbeat.start()
    try:
        claimed = store.start_run(run.id, worker.id)
        if claimed is None:
            return store.get_run(run.id)
        heartbeat.run_id = run.id
        execute_run(store, claimed)
    finally:
        heartbeat.stop()
        store.stop_worker(worker.id)
    return store.get_run(run.id)


def trial_in_foreground(store: Store, sweep_id: str, worker_id: str | None = None) -> Run | None:
    """Start and train the next trial of a sweep in this process (a Ray task); None when it has no trial left."""
    worker = store.register_worker(worker_id=worker_id)
    heartbeat = _Heartbeat(store, worker.id)
    heartbeat.start()
    try:
        from workbench.sweeps import start_next_trial, train_trial  # sweeps imports jobs

        started = start_next_trial(store, worker.id, sweep_id)
        if started is None:
            return None
        heartbeat.run_id = started.run.id
        train_trial(store, started)
        return store.get_run(started.run.id, with_epochs=False)
    finally:
        heartbeat.stop()
        store.stop_worker(worker.id)


def sweep_in_foreground(store: Store, sweep_ids: list[str], extra_workers: int = 0) -> None:
    """Run sweeps' trials in this process until they end (the CLI's `sweep` without --background), with
    `extra_workers` more worker processes training trials beside it (they exit when no trial is left). Ctrl-C
    cancels the sweeps."""
    from workbench.sweeps import cancel_sweep, run_sweep

    worker = store.register_worker()
    heartbeat = _Heartbeat(store, worker.id)
    heartbeat.start()
    env = dict(os.environ, WORKBENCH_HOME=str(store.settings.home))
    alive_before = {w.id for w in store.live_workers()}
    helpers = [subprocess.Popen([sys.executable, "-m", "workbench", "worker", "--once"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
               for _ in range(extra_workers)]
    # The helpers take a few seconds to start; this process waits for them, or it would take every trial of a
    # short sweep before they could take one.
    deadline = time.monotonic() + 30.0
    while helpers and time.monotonic() < deadline and all(h.poll() is None for h in helpers):
        if len({w.id for w in store.live_workers()} - alive_before) >= extra_workers:
            break
        time.sleep(0.1)
    try:
        for sweep_id in sweep_ids:
            run_sweep(store, sweep_id, worker.id, on_trial=lambda run: setattr(heartbeat, "run_id", run.id))
            heartbeat.run_id = None
    except KeyboardInterrupt:
        for sweep_id in sweep_ids:
            if not store.get_sweep(sweep_id).is_final:
                cancel_sweep(store, sweep_id)
        raise
    finally:
        heartbeat.stop()
        store.stop_worker(worker.id)
        for helper in helpers:
            helper.wait()


def _raise_system_exit(signum, _frame) -> None:  # noqa: ANN001
    raise SystemExit(128 + signum)


class Executor(Protocol):
    """Where queued runs and sweep trials get trained: LocalExecutor, or ray_executor.RayExecutor."""

    def ensure_running(self) -> bool: ...


def executor_for(store: Store) -> Executor:
    """The executor that WORKBENCH_EXECUTOR names: local worker processes (the default) or the Ray cluster."""
    if store.settings.executor == "ray":
        try:
            from workbench.ray_executor import RayExecutor
        except ImportError as exc:
            if exc.name != "ray":
                raise
            raise UserError("WORKBENCH_EXECUTOR=ray needs Ray, an optional install: "
                            "pip install -r requirements-cluster.txt") from None
        return RayExecutor(store)
    return LocalExecutor(store)


class LocalExecutor:
    """WORKBENCH_WORKERS background worker processes per WORKBENCH_HOME (settings.workers), started when fewer
    are alive; they claim queued runs from the store, so members of a repeated run train in parallel."""

    def __init__(self, store: Store):
        self.store = store

    def ensure_running(self) -> bool:
        """Start workers until settings.workers live ones beat in the store; returns whether any was started."""
        home = self.store.settings.home
        home.mkdir(parents=True, exist_ok=True)
        recover_stale_runs(self.store)  # a dead worker's row must not count as a live worker
        wanted = self.store.settings.workers
        # The lock makes check-then-start atomic across pages and CLI calls: N workers, not N for each caller.
        with open(home / ".worker-start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            missing = wanted - len(self.store.live_workers())
            if missing <= 0:
                return False
            env = dict(os.environ, WORKBENCH_HOME=str(home))
            with open(home / "worker.log", "ab") as log_file:
                for _ in range(missing):
                    subprocess.Popen(
                        [sys.executable, "-m", "workbench", "worker", "--idle-exit", str(AUTO_WORKER_IDLE_EXIT_S)],
                        env=env, stdout=log_file, stderr=log_file,
                        stdin=subprocess.DEVNULL, start_new_session=True,  # outlives the page or CLI that started it
                    )
            self._wait_until_alive(wanted)
        return True

    def _wait_until_alive(self, wanted: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.store.live_workers()) >= wanted:
                return
            time.sleep(0.2)


def delete_run(store: Store, run_id: str) -> None:
    """Delete a finished run and its saved model. A queued or running run must be cancelled first."""
    recover_stale_runs(store)  # a run whose worker died is interrupted, so it can be deleted
    run = store.get_run(run_id, with_epochs=False)
    if not run.is_final:
        raise UserError(f"Run {run_id} is still {run.status}; cancel it before deleting it.")
    store.delete_run(run_id)
    remove_run_files(store, run_id)


def cancel_run(store: Store, run_id: str) -> Run:
    recover_stale_runs(store)  # a run whose worker died has ended: nothing would act on the request
    run = store.get_run(run_id, with_epochs=False)
    if run.is_final:
        raise UserError(f"Run {run_id} has already ended ({run.status}).")
    return store.request_cancel(run_id)

