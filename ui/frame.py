"""Every page runs inside app.py: its page setup, access check and navigation.

Streamlit keeps the legacy `pages/` folder active until some session reaches `st.navigation`, so when the first
URL opened after the server starts is a page's (a bookmark, or a tab reloading after a restart), Streamlit runs
that file alone: no wide layout, a sidebar listing file names. Such a page sends the visitor through app.py and
back to itself.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAPIException

_FRAMED_KEY = "workbench_framed"
_RESUME_KEY = "workbench_resume_page"


def mark_framed() -> None:
    """app.py: this session's pages run inside the app from now on."""
    st.session_state[_FRAMED_KEY] = True


def resume_page() -> None:
    """app.py, after st.navigation: go on to the page that was opened before the app had started."""
    resume = st.session_state.pop(_RESUME_KEY, None)
    if resume:
        page, query = resume
        st.switch_page(page, query_params=query)


def require_frame(page_file: str) -> None:
    """First line of every page: outside app.py, run app.py and come back to this page."""
    if st.session_state.get(_FRAMED_KEY):
        return
    # The address's query (a shared /run?run=ID) comes along: switching pages would drop it.
    st.session_state[_RESUME_KEY] = (f"pages/{Path(page_file).name}", st.query_params.to_dict())
    try:
        st.switch_page("app.py")
    except StreamlitAPIException:  # no app.py beside this page (a page tested on its own): render it as it is
        st.session_state.pop(_RESUME_KEY, None)
