"""The options the dashboard runs Streamlit with: what an operator's browser is protected by."""

from __future__ import annotations

from redrive.dashboard.mount import STREAMLIT_OPTIONS


def test_xsrf_protection_stays_on_and_nothing_leaks_to_the_browser() -> None:
    assert STREAMLIT_OPTIONS["server.enableXsrfProtection"] is True
    assert STREAMLIT_OPTIONS["client.showErrorDetails"] == "none"  # no tracebacks in an operator's browser
    assert STREAMLIT_OPTIONS["browser.gatherUsageStats"] is False
