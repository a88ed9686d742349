"""System: the API's health and readiness, queue depth, and what ``/api/v1/system`` offers (workers, oldest pending
age, process memory and CPU, versions) on servers that have it."""

from __future__ import annotations

import platform
from typing import Any

import streamlit as st

from redrive.dashboard import session
from redrive.dashboard.client import Probe

REFRESH_SECONDS = 15
SYSTEM = "/api/v1/system"


def probe_line(probe: Probe) -> str:
    """One line per health endpoint."""
    if probe.status is None:
        return f"`{probe.path}`: not offered by this server"
    if probe.problem:
        return f"`{probe.path}`: ❌ {probe.status} {probe.problem}"
    return f"`{probe.path}`: ✅ {probe.body}"


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested JSON object as dotted keys, for a two-column table."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flat(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value if not isinstance(value, list) else ", ".join(map(str, value))}


@st.fragment(run_every=REFRESH_SECONDS)
def live() -> None:
    """Probe the server."""
    with session.client() as api, session.guarded():
        probes = [api.probe(path) for path in ("/healthz", "/readyz", SYSTEM)]
        counters = [t["counters"] for t in api.triggers()]
        version = api.version()
        st.subheader("Health")
        for probe in probes[:2]:
            st.markdown(probe_line(probe))
        c1, c2, c3 = st.columns(3)
        c1.metric("Queue depth (pending + running)", sum(c["pending"] + c["running"] for c in counters), border=True)
        c2.metric("redrive server", version, border=True)
        c3.metric("Dashboard", f"Streamlit {st.__version__} · Python {platform.python_version()}", border=True)
        system = probes[2]
        st.subheader("Workers and process")
        if system.body is not None:
            st.dataframe([{"what": k, "value": str(v)} for k, v in flat(system.body).items()], hide_index=True)
        else:
            st.info(
                f"This server does not offer `{SYSTEM}` ({probe_line(system)}): workers, oldest pending age, process "
                "memory and CPU show here once it does."
            )


def render() -> None:
    """The page."""
    st.title("System")
    live()


if __name__ == "__main__":
    render()
