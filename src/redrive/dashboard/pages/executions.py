"""Executions: a filtered table, refreshed every few seconds; picking a row opens its detail (attempts, redacted
payload, rendered action, error context) and, on a dead letter, a Replay button with a confirmation.

``?fingerprint=<16 hex>`` (the Error groups page links here with it) narrows the table to one error group."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from redrive.dashboard import drill, session
from redrive.dashboard.client import ApiError, DashboardClient, ExecutionQuery
from redrive.dashboard.format import (
    attempt_rows,
    both,
    execution_label,
    execution_rows,
    ordering_line,
    sent_by_attempt,
)
from redrive.dashboard.tables import columns
from redrive.states import ExecutionStatus

REFRESH_SECONDS = 5
OPEN, CONFIRM, FLASH, REFUSED = "execution_open", "replay_confirm", "replay_flash", "replay_refused"
STATUSES = tuple(status.value for status in ExecutionStatus)
WINDOWS = {"any time": None, "15 minutes": 15, "1 hour": 60, "24 hours": 1440, "7 days": 10080}


def filters(
    trigger_names: list[str], kinds: list[str], fingerprint: str | None = None
) -> tuple[ExecutionQuery, int | None]:
    """The filter widgets (keyed, so a refresh keeps them): the query they make, and the "Created in" window in
    minutes, which each refresh turns into a start time of its own (a start fixed here would never move). The
    kinds offered are those of the declared triggers (built-in or from a plugin)."""
    c1, c2, c3, c4, c5 = st.columns(5)
    trigger = c1.selectbox("Trigger", trigger_names, index=None, placeholder="any", key="f_trigger")
    status = c2.selectbox("Status", STATUSES, index=None, placeholder="any", key="f_status")
    kind = c3.selectbox("Kind", kinds, index=None, placeholder="any", key="f_kind")
    code = c4.text_input("Error code", placeholder="e.g. http_503", key="f_code").strip() or None
    minutes = WINDOWS[c5.selectbox("Created in", list(WINDOWS), key="f_window")]
    return ExecutionQuery(trigger, status, kind, code, fingerprint=fingerprint), minutes


def _picked_row(rows: list[dict[str, Any]]) -> None:
    selection = st.session_state.get("executions_table", {}).get("selection", {}).get("rows", [])
    if selection and selection[0] < len(rows):
        st.session_state[OPEN] = rows[selection[0]]["id"]


def _picked_label() -> None:
    # When the list refreshes under an open picker, Streamlit can hand back the option's label instead of its id:
    # only an id opens an execution; anything else leaves the open one as it is.
    picked = st.session_state.get("execution_pick")
    if isinstance(picked, int):
        st.session_state[OPEN] = picked


def table(api: DashboardClient, query: ExecutionQuery) -> None:
    """The executions matching ``query``, and a picker that opens one."""
    items = api.executions(query)
    rows = execution_rows(items, datetime.now(UTC))
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config=columns(rows),
        on_select=lambda: _picked_row(rows),
        selection_mode="single-row",
        key="executions_table",
    )
    st.caption(f"{len(items)} execution(s), newest first; select a row or pick one below to open it.")
    labels = {e["id"]: execution_label(e) for e in items}
    st.selectbox(
        "Open execution",
        list(labels),
        index=None,
        format_func=lambda i: labels.get(i, f"#{i}"),
        placeholder="Pick an execution…",
        key="execution_pick",
        on_change=_picked_label,
    )


def _ask(execution_id: int) -> None:
    st.session_state[CONFIRM] = execution_id
    st.session_state.pop(REFUSED, None)


def _cancel() -> None:
    st.session_state.pop(CONFIRM, None)
    st.session_state.pop(REFUSED, None)


def _confirm(execution_id: int) -> None:
    try:
        with session.client() as api:
            result = api.replay(execution_id)
    except ApiError as exc:
        st.session_state[REFUSED] = exc
        return
    _cancel()
    st.session_state[FLASH] = f"Replayed #{execution_id}: new execution #{result['new_execution_id']}."
    st.session_state[OPEN] = result["new_execution_id"]


def replay_confirmation(api: DashboardClient, execution_id: int) -> None:
    """The preview of a replay and its Confirm button; a refusal shows the API's own message, chosen by code."""
    preview = api.replay_preview(execution_id)
    with st.container(border=True):
        st.markdown(f"**Replay execution #{execution_id}?** It runs the trigger's current action for the same event:")
        st.markdown(f"- **{preview['kind']}** → `{preview['target'] or '(does not render)'}`")
        now = datetime.now(UTC)
        st.markdown(f"- originally ran {both(preview['originally_ran_at'], now)}")
        last = both(preview["last_replay_at"], now) if preview["last_replay_at"] else "never"
        st.markdown(f"- replayed {preview['replay_count']} time(s) before; last at {last}")
        if preview["reason"]:
            st.warning(preview["reason"])
        if isinstance(refused := st.session_state.get(REFUSED), ApiError):
            session.refusal(refused)
        left, right = st.columns(2)
        left.button("Confirm replay", type="primary", key="confirm_replay", on_click=_confirm, args=(execution_id,))
        right.button("Cancel", key="cancel_replay", on_click=_cancel)


def detail(api: DashboardClient, execution_id: int) -> None:
    """One execution: summary, attempts timeline, payload, what each attempt sent, error context, replay."""
    e = api.execution(execution_id)
    st.subheader(f"Execution #{e['id']} · {e['trigger']} · {e['status']}")
    if flash := st.session_state.pop(FLASH, None):
        st.success(flash)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Status", e["status"])
    c2.metric("Attempts", e["attempt_count"])
    c3.metric("Kind", e["kind"])
    c4.metric("Replay of", f"#{e['replay_of']}" if e["replay_of"] else "—")
    if e.get("ordering"):
        st.info(ordering_line(e["ordering"]))
    if e["status"] == "failed_retryable" and session.can("operator"):
        if st.session_state.get(CONFIRM) == execution_id:
            replay_confirmation(api, execution_id)
        else:
            st.button("Replay…", key=f"replay_{execution_id}", type="primary", on_click=_ask, args=(execution_id,))
    st.markdown("**Attempts**")
    attempts = attempt_rows(e["attempts"], datetime.now(UTC))
    st.dataframe(attempts, hide_index=True, width="stretch", column_config=columns(attempts))
    payload, sent, error = st.tabs(["Event payload", "Sent", "Error context"])
    payload.json(e["event"]["payload"])
    payload.caption(
        f"Event {e['event']['id']}, key {e['event']['idempotency_key']}, "
        f"received {both(e['event']['received_at'], datetime.now(UTC))}"
    )
    sent.json(sent_by_attempt(e["attempts"]) or {"note": "no attempt yet"})
    error.json(e["error"] or {"note": "no failed attempt"})


@st.fragment(run_every=REFRESH_SECONDS)
def live(query: ExecutionQuery, minutes: int | None) -> None:
    """The table and the open execution, refreshed together; filters and the open detail survive refreshes."""
    if minutes:
        query = replace(query, since=(datetime.now(UTC) - timedelta(minutes=minutes)).isoformat())
    with session.client() as api, session.guarded():
        table(api, query)
        opened = st.session_state.get(OPEN)
        if isinstance(opened, int):
            detail(api, opened)


def render() -> None:
    """The page."""
    st.title("Executions")
    with session.guarded():
        with session.client() as api:
            declared = api.triggers()
            fingerprint = drill.scope(api, "Executions", "pages/dead_letters.py", "Its dead letters")
        names, kinds = [t["name"] for t in declared], sorted({t["kind"] for t in declared})
        live(*filters(names, kinds, fingerprint))


if __name__ == "__main__":
    render()
