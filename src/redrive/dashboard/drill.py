"""The drill-down from an error group: the Executions and Dead letters pages narrowed by ``?fingerprint=``, with a
banner that names the group, links to the other page and lifts the narrowing."""

from __future__ import annotations

import streamlit as st

from redrive.dashboard.client import ApiError, DashboardClient
from redrive.dashboard.format import group_scope

PARAM = "fingerprint"


def lift() -> None:
    """Show every row again."""
    st.query_params.pop(PARAM, None)


def scope(api: DashboardClient, shown: str, other_page: str, other_label: str) -> str | None:
    """The fingerprint the page is narrowed to, or None; says so above the table. A malformed value is said and
    dropped (the page shows everything); an unknown group is said and kept (the page shows nothing)."""
    raw = st.query_params.get(PARAM)
    if raw is None:
        return None
    fingerprint = group_scope(raw)
    if fingerprint is None:
        st.warning(f"`?{PARAM}={raw[:40]}` is not an error-group fingerprint (16 lower-case hex digits): ignored.")
        return None
    left, middle, right = st.columns([6, 2, 2], vertical_alignment="center")
    try:
        group = api.error_group(fingerprint)
    except ApiError as exc:
        if exc.status != 404:
            raise
        left.warning(f"No error group has fingerprint `{fingerprint}`.")
    else:
        left.info(f"{shown} of error group **{group['title']}** (`{fingerprint}`, trigger {group['trigger']})")
        middle.page_link(other_page, label=other_label, query_params={PARAM: fingerprint})
    right.button(
        f"Show every {'execution' if shown == 'Executions' else 'dead letter'}", key="drill_lift", on_click=lift
    )
    return fingerprint
