"""Destinations: every destination's breaker state at a glance (held, running, failure rate, latency, limits), its
transitions over time, and, for operators, forcing a breaker open (maintenance) or closed, or resetting it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from redrive.dashboard import session
from redrive.dashboard.client import ApiError

REFRESH_SECONDS = 5
DONE = "destination_action_done"
ICONS = {"closed": "🟢 closed", "half_open": "🟡 half-open", "open": "🔴 open"}
LEVEL = {"closed": 0, "half_open": 1, "open": 2}
ACTIONS = (("open", "Force open"), ("close", "Force closed"), ("reset", "Reset"))


def _force(name: str, action: str) -> None:
    try:
        with session.client() as api:
            found = api.force_destination(name, action)
    except ApiError as exc:
        st.session_state[DONE] = exc
        return
    st.session_state[DONE] = f"{name} is now {found['state']}" + (
        f" (forced {found['forced']})." if found["forced"] else "."
    )


def _state(item: dict[str, Any]) -> str:
    state = ICONS.get(item["state"], str(item["state"]))
    return state + (f" · forced {item['forced']}" if item["forced"] else "")


def card(item: dict[str, Any], transitions: list[dict[str, Any]]) -> None:
    """One destination."""
    name = item["name"]
    with st.container(border=True):
        st.markdown(f"### {name}\n{_state(item)}")
        columns = st.columns(5)
        columns[0].metric("Held", item["held"])
        columns[1].metric("Pending", item["pending"])
        columns[2].metric("Running", item["running"])
        rate = item["failure_rate"]
        columns[3].metric("Failure rate", "–" if rate is None else f"{rate:.0%}")
        latency = item["latency_ms"]
        columns[4].metric("Latency", "–" if latency is None else f"{latency:g} ms")
        limits = item["limits"]
        if limits["rate"] or limits["concurrency"]:
            st.caption(f"limits: rate {limits['rate'] or '–'}/s, concurrency {limits['concurrency'] or '–'}")
        if transitions:
            history = sorted(transitions, key=lambda t: t["at"])
            st.line_chart(
                {
                    "at": [t["at"] for t in history],
                    "state (0 closed, 1 half-open, 2 open)": [LEVEL[t["to_state"]] for t in history],
                },
                x="at",
            )
            st.dataframe(transitions, hide_index=True)
        if session.can("operator"):
            buttons = st.columns(len(ACTIONS))
            for column, (action, label) in zip(buttons, ACTIONS, strict=True):
                column.button(label, key=f"dest_{action}_{name}", on_click=_force, args=(name, action))


@st.fragment(run_every=REFRESH_SECONDS)
def live() -> None:
    """Every destination."""
    with session.client() as api, session.guarded():
        items = api.destinations()
        if not items:
            st.info("No destination yet: they appear with the first executions of triggers that have one.")
        for item in items:
            card(item, api.destination(item["name"])["transitions"])


def render() -> None:
    """The page."""
    session.operator_page("Destinations", DONE, live)


if __name__ == "__main__":
    render()
