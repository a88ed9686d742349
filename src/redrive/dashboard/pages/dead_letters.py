"""Dead letters: every dead-lettered execution, newest first, a page at a time, filterable by trigger and error code
(and by error group with ``?fingerprint=``, as the Error groups page links here), selectable for replay; the queue by
trigger and error group; bulk replay with a dry run first, a rate, live progress and a cancel button.

"Replay selected" replays each selected dead letter on its own (``POST /api/v1/executions/{id}/replay``), so each
one gets the same checks, audit entry and answer as a single replay, and each refusal is shown with its own id.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from redrive.dashboard import bulk, drill, session
from redrive.dashboard.client import ApiError, DashboardClient, ErrorGroup, ExecutionQuery, TriggerView
from redrive.dashboard.format import dead_letter_rows, exact, relative, replay_outcome
from redrive.dashboard.paging import CursorStack
from redrive.dashboard.tables import columns

REFRESH_SECONDS = 5
PAGE = 25
PAGE_SIZES = (10, 25, 50, 100)
GROUP_WINDOW = "7d"  # the longest window the API counts error groups in
OUTCOMES, SCOPE = "dlq_replayed", "dlq_scope"
PAGES: CursorStack[int] = CursorStack("dlq_cursors")


def grouped(triggers: list[TriggerView], groups: list[ErrorGroup], now: datetime) -> dict[str, list[dict[str, Any]]]:
    """Per trigger with dead letters: its error groups' dead letters, plus what no recent group accounts for."""
    out: dict[str, list[dict[str, Any]]] = {}
    for trigger in triggers:
        total = trigger["counters"]["dlq"]
        if not total:
            continue
        mine = [g for g in groups if g["trigger"] == trigger["name"] and g["dlq"]]
        rows: list[dict[str, Any]] = [
            {
                "error group": g["title"],
                "code": g["code"],
                "dead letters": g["dlq"],
                "last seen": relative(g["last_seen"], now),
                "last seen (UTC)": exact(g["last_seen"], zone=False),
            }
            for g in mine
        ]
        rest = total - sum(g["dlq"] for g in mine)
        if rest > 0:
            rows.append({"error group": f"(not seen in the last {GROUP_WINDOW})", "code": "", "dead letters": rest})
        out[trigger["name"]] = rows
    return out


def _replay(ids: list[int]) -> None:
    """Replay each selected dead letter on its own; keep one line per id for the table to show."""
    outcomes: list[str] = []
    with session.client() as api:
        for execution_id in ids:
            try:
                outcomes.append(replay_outcome(execution_id, api.replay(execution_id), None))
            except ApiError as exc:
                outcomes.append(replay_outcome(execution_id, None, (exc.code, exc.message)))
    st.session_state[OUTCOMES] = outcomes


def list_filters(api: DashboardClient, trigger_names: list[str]) -> ExecutionQuery:
    """The list's filters (error group from the link, trigger, error code) and the page it is on."""
    fingerprint = drill.scope(api, "Dead letters", "pages/executions.py", "Its executions")
    left, middle, right = st.columns([4, 4, 2])
    trigger = left.selectbox(
        "Trigger", trigger_names, index=None, placeholder="any", key="dlq_trigger", on_change=PAGES.first
    )
    code = middle.text_input("Error code", placeholder="e.g. http_503", key="dlq_code", on_change=PAGES.first)
    size = right.selectbox(
        "Per page", PAGE_SIZES, index=PAGE_SIZES.index(PAGE), key="dlq_page_size", on_change=PAGES.first
    )
    if st.session_state.get(SCOPE, "") != fingerprint:  # another error group (or none): back to the first page
        st.session_state[SCOPE] = fingerprint
        PAGES.first()
    return ExecutionQuery(
        trigger=trigger,
        status="failed_retryable",
        code=code.strip() or None,
        fingerprint=fingerprint,
        limit=size,
        cursor=PAGES.current,
    )


@st.fragment(run_every=REFRESH_SECONDS)
def letters(query: ExecutionQuery) -> None:
    """One page of dead letters, refreshed; operators select rows and replay them."""
    with session.client() as api, session.guarded():
        for line in st.session_state.pop(OUTCOMES, []):
            (st.success if "→" in line else st.error)(line)
        items, older = api.executions_page(query)
        rows = dead_letter_rows(items, datetime.now(UTC))
        ids = [row["id"] for row in rows]
        operator = session.can("operator")
        # A new list is a new table: a refresh that changes the rows drops the selection instead of moving it.
        key = "dlq_table_" + hashlib.sha256(repr(ids).encode()).hexdigest()[:12]
        shown = st.dataframe(
            rows,
            hide_index=True,
            width="stretch",
            column_config=columns(rows),
            key=key,
            on_select="rerun" if operator else "ignore",
            selection_mode="multi-row",
        )
        picked = [ids[i] for i in shown.selection.rows if i < len(ids)] if operator else []  # type: ignore[union-attr]
        pages = PAGES.depth
        left, middle, right, caption = st.columns([1, 1, 3, 5], vertical_alignment="center")
        left.button("← Newer", key="dlq_newer", disabled=not pages, on_click=PAGES.back)
        middle.button("Older →", key="dlq_older", disabled=older is None, on_click=PAGES.forward, args=(older or 0,))
        if operator:
            right.button(
                f"Replay selected ({len(picked)})",
                key="dlq_replay_selected",
                type="primary",
                disabled=not picked,
                on_click=_replay,
                args=(picked,),
            )
        caption.caption(
            f"Page {pages + 1}: {len(rows)} dead letter(s), newest first; refreshes every {REFRESH_SECONDS} s."
        )


@st.fragment(run_every=REFRESH_SECONDS)
def queue() -> None:
    """The DLQ by trigger and error group, refreshed."""
    with session.client() as api, session.guarded():
        summary = api.summary()
        triggers = api.triggers()
        groups = api.error_groups(since=GROUP_WINDOW, limit=500)
        st.metric("Dead letters", summary["dlq_size"], border=True)
        by_trigger = grouped(triggers, groups, datetime.now(UTC))
        if not by_trigger:
            st.success("The dead-letter queue is empty.")
        for name, rows in by_trigger.items():
            dlq = next(t["counters"]["dlq"] for t in triggers if t["name"] == name)
            st.markdown(f"#### {name} · {dlq} dead letter(s)")
            st.dataframe(rows, hide_index=True, width="stretch", column_config=columns(rows))


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
    with session.guarded(), session.client() as api:
        query = list_filters(api, [t["name"] for t in api.triggers()])
        letters(query)
    st.subheader("By trigger and error group")
    queue()
    if session.can("operator"):
        with session.guarded(), session.client() as api:
            replay_form(api)
    bulk.progress()


if __name__ == "__main__":
    render()
