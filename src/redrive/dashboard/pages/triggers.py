"""Triggers: each trigger's config (secrets masked by the API), today's volume against its watermark, pause and
resume."""

from __future__ import annotations

import streamlit as st

from redrive.dashboard import session
from redrive.dashboard.client import ApiError, TriggerView

REFRESH_SECONDS = 5
DONE = "trigger_action_done"


def _toggle(name: str, pause: bool) -> None:
    try:
        with session.client() as api:
            api.set_paused(name, pause)
    except ApiError as exc:
        st.session_state[DONE] = exc
        return
    st.session_state[DONE] = f"{'Paused' if pause else 'Resumed'} {name}."


def card(trigger: TriggerView) -> None:
    """One trigger."""
    counters = trigger["counters"]
    with st.container(border=True):
        state = f"⏸️ paused ({trigger['paused_reason']})" if trigger["paused"] else "▶️ running"
        st.markdown(f"### {trigger['name']}\n{trigger['kind']} · {state}")
        today, watermark = counters["events_today"], trigger["daily_watermark"]
        if watermark:
            st.progress(min(1.0, today / watermark), text=f"{today} events today of a {watermark} watermark")
        else:
            st.caption(f"{today} events today (no daily watermark)")
        columns = st.columns(5)
        for column, (label, key) in zip(
            columns,
            [("Pending", "pending"), ("Running", "running"), ("Dead letters", "dlq"), ("Failed", "failed")],
            strict=False,
        ):
            column.metric(label, counters[key])
        columns[4].metric("Succeeded today", counters["succeeded_today"])
        with st.expander("Configuration"):
            st.json(trigger["config"])
        if session.can("operator"):
            paused = trigger["paused"]
            st.button(
                "Resume" if paused else "Pause",
                key=f"{'resume' if paused else 'pause'}_{trigger['name']}",
                on_click=_toggle,
                args=(trigger["name"], not paused),
            )


@st.fragment(run_every=REFRESH_SECONDS)
def live() -> None:
    """Every trigger."""
    with session.client() as api, session.guarded():
        for trigger in api.triggers():
            card(trigger)


def render() -> None:
    """The page."""
    session.operator_page("Triggers", DONE, live)


if __name__ == "__main__":
    render()
