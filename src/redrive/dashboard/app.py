"""The dashboard's entry script (run by Streamlit): sign in with an API token, then the pages.

Nothing runs on import; Streamlit runs this file as ``__main__``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from redrive.dashboard import session
from redrive.dashboard.client import ApiError

PAGES = Path(__file__).with_name("pages")
NAVIGATION = (  # file, title, url path, icon
    ("overview.py", "Overview", "overview", ":material/monitor_heart:"),
    ("alerts.py", "Alerts", "alerts", ":material/notifications:"),
    ("executions.py", "Executions", "executions", ":material/list:"),
    ("dead_letters.py", "Dead letters", "dead-letters", ":material/inbox:"),
    ("error_groups.py", "Error groups", "error-groups", ":material/bug_report:"),
    ("triggers.py", "Triggers", "triggers", ":material/bolt:"),
    ("destinations.py", "Destinations", "destinations", ":material/hub:"),
    ("system.py", "System", "system", ":material/dns:"),
)


def sign_in_form() -> None:
    """Ask for an API token; keep it in the session once the API accepts it."""
    st.title("redrive")
    st.caption(f"Sign in to the redrive API at {session.api_url()}")
    with st.form("sign_in"):
        token = st.text_input("API token", type="password", placeholder="rdv_…", key="token_input")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        if not token.strip():
            st.error("Paste an API token (`redrive tokens create NAME --role viewer` makes one).")
            return
        try:
            session.sign_in(token.strip())
        except ApiError as exc:
            if exc.status == 401:
                st.error(f"**Sign-in refused**: {exc.message}")
            else:
                session.problem(exc)
            return
        st.session_state.pop("token_input", None)
        st.rerun()


def main() -> None:
    """Sign in, or show the pages."""
    st.set_page_config(page_title="redrive", page_icon=":material/replay:", layout="wide")
    who = session.me()
    if who is None:
        sign_in_form()
        return
    with st.sidebar:
        st.markdown(f"Signed in as **{who.name}** ({who.role})")
        if st.button("Sign out", key="sign_out"):
            session.sign_out()
            st.rerun()
    pages = [
        st.Page(PAGES / file, title=title, url_path=url, icon=icon, default=index == 0)
        for index, (file, title, url, icon) in enumerate(NAVIGATION)
    ]
    st.navigation(pages).run()


if __name__ == "__main__":
    main()
