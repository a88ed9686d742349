"""Dead letters: the DLQ grouped by trigger and error group; bulk replay with a dry run first, a rate, live progress
and a cancel button."""

from __future__ import annotations

from typing import Any

import streamlit as st

from redrive.dashboard import bulk, session
from redrive.dashboard.client import DashboardClient, ErrorGroup, TriggerView
from redrive.dashboard.format import when

REFRESH_SECONDS = 15
GROUP_WINDOW = "7d"  # the longest window the API counts error groups in


def grouped(triggers: list[TriggerView], groups: list[ErrorGroup]) -> dict[str, list[dict[str, Any]]]:
    """Per trigger with dead letters: its error groups' dead letters, plus what no recent group accounts for."""
    out: dict[str, list[dict[str, Any]]] = {}
    for trigger in triggers:
        total = trigger["counters"]["dlq"]
        if not total:
            continue
        mine = [g for g in groups if g["trigger"] == trigger["name"] and g["dlq"]]
        rows: list[dict[str, Any]] = [
            {"error group": g["title"], "code": g["code"], "dead letters": g["dlq"], "last seen": when(g["last_seen"])}
            for g in mine
        ]
        rest = total - sum(g["dlq"] for g in mine)
        if rest > 0:
            rows.append({"error group": f"(not seen in the last {GROUP_WINDOW})", "code": "", "dead letters": rest})
        out[trigger["name"]] = rows
    return out


@st.fragment(run_every=REFRESH_SECONDS)
def queue() -> None:
    """The DLQ by trigger and error group, refreshed."""
    with session.client() as api, session.guarded():
        summary = api.summary()
        triggers = api.triggers()
        groups = api.error_groups(since=GROUP_WINDOW, limit=500)
        st.metric("Dead letters", summary["dlq_size"], border=True)
        by_trigger = grouped(triggers, groups)
        if not by_trigger:
            st.success("The dead-letter queue is empty.")
        for name, rows in by_trigger.items():
            dlq = next(t["counters"]["dlq"] for t in triggers if t["name"] == name)
            st.markdown(f"#### {name} · {dlq} dead letter(s)")
            st.dataframe(rows, hide_index=True, width="stretch")


def replay_form(api: DashboardClient) -> None:
    """Choose what to replay, then dry-run it."""
    triggers = [t for t in api.triggers() if t["counters"]["dlq"]]
    if not triggers:
        return
    st.subheader("Bulk replay")
    names = [t["name"] for t in triggers]
    left, right = st.columns(2)
    trigger = left.selectbox("Trigger", names, key="bulk_trigger")
    groups = {g["fingerprint"]: g for g in api.error_groups(since=GROUP_WINDOW, limit=500) if g["trigger"] == trigger}
    fingerprint = right.selectbox(
        "Error group",
        [fp for fp, g in groups.items() if g["dlq"]],
        index=None,
        placeholder="every error group",
        format_func=lambda fp: f"{groups[fp]['title']} ({groups[fp]['dlq']})",
        key="bulk_group",
    )
    filters = {"trigger": trigger, **({"fingerprint": fingerprint} if fingerprint else {})}
    st.button("Dry run", key="bulk_dry", on_click=bulk.dry_run, args=(filters,))
    bulk.confirmation()


def render() -> None:
    """The page."""
    st.title("Dead letters")
    queue()
    if session.can("operator"):
        with session.guarded(), session.client() as api:
            replay_form(api)
    bulk.progress()


if __name__ == "__main__":
    render()
