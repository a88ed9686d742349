"""System: health as badges, the nodes as a table (role, host, leader, alive, last beat, in flight, memory), the
queue now, and charts of the leader's per-minute history (queue depth, oldest pending age, dead letters, failure
rate) over the last hours."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from redrive.dashboard import session
from redrive.dashboard.client import Probe
from redrive.dashboard.format import history_columns, node_rows
from redrive.dashboard.tables import columns

REFRESH_SECONDS = 5
HEALTH = ("/healthz", "/readyz")
WINDOWS = ("1h", "6h", "24h", "7d")
CHARTS = (  # column, title, colour
    ("queue depth", "Queue depth (due pending executions)", "#1565c0"),
    ("oldest pending age (s)", "Oldest pending age (seconds)", "#6a1b9a"),
    ("dead letters", "Dead letters", "#ef6c00"),
    ("failure rate (%)", "Failure rate (% of attempts per minute)", "#c62828"),
)


def badge(probe: Probe) -> None:
    """One health endpoint as a status badge; the API's own answer on hover."""
    name = probe.path.strip("/")
    if probe.status is None:
        st.badge(f"{name}: not offered", color="gray", icon=":material/help:")
    elif probe.problem:
        st.badge(f"{name}: {probe.status}", color="red", icon=":material/error:", help=probe.problem)
    else:
        status = str((probe.body or {}).get("status", "ok"))
        st.badge(f"{name}: {status}", color="green", icon=":material/check_circle:")


def history(samples: list[dict[str, Any]], window: str) -> None:
    """Four charts over the window, two by two."""
    if not samples:
        st.info(f"No samples in the last {window} yet: the maintenance leader stores one a minute.")
        return
    data = history_columns(samples)
    for row in (CHARTS[:2], CHARTS[2:]):
        for column, (name, title, colour) in zip(st.columns(2), row, strict=True):
            with column:
                st.markdown(f"**{title}**")
                st.line_chart({"time": data["time"], name: data[name]}, x="time", y=name, color=colour, height=200)


@st.fragment(run_every=REFRESH_SECONDS)
def live(window: str) -> None:
    """Probe the server, read the cluster and the history."""
    with session.client() as api, session.guarded():
        probes = [api.probe(path) for path in HEALTH]
        system = api.system()
        samples = api.history(window)
        now = datetime.now(UTC)
        for column, probe in zip(st.columns(len(HEALTH) + 4), probes, strict=False):
            with column:
                badge(probe)
        queue = system["queue"]
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Queue depth", queue["depth"], help="Pending executions that are due now.", border=True)
        c2.metric("Oldest pending", f"{queue['oldest_pending_age_seconds']:.0f} s", border=True)
        c3.metric("Running", queue["running"], border=True)
        c4.metric("Dead letters", queue["dlq_size"], border=True)
        st.subheader("Nodes")
        rows = node_rows(system["nodes"], now)
        st.dataframe(rows, hide_index=True, width="stretch", column_config=columns(rows))
        st.subheader(f"Last {window}")
        history(samples, window)
        versions = system["versions"]
        st.caption(
            f"redrive {versions['redrive']} · {versions['database']} {versions['database_server'] or ''} · "
            f"dashboard: Streamlit {st.__version__}, Python {platform.python_version()} · "
            f"refreshes every {REFRESH_SECONDS} s"
        )


def render() -> None:
    """The page."""
    st.title("System")
    window = st.segmented_control("Window", WINDOWS, default="6h", key="system_window") or "6h"
    live(window)


if __name__ == "__main__":
    render()
