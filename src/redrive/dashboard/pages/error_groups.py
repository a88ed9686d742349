"""Error groups: title, count in the window, a 24 h trend, first and last seen, the hint and its remedy buttons
(replay the group, pause the trigger), resolve and ignore, acknowledge and snooze (for an hour) and their undoing;
each group opens to its executions and its dead letters (the Executions and Dead letters pages, narrowed by
``?fingerprint=``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import streamlit as st

from redrive.dashboard import bulk, session
from redrive.dashboard.client import ApiError, Attention, DashboardClient, ErrorGroup
from redrive.dashboard.format import exact, relative

REFRESH_SECONDS = 5
WINDOWS = ("15m", "1h", "24h", "7d")
STATUSES = ("open", "regressed", "resolved", "ignored")
DONE = "group_action_done"
SNOOZE = timedelta(hours=1)
ATTENDED: dict[Attention, str] = {  # what each attention button says it did
    "acknowledge": "Acknowledged",
    "unacknowledge": "Withdrew the acknowledgement of",
    "snooze": "Snoozed for 1 h",
    "unsnooze": "Ended the snooze of",
}


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
            elif (action := next((a for a in ATTENDED if a == what), None)) is not None:
                message = _attend(api, action, group)
            else:
                decision: Literal["resolve", "ignore"] = "resolve" if what == "resolve" else "ignore"
                api.decide_group(group["fingerprint"], decision)
                message = f"Marked {decision}d: {group['title']}."
    except ApiError as exc:
        st.session_state[DONE] = exc
        return
    st.session_state[DONE] = message


def _attend(api: DashboardClient, action: Attention, group: ErrorGroup) -> str:
    body = {"until": (datetime.now(UTC) + SNOOZE).isoformat()} if action == "snooze" else None
    api.attend_group(group["fingerprint"], action, body)
    return f"{ATTENDED[action]}: {group['title']}."


def attention(group: ErrorGroup) -> str:
    """What silences the group's repeated alerts, for its caption ('' when nothing does)."""
    parts = []
    if group["acknowledged_at"]:
        note = f": {group['acknowledge_note']}" if group["acknowledge_note"] else ""
        parts.append(f"acknowledged by {group['acknowledged_by']}{note}")
    if group["snoozed_until"]:
        parts.append(f"snoozed until {exact(group['snoozed_until'])}")
    if group["snooze_until_total"] is not None:
        parts.append(f"snoozed until {group['snooze_until_total']} failures in all")
    if parts and not group["silenced"]:
        parts.append("snooze over")
    return "".join(f" · {part}" for part in parts)


def buttons(group: ErrorGroup) -> None:
    """The remedy and lifecycle buttons, for operators; the hint's remedy comes first and stands out."""
    fp = group["fingerprint"]
    remedy = group["hint"]["remedy"]
    actions = [("replay", f"Replay group ({group['dlq']})", group["dlq"] > 0), ("pause", "Pause trigger", True)]
    actions.sort(key=lambda a: a[0] != {"replay_group": "replay", "pause_trigger": "pause"}.get(remedy))
    actions += [
        ("resolve", "Resolve", group["status"] != "resolved"),
        ("ignore", "Ignore", group["status"] != "ignored"),
        ("unacknowledge", "Unacknowledge", True) if group["acknowledged_at"] else ("acknowledge", "Acknowledge", True),
        ("unsnooze", "Unsnooze", True) if _snoozed(group) else ("snooze", "Snooze 1 h", True),
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


def _snoozed(group: ErrorGroup) -> bool:
    return bool(group["snoozed_until"]) or group["snooze_until_total"] is not None


def drill_down(group: ErrorGroup) -> None:
    """Links to the group's executions and to its dead letters."""
    scope = {"fingerprint": group["fingerprint"]}
    left, right, _ = st.columns([2, 2, 6])
    left.page_link("pages/executions.py", label="Its executions", icon=":material/list:", query_params=scope)
    right.page_link(
        "pages/dead_letters.py", label=f"Its dead letters ({group['dlq']})", icon=":material/inbox:", query_params=scope
    )


def card(group: ErrorGroup, trend: list[int], window: str, now: datetime) -> None:
    """One group."""
    with st.container(border=True):
        st.markdown(
            f"**{group['title']}**  \n`{group['code']}` · {group['trigger']} · {group['kind']} · {group['status']}"
            + attention(group)
        )
        c1, c2, c3, c4, c5 = st.columns([1, 1, 2, 2, 3])
        c1.metric(f"In {window}", group["count"])
        c2.metric("Dead letters", group["dlq"])
        c3.metric("First seen", relative(group["first_seen"], now), help=exact(group["first_seen"]))
        c4.metric("Last seen", relative(group["last_seen"], now), help=exact(group["last_seen"]))
        with c5:
            st.caption("Failures per hour, last 24 h")
            st.line_chart(trend, height=80)
        st.info(f"**{group['hint']['title']}**: {group['hint']['advice']}")
        drill_down(group)
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
        now = datetime.now(UTC)
        for group in groups:
            card(group, trends[group["fingerprint"]], window, now)


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
