"""Alerts: firing rules on top (what tripped them, since when), every rule's state, the channels' delivery health,
and a timeline of transitions with each notification's delivery status; an operator can send a test notification."""

from __future__ import annotations

from typing import Any

import streamlit as st

from redrive.dashboard import session, tables
from redrive.dashboard.client import ApiError

REFRESH_SECONDS = 5
DONE = "alert_action_done"


def _test(name: str) -> None:
    try:
        with session.client() as api:
            sent = api.test_alert(name)
    except ApiError as exc:
        st.session_state[DONE] = exc
        return
    st.session_state[DONE] = f"Test notification {sent['key']} queued for {', '.join(sent['channels'])}."


def firing_banners(rules: list[dict[str, Any]]) -> None:
    """One red banner per firing rule (the overview shows these first too)."""
    for rule in rules:
        if rule["state"] == "firing":
            st.error(f"**{rule['name']}** firing since {rule['since']}: {rule['summary'] or ''}", icon="🚨")


def channel_rows(channels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The health table: a channel with failures or retries in flight is marked."""
    return [{**c, "health": "failing" if c["failed"] else "retrying" if c["retrying"] else "ok"} for c in channels]


def timeline_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Transitions, newest first, with their deliveries in one cell."""
    return [
        {
            "at": t["at"],
            "rule": t["rule"],
            "kind": t["kind"],
            "title": t["title"],
            "deliveries": ", ".join(f"{n['channel']}: {n['status']} ×{n['attempts']}" for n in t["notifications"]),
        }
        for t in history
    ]


def _table(rows: list[dict[str, Any]], empty: str) -> None:
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch", column_config=tables.columns(rows))
    else:
        st.info(empty)


@st.fragment(run_every=REFRESH_SECONDS)
def live() -> None:
    """Fetch the rules, channels and history, then render."""
    with session.client() as api, session.guarded():
        found = api.alerts()
        history = api.alert_history(limit=100)
        firing_banners(found["items"])
        st.subheader("Rules")
        rules = [
            {k: r[k] for k in ("name", "state", "since", "condition", "summary", "notify")} for r in found["items"]
        ]
        _table(rules, "No alert rule is declared: add an `alerts:` section to the trigger file.")
        st.subheader("Channel health, last 24 h")
        health = channel_rows(found["channels"])
        for channel in health:
            if channel["health"] != "ok":
                st.warning(f"Channel **{channel['name']}** is {channel['health']}.", icon="⚠️")
        _table(health, "No channel is declared.")
        st.subheader("Timeline")
        _table(timeline_rows(history), "No transition yet.")
        if session.can("operator"):
            for rule in found["items"]:
                st.button(
                    f"Send a test notification: {rule['name']}",
                    key=f"test_{rule['name']}",
                    on_click=_test,
                    args=(rule["name"],),
                )


def render() -> None:
    """The page."""
    session.operator_page("Alerts", DONE, live)


if __name__ == "__main__":
    render()
