"""No page ever shows a traceback: an unexpected error becomes one plain sentence with a reference id.

app.py runs every page inside `guarded()`; a fragment (which Streamlit reruns on its own, outside the page's
script) wraps its body the same way with `@guarded_fragment`. The details go to the server's log and to
`WORKBENCH_HOME/logs/errors.log`, under the reference id the visitor sees, so a report can be matched to them.
Streamlit's own control flow (st.stop, st.rerun, st.switch_page) raises BaseException subclasses and passes through.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from ui.text import escape_markdown
from workbench.config import get_settings
from workbench.errors import UserError, storage_error_message

log = logging.getLogger("workbench.ui")


def report_unexpected(exc: Exception) -> str:
    """Log `exc` with its traceback under a new reference id and return that id."""
    reference = secrets.token_hex(4)
    details = "".join(traceback.format_exception(exc))
    log.error("unexpected error %s\n%s", reference, details)
    with contextlib.suppress(Exception):  # a log that cannot be written must not hide the sentence
        folder = get_settings().home / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with open(folder / "errors.log", "a", encoding="utf-8") as log_file:
            print(f"--- {stamp} reference {reference}\n{details}", file=log_file)
    return reference


def show_error(exc: Exception) -> None:
    """One sentence for any exception: the user's own for UserError and storage failures, else a reference id."""
    if isinstance(exc, UserError):
        st.error(escape_markdown(exc))
        return
    plain = storage_error_message(exc)
    if plain:
        st.error(escape_markdown(plain))
        return
    reference = report_unexpected(exc)
    st.error(f"Something went wrong on this page and it stopped here. Nothing you saved is lost; reload the page "
             f"to try again. If it happens again, report reference **{escape_markdown(reference)}** (the details are in the "
             f"workbench's log).")


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Render the block; an exception ends it with one plain sentence instead of a traceback."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the point: nothing reaches Streamlit's traceback box
        show_error(exc)


def guarded_fragment(function: Callable[..., Any]) -> Callable[..., Any]:
    """For a fragment's body: Streamlit reruns a fragment alone, outside app.py's guard."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with guarded():
            return function(*args, **kwargs)

    return wrapper
