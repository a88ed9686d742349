"""Destinations: how many are open, half-open and closed at a glance, then a page of them, those needing attention
first (held, running, failure rate, latency, limits; the transitions over time of those that had any), filterable
by state; for operators, forcing a breaker open (maintenance) or closed, or resetting it.

There may be tens of thousands (one per customer's endpoint when a trigger's URL is templated), so the page shows
``PAGE`` of them, asks the API for one page every refresh, and one more request per card only for the cards that
have a history worth charting (``charted``), never one per destination."""

from __future__ import annotations

from typing import Any, cast

import streamlit as st

from redrive.dashboard import session
from redrive.dashboard.client import ApiError, DestinationPage, DestinationSummary
from redrive.dashboard.paging import CursorStack

REFRESH_SECONDS = 5
PAGE = 50
DONE, FILTER = "destination_action_done", "dest_state"
PAGES: CursorStack[str] = CursorStack("dest_cursors")
ICONS = {"closed": "🟢 closed", "half_open": "🟡 half-open", "open": "🔴 open"}
STATES = {"open": "Open", "half_open": "Half-open", "closed": "Closed"}
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


def charted(item: dict[str, Any]) -> bool:
    """Whether a card fetches its transitions: the destination has some (``last_transition_at``), or is not simply
    closed. A destination that never changed state has nothing to chart, and asking for each one's is what this
    page must not do: most are such."""
    return item["last_transition_at"] is not None or item["state"] != "closed" or item["forced"] is not None


def totals(summary: DestinationSummary) -> None:
    """Every destination by state, whatever the page and the filter show."""
    columns = st.columns(5)
    columns[0].metric("Open", f"{summary['open']:,}", border=True)
    columns[1].metric("Half-open", f"{summary['half_open']:,}", border=True)
    columns[2].metric("Closed", f"{summary['closed']:,}", border=True)
    columns[3].metric("Forced", f"{summary['forced']:,}", border=True, help="Forced open or closed by an operator.")
    columns[4].metric("Destinations", f"{summary['total']:,}", border=True)


def pager(page: DestinationPage, state: str | None) -> None:
    """The first, previous and next page buttons, and which destinations this page shows."""
    pages = PAGES.depth
    first, previous, following, caption = st.columns([1, 1, 1, 5], vertical_alignment="center")
    first.button("⏮ First page", key="dest_first", disabled=not pages, on_click=PAGES.first)
    previous.button("← Previous", key="dest_previous", disabled=not pages, on_click=PAGES.back)
    cursor = page["next_cursor"]
    following.button(
        "Next page →", key="dest_next", disabled=cursor is None, on_click=PAGES.forward, args=(cursor or "",)
    )
    matching = cast(dict[str, int], page["summary"])[state or "total"]
    start = pages * PAGE
    caption.caption(
        f"Page {pages + 1}: {start + 1:,} to {start + len(page['items']):,} of {matching:,}, needing attention "
        f"first; refreshes every {REFRESH_SECONDS} s."
    )


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
    """The totals, the state filter and one page of destinations, refreshed."""
    with session.client() as api, session.guarded():
        state: str | None = st.session_state.get(FILTER)  # its control is drawn below the totals
        page = api.destinations(limit=PAGE, cursor=PAGES.current, state=state)
        totals(page["summary"])
        st.segmented_control("State", list(STATES), format_func=STATES.__getitem__, key=FILTER, on_change=PAGES.first)
        if not page["summary"]["total"]:
            st.info("No destination yet: they appear with the first executions of triggers that have one.")
        elif not page["items"]:
            st.info(f"No destination is {STATES[state].lower()} now." if state else "No destination on this page.")
        for item in page["items"]:
            card(item, api.destination(item["name"])["transitions"] if charted(item) else [])
        pager(page, state)


def render() -> None:
    """The page."""
    session.operator_page("Destinations", DONE, live)


if __name__ == "__main__":
    render()
