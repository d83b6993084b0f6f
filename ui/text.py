"""Text from files and people, shown as the characters it is made of.

Streamlit renders markdown in st.markdown/write/caption/info/warning/error/success, titles, metric labels and
values, widget labels and help, tab and expander labels and progress texts. A column named
`[Sign in again](https://evil.example)` would become a live link there, and `![t](http://host/t.png)` an image every
viewer's browser fetches. Every user-supplied string that reaches one of those calls goes through
`escape_markdown` (notes through `show_notes`); tests/test_security.py scans pages/ and ui/ for calls that skip it.
Options of selectboxes and multiselects (and their format_func), placeholders and table cells are plain text in
Streamlit: escaping them would show the backslashes.

Streamlit 1.67's markdown (react-markdown with GFM, remark-math, remark-directive, remark-emoji and plugins of its
own) acts in two stages, and each needs its own defence:
- the parser reads links, images, autolinks `<...>`, emphasis, code, headings, lists, tables, HTML, `$` maths and
  `:name[...]` directives from the source: a backslash before every ASCII punctuation character turns each into
  the plain character (CommonMark allows that escape for all of them), and line breaks become spaces so no block
  can start inside the text;
- plugins then rewrite the parsed *text*, where those escapes are already gone: GFM's bare-URL, `www.` and email
  autolinks, `:emoji:`, `:streamlit:` (an image) and `:material_icon:` shortcodes, and arrows (`->` becomes →).
  An invisible WORD JOINER (U+2060) after each `:` and `@`, after `www` before its dot and inside `->`-like pairs
  breaks every one of those patterns while the visible text stays the same.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

import streamlit as st

WORD_JOINER = "\u2060"
_LINE_BREAKS = re.compile(r"[\t\n\v\f\r\x1c-\x1e\x85\u2028\u2029]")
# Where text-level plugins would match: after ':' (emoji, icons, 'https:'), after '@' (emails), between 'www' and
# its dot (bare 'www.' links) and inside arrow pairs ('->', '<-', '--', '>=', '<=', '~=').
_PLUGIN_PATTERNS = re.compile(r"(?<=[:@])|(?<=[wW]{3})(?=\.)|(?<=[-<>~])(?=[->=])")
_ASCII_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def escape_markdown(text: object) -> str:
    """`text` as one line of markdown that Streamlit shows as exactly these characters, with nothing to click or
    fetch. Put the result into plain markdown text (also inside **bold**), never inside a `code span` (backslashes
    would show) nor right after a ':' or '@' of the template (the text could complete a shortcode or a URL)."""
    line = _LINE_BREAKS.sub(" ", str(text))
    escaped = _ASCII_PUNCTUATION.sub(r"\\\1", _PLUGIN_PATTERNS.sub(WORD_JOINER, line))
    # Spaces at either end could indent the line into a code block or end it with a hard line break.
    if escaped.startswith(" "):
        escaped = "&#32;" + escaped[1:]
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "&#32;"
    return escaped


def chart_text(text: object) -> str:
    """`text` for a plotly title, axis, tick or legend: plotly reads `<a href>`, `<b>`, `<br>`... in them and shows
    `&lt;` as '<'."""
    return html.escape(str(text), quote=False)


def show_notes(notes: Iterable[object]) -> None:
    """Notes about a file or its rows (what the reader repaired, values that did not parse...), one box each."""
    for note in notes:
        st.info(escape_markdown(note))
