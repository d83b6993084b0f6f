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
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import make_classification_frame

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


def set_number(page, label: str, value: str) -> None:
    """Type a number into a number input and wait until the app has taken it."""
    settle(page)
    field = page.get_by_label(label, exact=True)
    wait_for(lambda: field.count() == 1, 30, f"one '{label}' field")
    field.fill(value)
    field.press("Enter")
    wait_for(lambda: field.count() == 1 and field.input_value() == value, 30, f"'{label}' to read {value}")
    settle(page)


def open_page(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).wait_for()


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
                set_number(page, "epochs", epochs)
                page.get_by_role("button", name="Start training").click()
                # The first submission also starts the background worker: seconds on a loaded machine.
                expect(page.get_by_text("is queued")).to_be_visible(timeout=LONG)
                wait_for(lambda n=queued: len(stored_runs()) == n, 60, f"run {queued} in the store")
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
            expect(page.get_by_role("heading", name="Run")).to_be_visible(timeout=LONG)
            navigation = page.get_by_test_id("stSidebarNav")
            expect(navigation.get_by_text("Runs & Compare", exact=True)).to_be_visible(timeout=LONG)
            expect(navigation.get_by_text("app", exact=True)).to_have_count(0)
            assert page.url.endswith("/run?run=nosuchrun")
        finally:
            browser.close()
