"""Hostile input and access control: what a file or a visitor could try, and what stops it.

Each test names the protection it checks; without that protection it fails.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import http.server
import io
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import skops.io as sio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import FunctionTransformer
from streamlit.testing.v1 import AppTest

from tests.conftest import make_classification_frame
from tests.test_pages import texts, visible
from ui import auth, charts
from ui.text import WORD_JOINER, chart_text, escape_markdown
from workbench import datasets, jobs
from workbench.errors import UserError
from workbench.runconfig import RunConfig
from workbench.store import RunResult, RunStatus, Store

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60
LONG = 90_000  # ms for a browser expectation: a loaded 2-core machine starts a worker slowly
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
FORMULA = "=cmd|' /C calc'!A0"


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


# -- markdown in names and values ------------------------------------------------------------------


LINK = "[Session expired - click here to sign in again](https://evil.example/login)"
ASCII_PUNCTUATION = r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"""
LINE_BREAKS = "\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029"
# Pieces of markdown that Streamlit 1.67 renders as something other than their characters.
MARKUP = [LINK, "![t](http://127.0.0.1:1/t.png)", "<a href='https://evil.example'>x</a>", "<img src=x>",
          "<https://evil.example>", "https://evil.example/x", "www.evil.example", "WWW.EVIL.EXAMPLE", "me@evil.example",
          "mailto:me@evil.example", ":smile:", ":+1:", ":streamlit:", ":material/home:", ":material_home:", ":red[red]",
          ":blue-background[bg]", ":small[s]", ":help[tip]", "$x^2$", "$$y$$", "`code`", "``co`de``", "*em*", "_em_",
          "**b**", "__b__", "~~s~~", "# h", "## h", "- i", "+ i", "* i", "1. i", "1) i", "> q", "| a | b |", "---",
          "===", "***", "    code", "\tcode", "&amp;", "&#60;", "\\", "\\*", "[^1]", "[x]: https://evil.example",
          "a -> b", "a <- b", "a <-> b", "a -- b", "a >= b", "a <= b", "a ~= b", "  \n", "\\\n", "\n\n# h"]
markdown_texts = st.one_of(
    st.text(),
    st.lists(st.sampled_from(MARKUP + list(ASCII_PUNCTUATION) + list(LINE_BREAKS) + [" ", "w", "é", "1", "é_"]),
             max_size=12).map("".join),
)
# The text-level patterns of Streamlit's plugins (its frontend bundle, in Python's syntax; \w is ASCII there).
PLUGIN_PATTERNS = [r":(?!material/|streamlit:)[\w+-][\w_+-]*:", r":streamlit:", r":material_\w+:",
                   r"(?i:https?://|www(?=\.))[-.\w]+", r"[-.\w+]+@[-\w]+(?:\.[-\w]+)+",
                   r"(?:^|\s)(?:<->|->|<-|--|>=|<=|~=)(?:\s|$)"]


def as_shown(text: str) -> str:
    """What a browser shows of text in a paragraph: line breaks and runs of spaces are one space, none at the ends;
    invisible format characters (the word joiner, a byte-order mark) are nothing."""
    visible_only = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return re.sub(rf"[ {LINE_BREAKS}]+", " ", visible_only).strip(" ")


@settings(derandomize=True)  # the same examples on every run
@given(markdown_texts)
def test_escaped_markdown_shows_the_same_characters_and_nothing_else(text):
    """Protection: ui.text.escape_markdown. By CommonMark a backslash before ASCII punctuation is that character, so
    text made only of escaped punctuation and other characters starts no link, image, HTML, emphasis, code, heading,
    list, table, maths or directive; on one line no block starts either; the word joiners break every text-level
    pattern Streamlit's plugins rewrite (autolinks, shortcodes, arrows)."""
    escaped = escape_markdown(text)
    assert visible(escaped) == re.sub(f"[{LINE_BREAKS}]", " ", text)
    assert as_shown(visible(escaped)) == as_shown(text)
    body = escaped.removeprefix("&#32;").removesuffix("&#32;")
    punctuation = re.escape(ASCII_PUNCTUATION)
    assert re.fullmatch(rf"(?:\\[{punctuation}]|[^{punctuation}])*", body), escaped
    # One line, neither indented (a code block) nor ending in spaces (a hard line break before the next).
    assert not re.search(f"[{LINE_BREAKS}]", escaped) and not escaped.startswith(" ") and not escaped.endswith(" ")
    parsed_text = re.sub(rf"\\([{punctuation}])", r"\1", body)  # what the parser hands to the plugins
    for pattern in PLUGIN_PATTERNS:
        assert not re.search(pattern, parsed_text, re.ASCII), (pattern, escaped)


def test_escaping_keeps_plain_text_as_it_is():
    assert escape_markdown("Customer age 42 é") == "Customer age 42 é"
    assert escape_markdown(LINK) == ("\\[Session expired \\- click here to sign in again\\]\\(https\\:" + WORD_JOINER
                                     + "\\/\\/evil\\.example\\/login\\)")


RENDERER = """
import json, os
from pathlib import Path

import streamlit as st

from ui.text import escape_markdown

cases = json.loads(Path(os.environ["MARKDOWN_CASES"]).read_text())
for i, text in enumerate(cases["texts"]):
    with st.container(key=f"case-{i}"):
        st.markdown(escape_markdown(text))
        st.caption(escape_markdown(text))
        st.metric(escape_markdown(text), escape_markdown(text))
st.markdown(f"batch {cases['batch']}")
"""
# Elements that markdown makes; none of them may come out of escaped text.
MARKUP_ELEMENTS = ("a, img, image, svg, code, pre, em, strong, del, h1, h2, h3, h4, h5, h6, ul, ol, li, table, "
                   "blockquote, hr, input, br, .katex, span[role=img], span[style], span[class*=stMarkdown]")


@pytest.fixture
def markdown_renderer(tmp_path):
    """The app's own markdown renderer: a Streamlit server and Chromium showing the texts of a JSON file. One for all
    the examples of a test (so Hypothesis's health check about function-scoped fixtures is off there)."""
    from playwright.sync_api import sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, served_app

    folder = tmp_path
    (folder / "render.py").write_text(RENDERER)
    cases = folder / "cases.json"
    cases.write_text(json.dumps({"batch": 0, "texts": []}))
    with served_app(folder / "home", str(folder / "render.py"), MARKDOWN_CASES=str(cases)) as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            yield page, url, cases
        finally:
            browser.close()


def render_in_browser(renderer, texts: list[str]) -> list[dict]:
    """Each text's escaped markdown as Chromium shows it: the text of each element and the markup inside it."""
    from playwright.sync_api import expect

    page, url, cases = renderer
    batch = json.loads(cases.read_text())["batch"] + 1
    cases.write_text(json.dumps({"batch": batch, "texts": texts}))
    page.goto(url)
    expect(page.get_by_text(f"batch {batch}", exact=True)).to_be_visible(timeout=LONG)
    expect(page.get_by_test_id("stMetricValue")).to_have_count(len(texts), timeout=LONG)  # metrics load late
    return page.evaluate("""([count, markup]) => [...Array(count).keys()].map(i => {
        const box = document.querySelector(`.st-key-case-${i}`);
        const parts = box.querySelectorAll('[data-testid=stMarkdown], [data-testid=stMetricLabel], '
                                           + '[data-testid=stMetricValue]');
        return {texts: [...parts].map(p => p.textContent),
                markup: [...box.querySelectorAll(markup)].map(e => e.outerHTML)};
    })""", [len(texts), MARKUP_ELEMENTS])


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's Chromium")
@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@example(texts=MARKUP)
@given(texts=st.lists(markdown_texts.filter(lambda t: "\x00" not in t), min_size=40, max_size=40))
def test_streamlit_shows_escaped_markdown_as_its_characters(markdown_renderer, texts):
    """Protection: ui.text.escape_markdown, against Streamlit 1.67's own renderer in Chromium: as a paragraph, a
    caption, a metric's label and its value, each text shows exactly its characters and makes no element."""
    for text, shown_as in zip(texts, render_in_browser(markdown_renderer, texts), strict=True):
        assert len(shown_as["texts"]) == 4, text
        assert [as_shown(t) for t in shown_as["texts"]] == [as_shown(text)] * 4, text
        assert shown_as["markup"] == [], text


@settings(derandomize=True)
@given(st.text())
def test_chart_texts_carry_no_tags(text):
    """Protection: ui.text.chart_text. Plotly reads <a href>, <b>, <br>... in titles, ticks and legends."""
    escaped = chart_text(text)
    assert "<" not in escaped and ">" not in escaped
    assert escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


def test_charts_show_names_and_labels_as_text():
    """Protection: ui/charts.py passes file texts through chart_text."""
    anchor = "<a href='https://evil.example'>x</a>"
    column = {"name": anchor, "distinct": 5, "histogram": {"labels": [anchor, "plain"], "counts": [3, 2]}}
    figures = [charts.histogram(column), charts.class_probabilities({anchor: 0.7, "b": 0.3}),
               charts.confusion_matrices([("run " + anchor, [anchor, "b"], [[1, 0], [0, 1]])])]
    for figure in figures:
        texts_drawn = list(strings_in(figure.to_plotly_json()))
        assert any("&lt;a href" in t for t in texts_drawn) and not any("<a " in t for t in texts_drawn)


def strings_in(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)


# Streamlit calls that render markdown: the positions and keywords of their markdown arguments ("*": all
# positional). Any call's `help` is a markdown tooltip too. Options of selectboxes and multiselects, placeholders and
# table cells are plain text and are not listed.
_LABEL = ((0,), ("label",))
MARKDOWN_ARGUMENTS: dict[str, tuple] = {
    **{name: ((0,), ("body",)) for name in ("markdown", "caption", "info", "warning", "error", "success", "toast",
                                            "title", "header", "subheader")},
    "write": ("*", ()),
    "metric": ((0, 1, 2), ("label", "value", "delta")),
    "progress": ((1,), ("text",)),
    "spinner": ((0,), ("text",)),
    "tabs": ((0,), ("tabs",)),
    "radio": ((0, 1), ("label", "options", "captions")),
    "page_link": ((1,), ("label",)),
    **{name: _LABEL for name in ("expander", "popover", "status", "button", "form_submit_button", "download_button",
                                 "link_button", "checkbox", "toggle", "selectbox", "multiselect", "select_slider",
                                 "slider", "text_input", "text_area", "number_input", "date_input", "time_input",
                                 "datetime_input", "file_uploader", "color_picker", "pills", "segmented_control",
                                 "camera_input", "audio_input", "chat_input", "feedback")},
}
# A format that only numbers accept (',', '.4f', 'd', '%'...): a string there raises instead of showing.
_NUMERIC_FORMAT = re.compile(r"[^{}]*(?:[,_][^{}]*|[bdeEfFgGnoxX%])")


class MarkdownScan:
    """Finds markdown-rendering calls with an argument that is neither a literal nor made of escape_markdown(...),
    len(...), numbers formatted as numbers, entries of an UPPER_CASE table of ours, and names assigned only such
    values; and escaped text put inside a `code span`, where its backslashes would show, or right after a ':' or
    '@' of ours."""

    def __init__(self, path: Path):
        self.path = path
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.module_bindings = self._bindings(self.tree)
        self.found: list[str] = []

    def run(self) -> list[str]:
        functions = [n for n in ast.walk(self.tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for scope in [self.tree, *functions]:
            bindings = self._bindings(scope)
            for node in self._scope_nodes(scope):
                if isinstance(node, ast.Call):
                    self._check_call(node, bindings)
        return self.found

    @staticmethod
    def _scope_nodes(scope: ast.AST):
        """The nodes of a module or function, without those of the functions and classes inside it."""
        stack = list(ast.iter_child_nodes(scope))
        while stack:
            node = stack.pop()
            yield node
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                stack.extend(ast.iter_child_nodes(node))

    def _bindings(self, scope: ast.AST) -> dict[str, list[ast.expr | None]]:
        """Every way each name is bound in the scope: the value of a plain assignment, or None for anything else
        (a parameter, loop variable, augmented assignment, import...)."""
        bindings: dict[str, list[ast.expr | None]] = {}

        def bind(target: ast.AST, value: ast.expr | None) -> None:
            if isinstance(target, ast.Name):
                bindings.setdefault(target.id, []).append(value)
            elif isinstance(target, ast.Tuple | ast.List):
                same_shape = isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts)
                for element, element_value in zip(target.elts, value.elts if same_shape else [None] * len(target.elts),
                                                  strict=True):
                    bind(element, element_value)

        if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = scope.args
            for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg,
                        arguments.kwarg]:
                if arg is not None:
                    bind(ast.Name(arg.arg), None)
        for node in self._scope_nodes(scope):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    bind(target, node.value)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr | ast.For | ast.comprehension):
                for name in ast.walk(node.target):
                    bind(name, node.value if isinstance(node, ast.AnnAssign) else None)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                for name in ast.walk(node.optional_vars):
                    bind(name, None)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bind(ast.Name(node.name), None)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    bind(ast.Name((alias.asname or alias.name).split(".")[0]), None)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                bind(ast.Name(node.name), None)
        return bindings

    def _check_call(self, call: ast.Call, bindings) -> None:
        name = call.func.attr if isinstance(call.func, ast.Attribute) else None
        arguments = [k.value for k in call.keywords if k.arg == "help"]
        if name in MARKDOWN_ARGUMENTS:
            positions, keywords = MARKDOWN_ARGUMENTS[name]
            arguments += [a for i, a in enumerate(call.args) if positions == "*" or i in positions]
            arguments += [k.value for k in call.keywords if k.arg in keywords]
        for argument in arguments:
            for part in self._unsafe(argument, bindings, frozenset()):
                self.found.append(f"{self.path.name}:{part.lineno}: {name or 'help'}(... {ast.unparse(part)} ...)")

    def _unsafe(self, node: ast.expr, bindings, seen: frozenset[str]) -> list[ast.expr]:
        """The parts of `node` that could carry user text into markdown."""
        if isinstance(node, ast.Constant):
            return []
        if isinstance(node, ast.JoinedStr):
            parts = []
            for before, value in zip([None, *node.values], node.values, strict=False):
                if not isinstance(value, ast.FormattedValue):
                    continue
                if isinstance(before, ast.Constant) and str(before.value).endswith(("`", ":", "@")):
                    # Inside a code span backslash escapes show as backslashes; after our ':' or '@' the text could
                    # complete a shortcode (':smile:'), an email or a URL ('https:' + '//...').
                    parts.append(value)
                spec = value.format_spec
                numeric = spec is not None and all(isinstance(v, ast.Constant) for v in spec.values) and \
                    _NUMERIC_FORMAT.fullmatch("".join(str(v.value) for v in spec.values))
                if not numeric:
                    parts += self._unsafe(value.value, bindings, seen)
            return parts
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self._unsafe(node.left, bindings, seen) + self._unsafe(node.right, bindings, seen)
        if isinstance(node, ast.IfExp):
            return self._unsafe(node.body, bindings, seen) + self._unsafe(node.orelse, bindings, seen)
        if isinstance(node, ast.BoolOp | ast.List | ast.Tuple):
            return [p for v in (node.values if isinstance(node, ast.BoolOp) else node.elts)
                    for p in self._unsafe(v, bindings, seen)]
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in ("escape_markdown", "len"):
                return []
            if (called == "join" and isinstance(func.value, ast.Constant) and len(node.args) == 1
                    and isinstance(node.args[0], ast.GeneratorExp | ast.ListComp)):
                return self._unsafe(node.args[0].elt, bindings, seen)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id.isupper():
            return []
        if isinstance(node, ast.Name) and node.id not in seen:
            values = bindings.get(node.id) or self.module_bindings.get(node.id)
            if values and None not in values and not any(self._unsafe(v, bindings, seen | {node.id}) for v in values):
                return []
        return [node]


def find_unescaped_markdown(files: list[Path]) -> list[str]:
    found = [finding for path in files for finding in MarkdownScan(path).run()]
    return sorted(found, key=lambda f: (f.split(":")[0], int(f.split(":")[1])))


def test_every_text_a_page_renders_as_markdown_is_escaped(tmp_path):
    """Protection: escape_markdown around every non-literal a page or ui helper renders as markdown. The scanner is
    first shown to catch a planted file."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import streamlit as st\nfrom ui.text import escape_markdown\nSTATUS = {'a': ':material/home:'}\n"
        "st.info(note)\n"                                             # 4: a variable
        "st.info(escape_markdown(note))\n"
        "st.caption(f'{n:,} rows in {escape_markdown(name)}, {STATUS[s]}')\n"
        "st.caption(f'in {name}')\n"                                  # 7: an f-string part
        "st.write(f'Columns: `{escape_markdown(c)}`')\n"             # 8: a code span
        "st.metric('Rows', rows)\n"                                   # 9: a metric value
        "left.metric(heading, 3, help=escape_markdown(tip))\n"        # 10: a label
        "st.selectbox('Column', names, format_func=str, help=tip)\n"  # 11: a help text
        "label = escape_markdown(name)\nst.button(label)\n"
        "text = 'Epoch'\ntext += name\nst.progress(0.5, text=text)\n"  # 16: a name made of user text
        "st.tabs(['Scores', name])\n"                                 # 17: a tab's label
        "st.write(', '.join(escape_markdown(c) for c in cols), ', '.join(cols))\n"  # 18: the second join
        "def f(message):\n    st.error(message)\n"                    # 20: a parameter
        "st.expander(f'{name:>10}')\n"                               # 21: a format that strings accept too
        "st.caption(f'mailto:{escape_markdown(who)}')\n"             # 22: glued to our ':'
    )
    assert [line.split(": ")[0] for line in find_unescaped_markdown([planted])] == [
        "planted.py:4", "planted.py:7", "planted.py:8", "planted.py:9", "planted.py:10", "planted.py:11",
        "planted.py:16", "planted.py:17", "planted.py:18", "planted.py:20", "planted.py:21", "planted.py:22"]
    sources = [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")]
    assert len(sources) >= 12
    assert find_unescaped_markdown(sources) == []


@contextlib.contextmanager
def tracking_server() -> Iterator[tuple[int, list[str]]]:
    """A web server on a free port that records every path asked of it: a fetched image URL shows up here."""
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requested
    finally:
        server.shutdown()
        server.server_close()


def markdown_frame(port: int) -> tuple[pd.DataFrame, dict[str, str]]:
    """Markdown and HTML where Data, Train, Runs and Predict show file contents: a column named like an image (the
    first column, so the histogram shows it), with image, link and HTML link values (plotly draws those); a column
    named like a link and an HTML image, written with thousands separators (the reader's note names it); backticks
    and shortcodes in a feature's name; script tags in names and values; and a rare class that is a link and an
    image (the imbalance warning names it)."""
    track = f"http://127.0.0.1:{port}"
    names = {"image": f"![t]({track}/track.png)", "link": f"{LINK} {IMG}",
             "code": "`price` :material/home: $x$ www.evil.example",
             "rare": f"[rare](https://evil.example/rare) ![r]({track}/rare.png)"}
    frame = make_classification_frame(n=60)
    values = [f"![v]({track}/value.png)", "[click](https://evil.example/v)", "<a href='https://evil.example/c'>c</a>"]
    frame.insert(0, names["image"], [values[i % 3] for i in range(len(frame))])
    frame[names["link"]] = [f"{10_000 + 37 * i:,}.5" for i in range(len(frame))]
    frame[names["code"]] = frame["x2"] * 3
    frame[SCRIPT] = frame["x1"].round(3)
    frame[IMG + " city"] = [IMG if i % 2 else SCRIPT for i in range(len(frame))]
    frame["label"] = frame["label"].where(~frame.index.isin([3, 17, 33, 49]), names["rare"])
    return frame, names


def shown(locator) -> str:
    """The text of the elements a locator finds now, as a person reads it (without the invisible word joiners that
    escape_markdown adds). It does not wait: callers poll it with wait_for."""
    return " ".join(" ".join(locator.all_inner_texts()).replace(WORD_JOINER, "").split())


def foreign_links(page, url: str) -> list[tuple[str, str]]:
    """Every link, image or embedded resource on the page that points anywhere but the app itself."""
    found = page.evaluate("""() => [...document.querySelectorAll('a, img, image, iframe, source, object, embed')]
        .map(e => [e.tagName, e.getAttribute('href') || e.getAttribute('xlink:href') || e.getAttribute('src') || ''])""")
    return [(tag, link) for tag, link in found
            if link and not link.startswith(("#", "/", "data:", "blob:", url))]


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's Chromium")
def test_file_contents_stay_text_in_a_browser(store, home, tmp_path):
    """Protection: escape_markdown on every page, chart_text in the charts, no unsafe_allow_html, and the upload limit
    in the browser. A file's names and values show as the characters they are on Data, Train, Runs and Predict: no
    link or image of theirs, nothing fetched, no script run; and a file over WORKBENCH_MAX_UPLOAD_MB never leaves
    the browser."""
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, choose, open_page, served_app, settle, wait_for

    too_big = tmp_path / "big.csv"
    too_big.write_bytes(b"a,b\n" + b"1,2\n" * 400_000)  # 1.6 MB, over the limit of 1 MB
    dialogs: list[str] = []
    uploads: list[str] = []
    with tracking_server() as (port, fetched):
        frame, names = markdown_frame(port)
        run_id = trained_run(store, frame)
        failed = jobs.submit_run(store, RunConfig(dataset_id=store.get_run(run_id).dataset_id, target="label",
                                                  model="mlp"))
        store.finish_run(failed.id, RunResult(RunStatus.FAILED, error=f"Column '{LINK}' broke the run."))
        with served_app(home, WORKBENCH_MAX_UPLOAD_MB="1") as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.on("request", lambda r: uploads.append(r.url) if "upload_file" in r.url else None)
                page.add_init_script("window.__xss = 0; window.alert = (m) => { window.__xss += 1; };")
                page.goto(url)
                page.get_by_role("heading", name="Workbench").wait_for()

                open_page(page, "Data")
                expect(page.get_by_text("Files up to 1 MB.")).to_be_visible(timeout=LONG)
                page.locator("input[type=file]").set_input_files(str(too_big))
                expect(page.get_by_text("or smaller")).to_be_visible(timeout=LONG)
                alerts = {kind: page.get_by_test_id(f"stAlertContent{kind}") for kind in ("Info", "Warning")}
                settle(page)
                choose(page, "Column you want to predict (optional)", "label")
                wait_for(lambda: names["rare"] in shown(alerts["Warning"].filter(has_text="imbalanced")), 60,
                         "the imbalance warning")
                assert names["link"] in shown(alerts["Info"].filter(has_text="thousands separators"))
                page.get_by_role("tab", name="Distribution").click()
                expect(page.locator(".js-plotly-plot").filter(visible=True).first).to_be_visible(timeout=LONG)
                assert foreign_links(page, url) == []

                open_page(page, "Train")
                wait_for(lambda: LINK in shown(page.get_by_test_id("stCaptionContainer").filter(
                    has_text="broke the run")), 60, "the failed run's message")
                page.get_by_label("Column to predict", exact=True).click()
                expect(page.get_by_role("option", name=SCRIPT, exact=True)).to_be_visible(timeout=LONG)
                page.keyboard.press("Escape")
                assert foreign_links(page, url) == []

                open_page(page, "Runs & Compare")
                expect(page.get_by_text("2 of 2 runs")).to_be_visible(timeout=LONG)
                assert foreign_links(page, url) == []

                open_page(page, "Predict")
                columns = page.get_by_test_id("stMarkdownContainer").filter(has_text="Upload rows with the columns")
                wait_for(lambda: all(names[k] in shown(columns) for k in ("image", "link", "code")), 60,
                         "the model's columns")
                page.get_by_role("tab", name="What if…").click()
                page.get_by_role("button", name="Predict this row").click()
                expect(page.get_by_test_id("stMetric")).to_be_visible(timeout=LONG)
                expect(page.locator(".js-plotly-plot").filter(visible=True).first).to_be_visible(timeout=LONG)
                assert names["image"] in shown(page.get_by_test_id("stMain"))  # a what-if field's label
                assert foreign_links(page, url) == []
                assert page.evaluate("window.__xss") == 0
                assert page.get_by_test_id("stException").count() == 0
            finally:
                browser.close()
        assert fetched == [], "a viewer's browser fetched a URL from the file"
    assert dialogs == [] and uploads == []
    assert len(store.list_datasets()) == 1  # the file over the limit never arrived


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
    """Protection: .streamlit/config.toml keeps XSRF on and listens on localhost (the upload cap follows
    WORKBENCH_MAX_UPLOAD_MB: test_pages.py::test_upload_limit_follows_the_setting)."""
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["enableXsrfProtection"] is True
    assert server["address"] == "127.0.0.1"
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
    from workbench.predict import load_model_for_run

    frame = make_classification_frame(n=200)
    run_id = trained_run(store, frame, model="mlp")
    run_dir = store.settings.runs_dir / run_id
    marker = tmp_path / "ran.txt"
    tampered = FunctionTransformer(func=Tripwire(str(marker)))
    sio.dump(tampered, run_dir / "preprocessor.skops")
    assert any("Tripwire" in t for t in sio.get_untrusted_types(file=run_dir / "preprocessor.skops"))
    with pytest.raises(UserError, match="contains types this app never writes"):
        load_model_for_run(store, run_id).predict(frame.drop(columns=["label"]).head(3))
    assert not marker.exists(), "loading the tampered file ran its code"

    # The same for a classical model's estimator file.
    classical = trained_run(store, make_classification_frame(n=200, seed=1), model="random_forest")
    sio.dump(FunctionTransformer(func=Tripwire(str(marker))), store.settings.runs_dir / classical / "model.skops")
    with pytest.raises(UserError):
        load_model_for_run(store, classical).predict(frame.drop(columns=["label"]).head(3))
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


TITLES = {"pages/home.py": "Workbench", "pages/data.py": "Data", "pages/train.py": "Train",
          "pages/runs.py": "Runs & Compare", "pages/run.py": "Run", "pages/sweeps.py": "Sweeps",
          "pages/deploy.py": "Deploy", "pages/monitor.py": "Monitor",
          "pages/predict.py": "Predict"}  # the page asked for last: Predict
PAGES = list(TITLES)


def test_every_page_is_guarded_by_the_password_tests():
    assert sorted(PAGES) == sorted(f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py"))


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


@pytest.fixture
def guess_clock(monkeypatch) -> list[float]:
    """A fresh count of wrong guesses (the server process keeps one for all its sessions) on a clock the test moves."""
    now = [1000.0]
    monkeypatch.setattr(auth, "GUESSES", auth.GuessLimiter(clock=lambda: now[0]))
    return now


def guess(at: AppTest, password: str) -> list[str]:
    at.text_input[0].input(password)
    at.button[0].click().run()
    assert not at.exception
    return [e.value for e in at.error]


def test_wrong_passwords_wait_longer_and_longer_in_every_tab(home, monkeypatch, guess_clock):
    """Protection: ui.auth.GUESSES, kept by the server process: a new session (a new tab) does not start afresh."""
    at = app(monkeypatch, password="right").run()
    for _ in range(auth.FREE_GUESSES):
        assert guess(at, "wrong") == ["That password is not right."]
    assert guess(at, "right") == ["Too many wrong passwords. Try again in 2 seconds."]  # not even compared
    assert shows_only_the_password_form(at)
    other_tab = app(monkeypatch, password="right").run()
    assert guess(other_tab, "right") == ["Too many wrong passwords. Try again in 2 seconds."]
    guess_clock[0] += 1.5
    assert guess(other_tab, "right") == ["Too many wrong passwords. Try again in 1 second."]
    guess_clock[0] += 0.5
    assert guess(other_tab, "wrong") == ["That password is not right."]
    assert guess(at, "right") == ["Too many wrong passwords. Try again in 4 seconds."]  # twice as long
    guess_clock[0] += 4
    assert guess(at, "right") == []
    assert not shows_only_the_password_form(at)
    assert guess(other_tab, "wrong") == ["That password is not right."]  # the right one cleared the count


@settings(derandomize=True)
@given(failures=st.integers(0, 60), quiet_s=st.floats(0, 2 * auth.FORGET_AFTER_S))
def test_the_wait_doubles_up_to_a_limit_and_is_forgotten_after_an_hour(failures, quiet_s):
    now = [0.0]
    guesses = auth.GuessLimiter(clock=lambda: now[0])
    for _ in range(failures):
        guesses.failed("tab")
    expected = 0.0 if failures < auth.FREE_GUESSES else min(
        auth.FIRST_WAIT_S * 2 ** (failures - auth.FREE_GUESSES), auth.LONGEST_WAIT_S)
    assert guesses.wait_s("tab") == expected and guesses.wait_s("another address") == 0
    now[0] += quiet_s
    assert guesses.wait_s("tab") == max(0.0, expected - quiet_s)
    guesses.failed("another address")  # forgets clients quiet for longer than FORGET_AFTER_S
    assert guesses.wait_s("tab") == (0.0 if quiet_s > auth.FORGET_AFTER_S else max(0.0, expected - quiet_s))


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
