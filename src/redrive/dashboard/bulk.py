"""Bulk replay in the dashboard: a dry run first (count and sample), then a rate, live progress and a cancel button.

Shared by the Dead letters page (by trigger and error group) and the Error groups page (the replay-group remedy).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

from redrive.dashboard import session, tables
from redrive.dashboard.client import ApiError
from redrive.dashboard.format import sample_rows

DRY, JOB, FAILED = "bulk_dry_run", "bulk_job", "bulk_refused"
PROGRESS_SECONDS = 1


def dry_run(filters: dict[str, Any]) -> None:
    """Ask the API what a bulk replay of ``filters`` would take; keep the answer for the confirmation."""
    st.session_state.pop(FAILED, None)
    try:
        with session.client() as api:
            st.session_state[DRY] = {"filter": filters, **api.bulk_dry_run(filters)}
    except ApiError as exc:
        st.session_state[FAILED] = exc


def _start(filters: dict[str, Any], rate: float) -> None:
    try:
        with session.client() as api:
            job = api.bulk_start(filters, rate)
    except ApiError as exc:
        st.session_state[FAILED] = exc
        return
    st.session_state.pop(DRY, None)
    st.session_state[JOB] = job["id"]


def _discard() -> None:
    st.session_state.pop(DRY, None)
    st.session_state.pop(FAILED, None)


def _cancel(job_id: int) -> None:
    try:
        with session.client() as api:
            api.bulk_cancel(job_id)
    except ApiError as exc:
        st.session_state[FAILED] = exc


def confirmation() -> None:
    """After a dry run: the count, a sample, the rate, and Start / Discard."""
    if isinstance(refused := st.session_state.get(FAILED), ApiError):
        session.refusal(refused)
    found = st.session_state.get(DRY)
    if not found:
        return
    with st.container(border=True):
        shown = ", ".join(f"{k}={v}" for k, v in found["filter"].items())
        st.markdown(f"**Dry run** ({shown}): **{found['matched']}** execution(s) would be replayed.")
        if found["sample"]:
            rows = sample_rows(found["sample"], datetime.now(UTC))
            st.dataframe(rows, hide_index=True, column_config=tables.columns(rows))
        rate = st.number_input("Rate (replays per second)", min_value=0.1, max_value=500.0, value=10.0, key="bulk_rate")
        left, right = st.columns(2)
        left.button(
            f"Start replaying {found['matched']}",
            type="primary",
            key="bulk_start",
            disabled=not found["matched"],
            on_click=_start,
            args=(found["filter"], rate),
        )
        right.button("Discard", key="bulk_discard", on_click=_discard)


@st.fragment(run_every=PROGRESS_SECONDS)
def progress() -> None:
    """The running (or last) bulk replay's progress, live, with a cancel button."""
    job_id = st.session_state.get(JOB)
    if job_id is None:
        return
    with session.client() as api, session.guarded():
        job = api.bulk_job(int(job_id))
        done = job.get("replayed", 0) + job.get("skipped", 0)
        matched = job.get("matched", 0) or 1
        st.progress(min(1.0, done / matched), text=f"Bulk replay {job_id} of {job.get('trigger')}: {job.get('status')}")
        st.caption(
            f"{job.get('replayed', 0)} replayed, {job.get('skipped', 0)} skipped of {job.get('matched', 0)}; new "
            f"executions: {job.get('succeeded', 0)} succeeded, {job.get('failed', 0)} failed, "
            f"{job.get('pending', 0)} pending"
        )
        if job.get("status") == "running" and session.can("operator"):
            st.button("Cancel bulk replay", key="bulk_cancel", on_click=_cancel, args=(int(job_id),))
