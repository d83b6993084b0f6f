"""Real-browser smoke test: the served app in Debian's Chromium, from a CSV upload to a comparison of two runs.

The app starts its own background worker; at the end the server and that worker are both stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from tests.conftest import make_classification_frame, with_checkout_on_path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
LONG = 90_000  # ms for a browser expectation: a loaded 2-core CI machine is slow to start a worker
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def processes_using(home: Path) -> list[psutil.Process]:
    """Every process of ours whose environment points at this WORKBENCH_HOME (the server and its worker)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and proc.environ().get("WORKBENCH_HOME") == str(home):
                found.append(proc)
    return found


@contextlib.contextmanager
def served_app(home: Path, script: str = "app.py", **env_vars: str) -> Iterator[str]:
    """`streamlit run app.py` (or another script, run from the repo) on a free port with its own WORKBENCH_HOME and
    any other environment variables; everything it started is stopped after."""
    port = free_port()
    env = dict(os.environ, WORKBENCH_HOME=str(home), **env_vars)
    env.pop("WORKBENCH_DATABASE_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.address", "127.0.0.1", "--server.port",
         str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(url) or server.poll() is not None, 60, "the server")
        assert server.poll() is None, "streamlit exited at start"
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
        # The worker runs in its own session (it outlives the page that started it): stop it by its home.
        leftovers = processes_using(home)
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(leftovers, timeout=15)
        for proc in alive:
            proc.kill()
        assert not processes_using(home), "a process was left behind"


def stored_runs() -> list:
    """The runs in the store the app writes to (WORKBENCH_HOME is `home`)."""
    from workbench.store import Store

    store = Store.from_settings()
    try:
        return store.list_runs()
    finally:
        store.close()


def finished_runs() -> list[str]:
    return [r.status for r in stored_runs() if r.is_final]


def settle(page, timeout: float = 60) -> None:
    """Wait until no script run is going and no stale element remains: while Streamlit re-renders a page, the
    old and the new copy of a widget can both be in it, and a click on the old one is lost."""
    wait_for(lambda: page.get_by_test_id("stStatusWidgetRunningIcon").count() == 0
             and page.locator('[data-stale="true"]').count() == 0, timeout, "the page to settle")


def set_number(page, label: str, value: str, timeout: float = LONG / 1000) -> None:
    """Type a number into a number input and wait until the app has taken it. Typing into a field that Streamlit
    is re-rendering is lost (a loaded CI machine re-renders for seconds): when the field does not read the value
    10 s after the page settled, it is typed again."""
    field = page.get_by_label(label, exact=True)
    deadline = time.monotonic() + timeout
    while True:
        settle(page)
        wait_for(lambda: field.count() == 1, 30, f"one '{label}' field")
        field.fill(value)
        field.press("Enter")
        with contextlib.suppress(AssertionError):
            wait_for(lambda: field.count() == 1 and field.input_value() == value, 10, f"'{label}' to read {value}")
            settle(page)
            if field.count() == 1 and field.input_value() == value:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for '{label}' to read {value}")


def start_training(page, count, expected: int, timeout: float = LONG / 1000) -> None:
    """Click "Start training" until `count()` (runs or groups in the store) reaches `expected`. A click on a button
    that Streamlit is re-rendering is lost: when the page has sat settled for 10 s with nothing new stored, the click
    is made again (a click that did land keeps the page running until the run is stored). A timeout says what the
    page shows."""
    button = page.get_by_role("button", name="Start training")
    settle(page)
    button.click()
    deadline = time.monotonic() + timeout
    settled_since = None
    while time.monotonic() < deadline:
        if count() >= expected:
            return
        busy = (page.get_by_test_id("stStatusWidgetRunningIcon").count() > 0
                or page.locator('[data-stale="true"]').count() > 0)
        now = time.monotonic()
        if busy or settled_since is None:
            settled_since = None if busy else now
        elif now - settled_since > 10:
            button.click()
            settled_since = None
        time.sleep(0.25)
    shown = [alert.inner_text() for alert in page.get_by_test_id("stAlert").all()]
    raise AssertionError(f"timed out waiting for {expected} in the store; the page shows: {shown}")


def open_page(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    # on a loaded 2-core CI machine a page whose script is still running can take over 30 s to give way
    page.get_by_role("heading", name=title).wait_for(timeout=LONG)


def choose(page, label: str, option: str) -> None:
    """Pick an option of a selectbox or multiselect by its label."""
    page.get_by_label(label, exact=True).first.click()
    page.get_by_role("option", name=option).first.click()


def test_upload_train_and_compare_in_a_browser(tmp_path, home):
    from playwright.sync_api import expect, sync_playwright

    csv_path = tmp_path / "customers.csv"
    make_classification_frame(n=300).to_csv(csv_path, index=False)
    with served_app(home) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_role("heading", name="Workbench").wait_for()

            open_page(page, "Data")
            page.locator("input[type=file]").set_input_files(str(csv_path))
            expect(page.get_by_text("Added customers.csv")).to_be_visible(timeout=LONG)

            open_page(page, "Train")
            choose(page, "Architecture", "mlp (neural)")
            expect(page.get_by_text("Multi-layer perceptron")).to_be_visible(timeout=LONG)
            for queued, epochs in enumerate(("3", "4"), start=1):
                set_number(page, "Most epochs", epochs)
                # The first submission also starts the background worker: seconds on a loaded machine. The page
                # says "Run X is queued" (or running) until the run ends, which a 3-epoch run may do at once.
                start_training(page, lambda: len(stored_runs()), queued)
                assert page.get_by_test_id("stException").count() == 0
            wait_for(lambda: len(finished_runs()) == 2, 60, "two runs to finish")
            assert finished_runs() == ["succeeded", "succeeded"]

            open_page(page, "Runs & Compare")
            for _ in range(2):
                choose(page, "Runs or groups to compare", "mlp")
                page.keyboard.press("Escape")
            page.get_by_role("tab", name="Learning curves").click(timeout=60_000)
            expect(page.locator(".js-plotly-plot").filter(visible=True).first).to_be_visible()
            assert page.locator(".js-plotly-plot").count() >= 3
            assert page.get_by_test_id("stException").count() == 0
        finally:
            browser.close()


def test_a_page_opened_first_after_the_server_starts_runs_inside_the_app(home):
    """A bookmark or a tab reloading after a restart opens /run?run=ID before any session has run app.py; Streamlit
    would run pages/run.py alone (a sidebar of file names). The page must come up inside the app, with its query."""
    from playwright.sync_api import expect, sync_playwright

    with served_app(home) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/run?run=nosuchrun")  # a shared link to one run: its query must come along
            expect(page.get_by_role("heading", name="Run", exact=True)).to_be_visible(timeout=LONG)
            navigation = page.get_by_test_id("stSidebarNav")
            expect(navigation.get_by_text("Runs & Compare", exact=True)).to_be_visible(timeout=LONG)
            expect(navigation.get_by_text("app", exact=True)).to_have_count(0)
            assert page.url.endswith("/run?run=nosuchrun")
        finally:
            browser.close()


def messy_customers(n: int = 400, seed: int = 3) -> pd.DataFrame:
    """What real CSVs look like: missing numbers in several columns, a date column, unicode and spaces in names, an
    imbalanced target."""
    frame = make_classification_frame(n=n, seed=seed).rename(columns={"x1": "monthly spend €", "colour": "plan tier"})
    rng = np.random.default_rng(seed)
    for column in ("monthly spend €", "x2"):
        frame.loc[rng.random(n) < 0.2, column] = np.nan
    frame["signed up"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 600, n), unit="D")
    frame["churned"] = np.where(frame.pop("label") == "yes", np.where(rng.random(n) < 0.2, "yes", "no"), "no")
    return frame


def no_traceback(page) -> None:
    settle(page)
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()


def test_the_founders_path_in_a_browser(tmp_path, home):
    """Upload a messy CSV -> profile with a target -> quick start -> one run's page -> compare -> predict with notes ->
    export, then run the exported predict.py in a fresh process. Every page on the way shows no traceback."""
    from playwright.sync_api import expect, sync_playwright

    frame = messy_customers()
    csv_path = tmp_path / "customers 2024.csv"
    frame.to_csv(csv_path, index=False)
    new_rows = frame.drop(columns="churned").head(6).astype(object)
    new_rows.loc[0, "monthly spend €"] = "39.3x"  # a typo in a number
    new_rows.loc[1, :] = None  # an empty row
    new_rows["note"] = "extra column"
    new_path = tmp_path / "new customers.csv"
    new_rows.to_csv(new_path, index=False)

    with served_app(home) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_role("heading", name="Workbench").wait_for()

            open_page(page, "Data")
            page.locator("input[type=file]").set_input_files(str(csv_path))
            expect(page.get_by_text("Added customers 2024.csv")).to_be_visible(timeout=LONG)
            choose(page, "Column you want to predict (optional)", "churned")
            quick_start = page.get_by_role("button", name="Quick start")
            expect(quick_start).to_be_visible(timeout=LONG)
            no_traceback(page)
            quick_start.click()
            expect(page.get_by_text("Queued 4 runs")).to_be_visible(timeout=LONG)
            wait_for(lambda: len(finished_runs()) == 4, 240, "the quick start's four runs to finish")
            runs = stored_runs()
            assert {r.status for r in runs} == {"succeeded"}, [(r.model, r.status, r.error) for r in runs]
            no_traceback(page)

            first = runs[-1]  # the first queued: gradient boosting
            page.goto(f"{url}/run?run={first.id}")
            expect(page.get_by_role("heading", name="Run", exact=True)).to_be_visible(timeout=LONG)
            expect(page.get_by_role("tab", name="Scores")).to_be_visible(timeout=LONG)
            expect(page.get_by_role("button", name="Predict with this run")).to_be_enabled()
            no_traceback(page)

            open_page(page, "Runs & Compare")
            choose(page, "Runs or groups to compare", runs[0].id)
            page.keyboard.press("Escape")
            one_run_view = page.get_by_role("button", name=f"Open the page of run {runs[0].id}")
            expect(one_run_view).to_be_visible(timeout=LONG)
            choose(page, "Runs or groups to compare", runs[1].id)
            page.keyboard.press("Escape")
            # The one-run view's tabs stay, stale, until the comparison's rerun has drawn its own: wait for that
            # rerun to end (the one-run view's button gone) before counting tabs.
            expect(one_run_view).to_have_count(0, timeout=LONG)
            settle(page)
            expect(page.get_by_role("tab", name="Learning curves")).to_have_count(1, timeout=LONG)
            expect(page.get_by_role("tab", name="Learning curves")).to_be_visible()
            no_traceback(page)

            open_page(page, "Predict")
            page.get_by_label("Trained run", exact=True).click()  # the best run is preselected and marked
            expect(page.get_by_role("option", selected=True)).to_contain_text("· best", timeout=LONG)
            page.keyboard.press("Escape")
            page.locator("input[type=file]").first.set_input_files(str(new_path))
            expect(page.get_by_text("rows are flagged").first).to_be_visible(timeout=LONG)
            expect(page.get_by_text("it was ignored").first).to_be_visible()
            no_traceback(page)
            with page.expect_download() as download:
                page.get_by_role("button", name="Export this model (zip)").click()
            bundle = tmp_path / "bundle.zip"
            download.value.save_as(bundle)

            one_row = tmp_path / "one row.csv"
            frame.head(1).to_csv(one_row, index=False)
            open_page(page, "Data")
            page.locator("input[type=file]").set_input_files(str(one_row))
            # The new upload is the dataset shown (its "Rows" figure), not the one chosen before it.
            expect(page.get_by_test_id("stMetricValue").first).to_have_text("1", timeout=LONG)
            no_traceback(page)
            choose(page, "Column you want to predict (optional)", "churned")
            no_traceback(page)
            one_row_quick_start = page.get_by_role("button", name="Quick start")
            expect(one_row_quick_start).to_be_visible(timeout=LONG)
            settle(page)
            one_row_quick_start.click()
            expect(page.get_by_text("at least 20 are needed to train")).to_be_visible(timeout=LONG)
            no_traceback(page)
            for title in ("Home", "Data", "Train", "Runs & Compare", "Run", "Predict"):
                page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
                page.get_by_role("heading", name="Workbench" if title == "Home" else title, exact=True).wait_for()
                no_traceback(page)
        finally:
            browser.close()

    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(unpacked)
    (folder,) = unpacked.iterdir()
    assert (folder / "README.md").read_text(encoding="utf-8").strip()
    done = subprocess.run([sys.executable, "predict.py", str(new_path), str(tmp_path / "out.csv")], cwd=folder,
                          env=with_checkout_on_path(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    predicted = pd.read_csv(tmp_path / "out.csv")
    assert len(predicted) == len(new_rows) and predicted["prediction"].notna().sum() >= len(new_rows) - 1
