"""Optional access control for a hosted workbench. Without configuration the app is open (localhost).

Two ways to close it, both through Streamlit secrets (.streamlit/secrets.toml) or the environment:
- a single shared password: `password = "..."` in secrets, or WORKBENCH_PASSWORD;
- OpenID Connect through `st.login`: an `[auth]` section (redirect_uri, cookie_secret, client_id,
  client_secret, server_metadata_url), which needs the Authlib package installed.
"""

from __future__ import annotations

import hmac
import os

import streamlit as st

_SESSION_KEY = "workbench_access_granted"


def _secret(key: str):
    try:
        return st.secrets.get(key)
    except Exception:  # no secrets file at all: nothing configured
        return None


def shared_password() -> str | None:
    return _secret("password") or os.environ.get("WORKBENCH_PASSWORD") or None


def oidc_configured() -> bool:
    return bool(_secret("auth"))


def require_access(logout_button: bool = True) -> None:
    """Stop the script run here unless the visitor may use the app.

    app.py calls it before navigation, and every page calls it again first (with logout_button=False):
    Streamlit runs a file of the `pages/` folder directly, without app.py, when a URL such as /data is
    opened before any session has reached `st.navigation`, so the page itself must check too.
    """
    if oidc_configured():
        if not st.user.is_logged_in:
            st.title("Workbench")
            st.write("Please log in to use this workbench.")
            st.button("Log in", on_click=st.login, type="primary")
            st.stop()
        if logout_button:
            st.sidebar.button("Log out", on_click=st.logout)
        return
    password = shared_password()
    if password is None or st.session_state.get(_SESSION_KEY):
        return
    st.title("Workbench")
    with st.form("login"):
        entered = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Enter", type="primary")
    if submitted:
        if hmac.compare_digest(entered.encode(), password.encode()):
            st.session_state[_SESSION_KEY] = True
            st.rerun()
        st.error("That password is not right.")
    st.stop()
