"""Optional access control for a hosted workbench. Without configuration the app is open (localhost).

Two ways to close it, both through Streamlit secrets (.streamlit/secrets.toml) or the environment:
- a single shared password: `password = "..."` in secrets, or WORKBENCH_PASSWORD;
- OpenID Connect through `st.login`: an `[auth]` section (redirect_uri, cookie_secret, client_id,
  client_secret, server_metadata_url), which needs the Authlib package installed.

Wrong password guesses are counted by the server process, per browser session and per client address, so a new tab
or a reload starts no fresh count: after FREE_GUESSES wrong ones each next guess waits twice as long as the one before,
up to LONGEST_WAIT_S.
"""

from __future__ import annotations

import hmac
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

_SESSION_KEY = "workbench_access_granted"
_GUESSER_KEY = "workbench_guesser"
FREE_GUESSES = 3
FIRST_WAIT_S = 2.0
LONGEST_WAIT_S = 15 * 60.0
FORGET_AFTER_S = 60 * 60.0  # longer than the longest wait: a client quiet this long starts afresh


@dataclass
class _Failures:
    count: int
    last_at: float


class GuessLimiter:
    """Wrong guesses per client (a session or an address), shared by every session of this server process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()  # sessions run their scripts in threads of their own
        self._failures: dict[str, _Failures] = {}

    def wait_s(self, client: str) -> float:
        """Seconds until this client may guess again (0: now)."""
        with self._lock:
            failures = self._failures.get(client)
            if failures is None or failures.count < FREE_GUESSES:
                return 0.0
            wait = min(FIRST_WAIT_S * 2.0 ** min(failures.count - FREE_GUESSES, 20), LONGEST_WAIT_S)
            return max(0.0, failures.last_at + wait - self.clock())

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            for quiet in [c for c, f in self._failures.items() if now - f.last_at > FORGET_AFTER_S]:
                del self._failures[quiet]
            failures = self._failures.setdefault(client, _Failures(0, now))
            failures.count += 1
            failures.last_at = now

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


GUESSES = GuessLimiter()


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
        check_password(entered, password)
    st.stop()


def check_password(entered: str, password: str) -> None:
    """Let the session in, or say why not; a guess during the wait is not even compared."""
    # Behind a proxy every visitor has the proxy's address: they then share one count. The address is None on
    # localhost, and no string under AppTest's stand-in runtime.
    address = st.context.ip_address
    clients = (f"address {address if isinstance(address, str) else 'local'}",
               f"session {st.session_state.setdefault(_GUESSER_KEY, secrets.token_hex(8))}")
    wait = max(GUESSES.wait_s(client) for client in clients)
    if wait > 0:
        seconds = math.ceil(wait)
        st.error(f"Too many wrong passwords. Try again in {seconds:d} second{'' if seconds == 1 else 's'}.")
        return
    if hmac.compare_digest(entered.encode(), password.encode()):
        for client in clients:
            GUESSES.succeeded(client)
        st.session_state[_SESSION_KEY] = True
        st.rerun()
    for client in clients:
        GUESSES.failed(client)
    st.error("That password is not right.")
