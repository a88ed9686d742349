"""What one browser session holds (the API's address, the token, who it is) and how API problems are shown.

The token lives only in Streamlit's server-side session state: never in the URL, a cookie or a log line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import streamlit as st

from redrive.dashboard.client import ApiError, DashboardClient, Me, Role
from redrive.dashboard.mount import API_URL_ENV
from redrive.tokens import CLIENT_ADDRESS_HEADER, PROXY_KEY_HEADER, local_proxy_key

DEFAULT_API = "http://127.0.0.1:8000"
TOKEN, ME, API = "redrive_token", "redrive_me", "redrive_api_url"

# Titles for the API's refusals, chosen by the error body's ``code``; the message shown is the API's own.
REFUSALS = {
    "not_replayable": "Not replayable",
    "replay_limit": "Replay limit reached",
    "rate_limited": "Replayed too recently",
    "replay_in_progress": "A bulk replay is already running",
    "not_running": "Already finished",
    "forbidden": "Your role does not allow this",
    "not_found": "Not found",
    "unknown_trigger": "Unknown trigger",
    "storage_unavailable": "The database is unavailable",
    "too_many_failures": "Too many failed sign-ins",
}


def api_url() -> str:
    """The API this session talks to: set by ``redrive dashboard --url``, or the server the dashboard is mounted in."""
    return str(st.session_state.get(API) or os.environ.get(API_URL_ENV) or DEFAULT_API)


def me() -> Me | None:
    """Who is signed in, or None."""
    found = st.session_state.get(ME)
    return found if isinstance(found, Me) else None


def can(role: Role) -> bool:
    """True when the signed-in token's role is at least ``role``: decides which buttons appear."""
    who = me()
    return who is not None and who.can(role)


def _browser_headers() -> dict[str, str]:
    """Tell the API whose request this is, so that its failure limiter counts the browser, not this server.

    Only the API served by this same process (or a sibling it started) knows the proxy key; a standalone dashboard's
    calls count against its own address. Streamlit reports no address for a browser on the loopback interface: it
    shares the server's address then, and there is nothing to add.
    """
    address = st.context.ip_address
    if not isinstance(address, str):  # None on loopback (and not a string at all under Streamlit's AppTest)
        return {}
    return {CLIENT_ADDRESS_HEADER: address, PROXY_KEY_HEADER: local_proxy_key()}


@contextmanager
def client() -> Iterator[DashboardClient]:
    """A client for this session's API with this session's token, closed after the block."""
    api = DashboardClient(api_url(), st.session_state.get(TOKEN), headers=_browser_headers())
    try:
        yield api
    finally:
        api.close()


def sign_in(token: str) -> None:
    """Check ``token`` against the API; keep it in the session when it is accepted, else raise ApiError."""
    api = DashboardClient(api_url(), token, headers=_browser_headers())
    try:
        who = api.me()
    finally:
        api.close()
    st.session_state[TOKEN] = token
    st.session_state[ME] = who


def sign_out() -> None:
    """Forget the token and everything derived from it."""
    for key in list(st.session_state.keys()):
        if key != API:
            del st.session_state[key]


def refusal(exc: ApiError) -> None:
    """Show an API refusal: a title chosen by its ``code`` and the API's own message."""
    st.error(f"**{REFUSALS.get(exc.code, 'The API refused')}**: {exc.message}")


def operator_page(title: str, done_key: str, body: Callable[[], None]) -> None:
    """A page whose operator buttons report back under ``done_key``: its title, the last action's outcome (a refusal
    or a success line, shown once), then ``body``."""
    st.title(title)
    outcome = st.session_state.pop(done_key, None)
    if isinstance(outcome, ApiError):
        refusal(outcome)
    elif outcome:
        st.success(outcome)
    body()


def problem(exc: ApiError) -> None:
    """A banner for a failed API call: unreachable or slow, token no longer valid, or a refusal. Never a traceback."""
    if exc.code == "unreachable":
        st.error(
            f"**The redrive API is not answering** at {api_url()}. What this page shows is withheld until it "
            "answers again; the page retries on its own.",
            icon="🚨",
        )
        st.caption(exc.message)
    elif exc.status == 401:
        st.error(f"**Your token is no longer accepted**: {exc.message}. Sign out and sign in again.", icon="🔒")
    else:
        refusal(exc)


@contextmanager
def guarded() -> Iterator[None]:
    """Run a block of API calls; an ApiError becomes a banner instead of a traceback."""
    try:
        yield
    except ApiError as exc:
        problem(exc)
