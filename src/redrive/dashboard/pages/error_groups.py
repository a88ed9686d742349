"""Error groups: title, count in the window, a 24 h trend, first and last seen, the hint and its remedy buttons
(replay the group, pause the trigger), resolve and ignore."""

from __future__ import annotations

from typing import Literal

import streamlit as st

from redrive.dashboard import bulk, session
from redrive.dashboard.client import ApiError, ErrorGroup
from redrive.dashboard.format import when

REFRESH_SECONDS = 30
WINDOWS = ("15m", "1h", "24h", "7d")
STATUSES = ("open", "regressed", "resolved", "ignored")
DONE = "group_action_done"


def _act(what: str, group: ErrorGroup) -> None:
    """Run one remedy or decision; its outcome is shown above the groups."""
    if what == "replay":
        bulk.dry_run({"fingerprint": group["fingerprint"]})
        return
    try:
        with session.client() as api:
            if what == "pause":
                api.set_paused(group["trigger"], True)
                message = f"Paused trigger {group['trigger']}: its events are stored and wait until you resume it."
            else:
                decision: Literal["resolve", "ignore"] = "resolve" if what == "resolve" else "ignore"
                api.decide_group(group["fingerprint"], decision)
                message = f"Marked {decision}d: {group['title']}."
    except ApiError as exc:
        st.session_state[DONE] = exc
        return
    st.session_state[DONE] = message


def buttons(group: ErrorGroup) -> None:
    """The remedy and lifecycle buttons, for operators; the hint's remedy comes first and stands out."""
    fp = group["fingerprint"]
    remedy = group["hint"]["remedy"]
    actions = [("replay", f"Replay group ({group['dlq']})", group["dlq"] > 0), ("pause", "Pause trigger", True)]
    actions.sort(key=lambda a: a[0] != {"replay_group": "replay", "pause_trigger": "pause"}.get(remedy))
    actions += [
        ("resolve", "Resolve", group["status"] != "resolved"),
        ("ignore", "Ignore", group["status"] != "ignored"),
    ]
    for column, (what, label, enabled) in zip(st.columns(len(actions)), actions, strict=True):
        primary = what == {"replay_group": "replay", "pause_trigger": "pause"}.get(remedy)
        column.button(
            label,
            key=f"{what}_{fp}",
            disabled=not enabled,
            type="primary" if primary else "secondary",
            on_click=_act,
            args=(what, group),
        )


def card(group: ErrorGroup, trend: list[int], window: str) -> None:
    """One group."""
    with st.container(border=True):
        st.markdown(
            f"**{group['title']}**  \n`{group['code']}` · {group['trigger']} · {group['kind']} · {group['status']}"
        )
        c1, c2, c3, c4, c5 = st.columns([1, 1, 2, 2, 3])
        c1.metric(f"In {window}", group["count"])
        c2.metric("Dead letters", group["dlq"])
        c3.metric("First seen", f"{when(group['first_seen']):%Y-%m-%d %H:%M}")
        c4.metric("Last seen", f"{when(group['last_seen']):%Y-%m-%d %H:%M}")
        with c5:
            st.caption("Failures per hour, last 24 h")
            st.line_chart(trend, height=80)
        st.info(f"**{group['hint']['title']}**: {group['hint']['advice']}")
        if session.can("operator"):
            buttons(group)


@st.fragment(run_every=REFRESH_SECONDS)
def live(window: str, status: str | None) -> None:
    """The groups with their trends."""
    with session.client() as api, session.guarded():
        groups = api.error_groups(since=window, status=status, limit=20)
        trends = {
            g["fingerprint"]: [b["counts"]["failed"] for b in api.timeseries(fingerprint=g["fingerprint"])]
            for g in groups
        }
        if not groups:
            st.success(f"No error group has failed in the last {window}.")
        for group in groups:
            card(group, trends[group["fingerprint"]], window)


def render() -> None:
    """The page."""
    st.title("Error groups")
    left, right = st.columns(2)
    window = left.selectbox("Window", WINDOWS, index=2, key="g_window")
    status = right.selectbox("Status", STATUSES, index=None, placeholder="any", key="g_status")
    outcome = st.session_state.pop(DONE, None)
    if isinstance(outcome, ApiError):
        session.refusal(outcome)
    elif outcome:
        st.success(outcome)
    with session.guarded():
        bulk.confirmation()
    bulk.progress()
    live(window, status)


if __name__ == "__main__":
    render()
