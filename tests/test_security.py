"""Hostile input and access control: what a file or a visitor could try, and what stops it.

Each test names the protection it checks; without that protection it fails.
"""

from __future__ import annotations

import ast
import csv
import io
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer
from streamlit.testing.v1 import AppTest

from tests.conftest import make_classification_frame
from workbench import datasets, jobs
from workbench.errors import UserError
from workbench.runconfig import RunConfig
from workbench.store import Store

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60
LONG = 90_000  # ms for a browser expectation: a loaded 2-core machine starts a worker slowly
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
FORMULA = "=cmd|' /C calc'!A0"


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


@pytest.fixture(autouse=True)
def _no_background_worker(monkeypatch):
    monkeypatch.setattr(jobs.LocalExecutor, "ensure_running", lambda self: False)


def trained_run(store, frame: pd.DataFrame, model: str = "logistic_regression", target: str = "label") -> str:
    dataset_id = datasets.add_dataset(store, frame.to_csv(index=False).encode(), "train.csv").dataset.id
    run = jobs.submit_run(store, RunConfig(dataset_id=dataset_id, target=target, model=model))
    jobs.run_worker(store, once=True)
    assert store.get_run(run.id).status == "succeeded", store.get_run(run.id).error
    return run.id


# -- file names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("hostile, shown", [
    ("../../etc/passwd.csv", "passwd.csv"),
    ("..\\..\\windows\\evil.csv", "evil.csv"),
    ("bad\x00name\x1b[31m\r\n.csv", "badname[31m.csv"),
])
def test_upload_name_with_path_parts_stays_a_display_name(home, tmp_path, hostile, shown):
    """Protection: datasets.display_name (last path part, printable only) and content-hash file names."""
    before = {p for p in tmp_path.rglob("*") if home not in p.parents and p != home}
    at = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=TIMEOUT).run()
    at.file_uploader[0].upload(hostile, make_classification_frame(n=40).to_csv(index=False).encode(), "text/csv")
    at.run()
    assert not at.exception
    success = texts(at.success)
    assert f"Added **{shown}**" in success, success
    assert ".." not in success and "/" not in success and "\\" not in success
    store = Store.from_settings()
    try:
        [dataset] = store.list_datasets()
    finally:
        store.close()
    assert dataset.name == shown
    assert re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]{8}\.parquet", dataset.file_name)  # content hash, own suffix
    # Nothing was written outside WORKBENCH_HOME, and inside it only under the datasets folder.
    after = {p for p in tmp_path.rglob("*") if home not in p.parents and p != home}
    assert after == before
    assert [p.name for p in (home / "datasets").iterdir()] == [dataset.file_name]


# -- HTML and JavaScript in names and values --------------------------------------------------------


def hostile_frame() -> pd.DataFrame:
    """A column named like a script, mostly numbers with one value that is an HTML tag (so a note quotes both)."""
    frame = make_classification_frame(n=60)
    values = [str(round(v, 3)) for v in frame["x1"]]
    values[5] = IMG
    frame[SCRIPT] = values
    frame[IMG + " city"] = [IMG if i % 2 else SCRIPT for i in range(len(frame))]
    return frame


def test_html_in_names_and_values_is_plain_text_in_app_test(store):
    """Protection: no page renders file content with unsafe_allow_html; notes name columns as text."""
    datasets.add_dataset(store, hostile_frame().to_csv(index=False).encode(), "xss.csv")
    at = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert SCRIPT in texts(at.info) and IMG in texts(at.info)
    columns = next(df.value for df in at.dataframe if "Kind" in df.value.columns)
    assert SCRIPT in list(columns["Column"])
    for source in [*(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py"), ROOT / "app.py"]:
        assert "unsafe_allow_html=True" not in source.read_text(), f"{source.name} renders raw HTML"


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's Chromium")
def test_html_in_names_and_values_never_runs_in_a_browser(store, home):
    """Protection: Streamlit escapes text and markdown without raw HTML; a script tag in a file is only text."""
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, open_page, served_app

    datasets.add_dataset(store, hostile_frame().to_csv(index=False).encode(), "xss.csv")
    dialogs: list[str] = []
    with served_app(home) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.add_init_script("window.__xss = 0; window.alert = (m) => { window.__xss += 1; };")
            page.goto(url)
            page.get_by_role("heading", name="Workbench").wait_for()
            open_page(page, "Data")
            note = page.get_by_test_id("stAlertContentInfo").filter(has_text="is mostly numbers")
            expect(note).to_contain_text(SCRIPT, timeout=LONG)  # the tag is shown as the characters it is made of
            expect(note).to_contain_text(IMG, timeout=LONG)
            assert page.locator("main img[src=x]").count() == 0 and page.locator("main script").count() == 0
            open_page(page, "Train")
            page.get_by_label("Column to predict", exact=True).click()
            expect(page.get_by_role("option", name=SCRIPT, exact=True)).to_be_visible(timeout=LONG)
            page.keyboard.press("Escape")
            page.wait_for_timeout(500)
            assert page.evaluate("window.__xss") == 0
            assert page.get_by_test_id("stException").count() == 0
        finally:
            browser.close()
    assert dialogs == []


def test_bare_carriage_return_in_a_row_is_one_plain_sentence(store):
    """Protection: ingest._explain_parse_error reads with newline="" and turns csv.Error into a sentence.
    (A stray CR ends a row for pyarrow; the slow reader used to raise csv.Error, a traceback on the page.)"""
    at = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=TIMEOUT).run()
    at.file_uploader[0].upload("cr.csv", b"x,y,z\n1,2,\r=1\n3,4,5\n", "text/csv").run()
    assert not at.exception, at.exception
    assert "has 1 fields but the header has 3" in texts(at.error)
    assert store.list_datasets() == []


# -- size limits ------------------------------------------------------------------------------------


def test_oversized_file_is_refused_before_it_is_read(tmp_path, home, monkeypatch):
    """Protection: ingest.read_path checks the file's size (stat) before reading it."""
    huge = tmp_path / "huge.csv"
    with open(huge, "wb") as f:
        f.truncate(300 * 1024 * 1024)  # sparse: no real disk use
    reads = []
    original = Path.read_bytes

    def spy(self):
        reads.append(self)
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    with pytest.raises(UserError, match="300 MB, over the 200 MB limit"):
        datasets.add_path(Store.from_settings(), huge)
    assert reads == [], "the file was read before its size was checked"
    # The CLI says the same in one line.
    monkeypatch.setattr(Path, "read_bytes", original)
    env = dict(os.environ, WORKBENCH_HOME=str(home))
    done = subprocess.run([sys.executable, "-m", "workbench", "ingest", str(huge)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("error: The file is 300 MB"), done.stderr


def test_upload_limit_and_server_settings_stay_safe():
    """Protection: .streamlit/config.toml keeps XSRF on, listens on localhost, caps uploads."""
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["enableXsrfProtection"] is True
    assert server["address"] == "127.0.0.1"
    assert 0 < server["maxUploadSize"] <= 1024
    makefile = (ROOT / "Makefile").read_text()
    assert "--server.address 0.0.0.0" not in makefile


# -- spreadsheet formulas in exports ------------------------------------------------------------------


def formula_rows(n: int = 8) -> pd.DataFrame:
    rows = make_classification_frame(n=n, seed=3).drop(columns=["label"])
    rows.loc[0, "colour"] = FORMULA
    rows.loc[1, "colour"] = "@SUM(1+1)*cmd|' /C calc'!A0"
    rows.loc[2, "colour"] = "+1+1"
    rows[FORMULA] = ["=1+1", "-2+3", "\t=1", "\r=1", "plain", "@x", "+x", "=HYPERLINK(\"http://x\")"]
    return rows


def assert_neutralised(text: str) -> None:
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    cells = list(frame.columns) + [v for column in frame.columns for v in frame[column]]
    dangerous = [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and not _number(c))]
    assert not dangerous, dangerous
    assert "'" + FORMULA in frame.columns
    assert "'" + FORMULA in list(frame["colour"])


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_cli_predict_neutralises_formulas(store, home, tmp_path):
    """Protection: safe_csv.to_safe_csv on the CLI's `predict --out` and stdout."""
    run_id = trained_run(store, make_classification_frame(n=200))
    new = tmp_path / "new.csv"
    formula_rows().to_csv(new, index=False, quoting=csv.QUOTE_NONNUMERIC)
    env = dict(os.environ, WORKBENCH_HOME=str(home))
    out = tmp_path / "out.csv"
    done = subprocess.run([sys.executable, "-m", "workbench", "predict", run_id, str(new), "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_neutralised(out.read_text())


def test_predict_page_download_neutralises_formulas(store, monkeypatch):
    """Protection: the Predict page's download goes through to_safe_csv."""
    from tests.test_pages import captured_downloads

    run_id = trained_run(store, make_classification_frame(n=200))
    downloads = captured_downloads(monkeypatch)
    at = AppTest.from_file(str(ROOT / "pages" / "predict.py"), default_timeout=TIMEOUT).run()
    at.file_uploader(key="predict_upload").upload(
        "new.csv", formula_rows().to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC).encode(), "text/csv")
    at.run()
    assert not at.exception and not at.error, texts(at.error)
    assert at.download_button(key="download_predictions") and run_id
    assert_neutralised(downloads[-1].decode())


# -- nothing from a user file is unpickled or evaluated --------------------------------------------


UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}


def python_sources() -> list[Path]:
    files = [ROOT / "app.py", *(ROOT / "workbench").rglob("*.py"), *(ROOT / "pages").rglob("*.py"),
             *(ROOT / "ui").rglob("*.py")]
    return [f for f in files if f.is_file()]


def _is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def find_dangerous_calls(files: list[Path]) -> list[str]:
    """Read each source's syntax tree: an import of a pickling module (however it is used later), a call of
    eval/exec, torch.load without weights_only=True, pd.read_pickle, numpy's allow_pickle=True, skops'
    trusted=True, or yaml.load without a safe loader."""
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            where = f"{path.name}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                found += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
                found.append(f"{where}: from {node.module} import")
            elif isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                keywords = {k.arg: k.value for k in node.keywords}
                if isinstance(func, ast.Name) and name in UNSAFE_BUILTINS:
                    found.append(f"{where}: {name}(")
                elif name == "load" and ast.unparse(func) == "torch.load" and not _is_true(keywords.get("weights_only")):
                    found.append(f"{where}: torch.load without weights_only=True")
                elif name == "read_pickle":
                    found.append(f"{where}: read_pickle")
                elif name == "load" and ast.unparse(func).startswith("yaml.") and "Safe" not in ast.unparse(node):
                    found.append(f"{where}: yaml.load without a safe loader")
                for flag in ("allow_pickle", "trusted"):
                    if flag in keywords and _is_true(keywords[flag]):
                        found.append(f"{where}: {flag}=True")
    return found


def test_no_code_path_unpickles_or_evaluates(tmp_path):
    """Protection: the sources themselves. The scanner is first shown to catch a planted file."""
    planted = tmp_path / "planted.py"
    planted.write_text("import torch\nimport pickle as p\nfrom dill import loads\nunpickle = p.loads\n"
                       "y = torch.load(f)\nz = eval(s)\nok = torch.load(f, weights_only=True)\n"
                       "sio.load(f, trusted=True)\nmodel.eval()  # a method, not the builtin\n")
    assert [line.split(": ", 1)[1] for line in find_dangerous_calls([planted])] == [
        "import pickle", "from dill import", "torch.load without weights_only=True", "eval(", "trusted=True"]
    sources = python_sources()
    assert len(sources) > 20
    assert find_dangerous_calls(sources) == []


class Tripwire:
    """A type this app never writes; loading it runs __setstate__, which leaves a mark."""


    def __init__(self, marker: str):
        self.marker_path = marker

    def __setstate__(self, state):
        self.__dict__.update(state)
        Path(state["marker_path"]).write_text("code ran while loading")


def test_tampered_skops_file_is_refused_and_nothing_runs(store, tmp_path):
    """Protection: artifacts.load_skops refuses types outside skops' trust list and ALLOWED_SKOPS_TYPES."""
    from workbench.predict import predict_for_run

    frame = make_classification_frame(n=200)
    run_id = trained_run(store, frame, model="mlp")
    run_dir = store.settings.runs_dir / run_id
    marker = tmp_path / "ran.txt"
    tampered = FunctionTransformer(func=Tripwire(str(marker)))
    sio.dump(tampered, run_dir / "preprocessor.skops")
    assert any("Tripwire" in t for t in sio.get_untrusted_types(file=run_dir / "preprocessor.skops"))
    with pytest.raises(UserError, match="contains types this app never writes"):
        predict_for_run(store, run_id, frame.drop(columns=["label"]).head(3))
    assert not marker.exists(), "loading the tampered file ran its code"

    # The same for a classical model's estimator file.
    classical = trained_run(store, make_classification_frame(n=200, seed=1), model="random_forest")
    sio.dump(FunctionTransformer(func=Tripwire(str(marker))), store.settings.runs_dir / classical / "model.skops")
    with pytest.raises(UserError):
        predict_for_run(store, classical, frame.drop(columns=["label"]).head(3))
    assert not marker.exists()


# -- access control ---------------------------------------------------------------------------------


def app(monkeypatch, password: str | None = None, env_password: str | None = None) -> AppTest:
    if env_password is None:
        monkeypatch.delenv("WORKBENCH_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("WORKBENCH_PASSWORD", env_password)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    if password is not None:
        at.secrets["password"] = password
    return at


PAGES = ["pages/home.py", "pages/data.py", "pages/train.py", "pages/runs.py", "pages/predict.py"]
TITLES = {"pages/home.py": "Workbench", "pages/data.py": "Data", "pages/train.py": "Train",
          "pages/runs.py": "Runs & Compare", "pages/predict.py": "Predict"}


def shows_only_the_password_form(at: AppTest) -> bool:
    return ([t.value for t in at.title] == ["Workbench"] and [t.label for t in at.text_input] == ["Password"]
            and not at.metric and not at.info and not at.selectbox and not at.get("file_uploader"))


def test_without_configuration_every_page_is_open(home, monkeypatch):
    at = app(monkeypatch).run()
    assert not at.exception
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception
        assert TITLES[page] in [t.value for t in at.title]
        assert "Password" not in [t.label for t in at.text_input]


def test_shared_password_guards_every_page(home, monkeypatch):
    """Protection: ui.auth.require_access, called by app.py before navigation."""
    at = app(monkeypatch, password="correct horse battery staple").run()
    assert not at.exception
    assert shows_only_the_password_form(at)
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception
        assert shows_only_the_password_form(at), page
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["That password is not right."]
    assert shows_only_the_password_form(at)

    at.text_input[0].input("correct horse battery staple")
    at.button[0].click().run()
    assert not at.exception
    assert "Password" not in [t.label for t in at.text_input]
    assert "Predict" in [t.value for t in at.title]  # the page that was asked for
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception and TITLES[page] in [t.value for t in at.title]
        assert "Password" not in [t.label for t in at.text_input]
    assert at.switch_page("pages/home.py").run().metric


@pytest.mark.parametrize("page", PAGES)
def test_a_page_run_without_app_py_asks_for_the_password_too(home, monkeypatch, page):
    """Protection: require_access at the top of every page. Streamlit runs pages/<name>.py directly (not
    app.py) for a URL like /data until some session has reached st.navigation, i.e. on a fresh server
    whose visitors have not logged in yet."""
    monkeypatch.delenv("WORKBENCH_PASSWORD", raising=False)
    at = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT)
    at.secrets["password"] = "s3cret"
    at.run()
    assert not at.exception
    assert shows_only_the_password_form(at)


def test_password_from_the_environment_guards_too(home, monkeypatch):
    at = app(monkeypatch, env_password="from-env").run()
    assert shows_only_the_password_form(at)
    at.text_input[0].input("from-env")
    at.button[0].click().run()
    assert not at.exception and at.metric


def test_readme_says_how_to_secure_a_hosted_workbench():
    readme = (ROOT / "README.md").read_text()
    assert "SECURITY.md" in readme
    assert re.search(r"^#+ Securing a hosted workbench", readme, re.M)
    security = (ROOT / "SECURITY.md").read_text()
    assert "WORKBENCH_PASSWORD" in security and "[auth]" in security
