"""Faults and load at the process level: a server restarted mid-run, runs that raise, diverge or run out of
memory, three browser sessions at once, and the Runs page with 500 runs.

Each test names the protection it checks; without that protection it fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.conftest import make_classification_frame
from tests.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    choose,
    free_port,
    healthy,
    open_page,
    processes_using,
    served_app,
    set_number,
    settle,
    start_training,
    wait_for,
)
from workbench import datasets, jobs, training
from workbench.runconfig import PrepConfig, RunConfig
from workbench.store import Store

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60
LONG = 90_000  # ms for a browser expectation: a loaded 2-core machine starts a worker slowly
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's Chromium")


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def runs_page() -> AppTest:
    return AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=TIMEOUT)


def add_csv(store: Store, frame: pd.DataFrame, name: str) -> str:
    return datasets.add_dataset(store, frame.to_csv(index=False).encode(), name).dataset.id


# -- the server is restarted while a run trains ------------------------------------------------------


@contextlib.contextmanager
def killable_server(home: Path):
    """`streamlit run app.py` in its own process group, which the test kills with SIGKILL (a crash)."""
    port = free_port()
    env = dict(os.environ, WORKBENCH_HOME=str(home))
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1", "--server.port",
         str(port), "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(url) or server.poll() is not None, 60, "the server")
        assert server.poll() is None, "streamlit exited at start"
        yield server, url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=20)


@pytest.mark.browser
@needs_chromium
def test_server_killed_and_restarted_while_a_run_trains(store, home):
    """Protection: LocalExecutor starts the worker in its own session (start_new_session=True), so a server
    crash does not take the worker, and the run, with it; the store, not the server, holds the run."""
    from playwright.sync_api import expect, sync_playwright

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(3000, 8)), columns=[f"x{i}" for i in range(8)])
    frame["label"] = np.where(frame["x0"] + frame["x1"] + rng.normal(size=len(frame)) > 0, "a", "b")
    dataset_id = add_csv(store, frame, "long.csv")
    # Queued first, so the worker the app starts takes it first: long enough to outlive the restart.
    long_run = jobs.submit_run(store, RunConfig(dataset_id=dataset_id, target="label", model="mlp",
                                                params={"epochs": 40, "batch_size": 32, "patience": 0})).id
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            with killable_server(home) as (server, url):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                page.goto(url)
                page.get_by_role("heading", name="Workbench").wait_for()
                open_page(page, "Train")
                choose(page, "Architecture", "logistic_regression (classical)")
                settle(page)
                page.get_by_role("button", name="Start training").click()
                expect(page.get_by_text(re.compile(r"is (queued|running) \("))).to_be_visible(timeout=LONG)  # its worker
                wait_for(lambda: store.get_run(long_run, with_epochs=False).epochs_done >= 1, 120, "training")
                workers = [proc for proc in processes_using(home)
                           if proc.pid != server.pid and "worker" in " ".join(proc.cmdline())]
                assert len(workers) == 1, "the app started one worker"
                os.killpg(server.pid, signal.SIGKILL)  # the server crashes; its process group goes with it
                server.wait(timeout=20)
                page.close()
            assert workers[0].is_running() and workers[0].status() != psutil.STATUS_ZOMBIE, \
                "the worker died with the server"
            assert store.get_run(long_run, with_epochs=False).status == "running", "it ended before the crash"

            with served_app(home) as url:  # a new server on the same WORKBENCH_HOME
                def ended():
                    runs = store.list_runs()
                    return all(r.is_final for r in runs) and runs

                runs = wait_for(ended, 240, "both runs to end")
                assert {r.status for r in runs} == {"succeeded"}, [(r.status, r.error) for r in runs]
                assert store.get_run(long_run).epochs_done == 40
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                page.goto(url)
                open_page(page, "Runs & Compare")
                expect(page.get_by_text("2 of 2 runs")).to_be_visible(timeout=LONG)
                assert page.get_by_test_id("stException").count() == 0
                browser.close()  # before served_app looks for leftover processes of this home
        finally:
            with contextlib.suppress(Exception):
                browser.close()
    at = runs_page().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["Status"]) == ["succeeded", "succeeded"] and long_run in list(table["Run"])


# -- runs that raise, diverge or run out of memory ----------------------------------------------------


def oom(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def boom(*args, **kwargs):
    raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (64x7 and 8x32)")


def test_failed_diverged_and_out_of_memory_runs_say_why_on_the_runs_page(store, monkeypatch):
    """Protection: execute_run records every failure with its message (never stuck 'running'), fit turns
    out-of-memory into a plain message, the trainer marks a NaN/inf loss 'diverged', and the Runs page
    shows each run's message (its Message column)."""
    dataset_id = add_csv(store, make_classification_frame(n=200), "small.csv")
    rng = np.random.default_rng(0)
    wild = pd.DataFrame({"x1": rng.normal(size=300) * 1e6, "x2": rng.normal(size=300)})
    wild["y"] = wild["x1"] * 1e3 + rng.normal(size=300)
    wild_id = add_csv(store, wild, "wild.csv")

    def train(config: RunConfig, fit_replacement=None) -> str:
        run = jobs.submit_run(store, config)
        with monkeypatch.context() as m:
            if fit_replacement is not None:
                m.setattr(training, "_fit", fit_replacement)
            jobs.run_worker(store, once=True)
        return run.id

    fast = {"epochs": 3, "batch_size": 64}
    raised = train(RunConfig(dataset_id=dataset_id, target="label", model="mlp", params=fast), boom)
    out_of_memory = train(RunConfig(dataset_id=dataset_id, target="label", model="mlp", params=fast), oom)
    # Really diverges, no monkeypatching: plain SGD at the largest learning rate, no clipping, huge numbers.
    diverged = train(RunConfig(dataset_id=wild_id, target="y", model="mlp", prep=PrepConfig(scaling="standard"),
                               params={"optimizer": "sgd", "lr": 1.0, "grad_clip": 0.0, "epochs": 20,
                                       "batch_size": 8}))
    runs = {r.id: r for r in store.get_runs([raised, out_of_memory, diverged])}
    assert runs[raised].status == "failed"
    assert runs[raised].error == "Training failed: mat1 and mat2 shapes cannot be multiplied (64x7 and 8x32)"
    assert runs[out_of_memory].status == "failed"
    assert "ran out of memory" in runs[out_of_memory].error
    assert runs[diverged].status == "diverged"
    assert "diverged" in runs[diverged].error and "lower learning rate" in runs[diverged].error

    at = runs_page().run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("Run")
    for run in runs.values():
        assert table.loc[run.id, "Status"] == run.status
        assert table.loc[run.id, "Message"] == run.error
        assert "Traceback" not in run.error and 'File "' not in run.error
    at.multiselect(key="filter.status").select("diverged").run()
    assert not at.exception
    assert list(at.dataframe[0].value["Message"]) == [runs[diverged].error]


def test_out_of_memory_halves_the_batch_and_goes_on(store, monkeypatch):
    """Protection: training.fit retries with half the batch on torch.cuda.OutOfMemoryError and records the
    batch size that really ran."""
    dataset_id = add_csv(store, make_classification_frame(n=300), "small.csv")
    real_fit, tried = training._fit, []

    def fit_that_fits_only_small_batches(model, train, val, objective, params, batch_size, callbacks):
        tried.append(batch_size)
        if batch_size > 50:
            oom()
        return real_fit(model, train, val, objective, params, batch_size, callbacks)

    monkeypatch.setattr(training, "_fit", fit_that_fits_only_small_batches)
    run = jobs.submit_run(store, RunConfig(dataset_id=dataset_id, target="label", model="mlp",
                                           params={"epochs": 2, "batch_size": 200}))
    jobs.run_worker(store, once=True)
    run = store.get_run(run.id)
    assert run.status == "succeeded", run.error
    assert tried == [200, 100, 50]
    assert run.params["batch_size"] == 50


def test_full_disk_while_saving_a_model_leaves_no_half_written_run(store, home, monkeypatch):
    """Protection: artifacts.save_run writes into a temporary folder and renames it only when complete; the
    storage error becomes one plain sentence on the run, and the worker goes on with the next run."""
    import errno

    import skops.io as sio

    from workbench import artifacts

    dataset_id = add_csv(store, make_classification_frame(n=200), "small.csv")
    real_dump = sio.dump

    def dump_then_fill_the_disk(obj, file, *args, **kwargs):
        Path(file).write_bytes(b"PK half a file")  # some bytes reach the disk before it fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    config = RunConfig(dataset_id=dataset_id, target="label", model="logistic_regression")
    full = jobs.submit_run(store, config).id
    with monkeypatch.context() as m:
        m.setattr(artifacts.sio, "dump", dump_then_fill_the_disk)
        jobs.run_worker(store, once=True)
    assert artifacts.sio.dump is real_dump  # space is free again
    # Nothing of the failed save is left (the next worker's start-up sweep would hide a leftover: look before it).
    assert not (home / "runs").exists() or not list((home / "runs").iterdir())
    after = jobs.submit_run(store, config).id
    jobs.run_worker(store, once=True)
    runs = {r.id: r for r in store.get_runs([full, after])}
    assert runs[full].status == "failed"
    assert runs[full].error == "The disk is full; free some space and try again. Nothing was saved."
    assert runs[after].status == "succeeded", runs[after].error
    # Only the finished run has a folder: no half-written model and no temporary folder left behind.
    assert sorted(p.name for p in (home / "runs").iterdir()) == [after]


# -- load: three people at once ----------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
def test_three_browser_sessions_upload_train_and_compare_at_once(store, home, tmp_path):
    """Protection: per-session state, a store that serialises writers, and a background worker: one
    person's upload, another's training and a third's comparison do not block or break each other."""
    from playwright.sync_api import expect, sync_playwright

    from tests.test_compare import finished_run

    train_id = add_csv(store, make_classification_frame(n=300), "train-me.csv")
    compare_id = add_csv(store, make_classification_frame(n=120, seed=2), "compare-me.csv")
    first = finished_run(store, compare_id, model="mlp", params={"lr": 0.1}, test={"accuracy": 0.9})
    second = finished_run(store, compare_id, model="mlp", params={"lr": 0.01}, test={"accuracy": 0.8})
    upload = tmp_path / "fresh.csv"
    make_classification_frame(n=5000, seed=5).to_csv(upload, index=False)

    with served_app(home) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            pages = []
            for _ in range(3):  # three contexts: three separate sessions, as three people
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                page.set_default_timeout(90_000)
                page.goto(url)
                pages.append(page)
            uploader, trainer, comparer = pages
            for page in pages:
                page.get_by_role("heading", name="Workbench").wait_for()
            open_page(uploader, "Data")
            open_page(trainer, "Train")
            open_page(comparer, "Runs & Compare")
            choose(trainer, "Dataset", "train-me.csv (300 rows)")
            choose(trainer, "Architecture", "mlp (neural)")
            expect(trainer.get_by_text("Multi-layer perceptron")).to_be_visible(timeout=LONG)
            set_number(trainer, "Most epochs", "5")

            # Now all three act at once; no one waits for another's result before acting.
            started = time.monotonic()
            uploader.locator("input[type=file]").set_input_files(str(upload))
            choose(comparer, "Runs or groups to compare", first.id)
            comparer.keyboard.press("Escape")
            choose(comparer, "Runs or groups to compare", second.id)
            comparer.keyboard.press("Escape")
            # (clicked again if a re-render lost the click)
            start_training(trainer, lambda: len([r for r in store.list_runs() if r.dataset_id == train_id]), 1)

            expect(uploader.get_by_text("Added fresh.csv")).to_be_visible(timeout=LONG)
            # "Run X is queued" (or running) until the 5-epoch run ends; then it is under "Latest finished".
            expect(trainer.get_by_text(re.compile(r"is (queued|running) \(|Latest finished")).first).to_be_visible(
                timeout=LONG)
            expect(comparer.locator(".js-plotly-plot").filter(visible=True).first).to_be_visible(timeout=LONG)
            wait_for(lambda: [r.status for r in store.list_runs() if r.model == "mlp" and r.dataset_id == train_id]
                     == ["succeeded"], 240, "the run to train")  # three browsers and a worker share 2 cores
            expect(trainer.get_by_text("Latest finished")).to_be_visible(timeout=LONG)  # its live panel caught up
            print(f"\nthree sessions: upload, training and comparison done in {time.monotonic() - started:.1f}s")
            for page in pages:
                assert page.get_by_test_id("stException").count() == 0
            assert {d.name for d in store.list_datasets()} == {"train-me.csv", "compare-me.csv", "fresh.csv"}
        finally:
            browser.close()


def test_runs_page_with_500_runs(store, capsys):
    """A figure, not an assertion on time: how long the Runs page takes with 500 runs in the store."""
    from tests.test_compare import finished_run

    dataset_id = add_csv(store, make_classification_frame(n=60), "small.csv")
    started = time.perf_counter()
    for i in range(500):
        finished_run(store, dataset_id, params={"lr": 10.0 ** -(i % 4)}, epochs=0)
    made = time.perf_counter() - started
    at = runs_page()
    started = time.perf_counter()
    at.run()
    first = time.perf_counter() - started
    started = time.perf_counter()
    at.run()
    again = time.perf_counter() - started
    assert not at.exception
    assert len(at.dataframe[0].value) == 500
    with capsys.disabled():
        print(f"\nRuns page, 500 runs: first render {first:.2f}s, rerun {again:.2f}s (writing them: {made:.1f}s)")
