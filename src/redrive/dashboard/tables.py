"""Column settings for the dashboard's tables, so that nothing is cut: whole exact times, whole ids and codes.

Every table's rows come from ``format``; a column's setting follows from its name there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

EXACT_WIDTH = 165  # pixels for "2026-12-02 07:47:15"
RELATIVE_WIDTH = 95  # "59 min ago"


def columns(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``column_config`` for a table of ``rows``: widths that fit times, ids and codes, and help on the times."""
    if not rows:
        return {}
    config: dict[str, Any] = {}
    names = list(rows[0])
    for name in names:
        if name.endswith("(UTC)"):
            config[name] = st.column_config.TextColumn(width=EXACT_WIDTH, help="The exact time, in UTC.")
        elif f"{name} (UTC)" in names:
            config[name] = st.column_config.TextColumn(
                width=RELATIVE_WIDTH, help=f"How long ago, as of the last refresh; the exact time is in “{name} (UTC)”."
            )
        elif name in ("id", "replay of", "attempt", "attempts") and not isinstance(rows[0][name], str):
            config[name] = st.column_config.NumberColumn(format="%d", width="small")
        elif name == "id":
            config[name] = st.column_config.TextColumn(width=110)  # a node id: 12 hex digits, whole
    return config
