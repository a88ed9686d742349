"""Vega-Lite specifications for the dashboard's charts, built from API answers by pure functions.

The executions chart is zoomed to where the activity is (first to last bucket with a count) and draws each bucket
as a labelled band, so that no axis label sits on the chart's edge, where it would be cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redrive.dashboard.format import STATUS_COLORS, active_buckets, when

MIN_BARS = 6  # a single busy hour is drawn among five quiet ones, not as one band across the chart


def bucket_label(start: str, same_day: bool) -> str:
    """A bucket's axis label: its UTC hour and minute, with the day when the chart spans more than one."""
    moment = when(start)
    assert moment is not None
    return f"{moment:%H:%M}" if same_day else f"{moment:%d %b %H:%M}"


def executions_chart(buckets: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Stacked bars of executions by status, from the first to the last bucket with activity; None when idle."""
    active = active_buckets(buckets, MIN_BARS)
    if not active:
        return None
    statuses = list(active[0]["counts"])
    same_day = len({b["start"][:10] for b in active}) == 1
    values = [
        {"bucket": bucket_label(b["start"], same_day), "status": status, "count": b["counts"][status]}
        for b in active
        for status in statuses
    ]
    return {
        "data": {"values": values},
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "x": {
                "field": "bucket",
                "type": "ordinal",
                "sort": None,  # the API's order: oldest first
                "title": "hour starting (UTC)",
                "axis": {"labelAngle": 0, "labelOverlap": "greedy", "labelPadding": 6},
            },
            "y": {"field": "count", "type": "quantitative", "stack": "zero", "title": "executions"},
            "color": {
                "field": "status",
                "type": "nominal",
                "scale": {"domain": statuses, "range": [STATUS_COLORS.get(s, "#607d8b") for s in statuses]},
                "legend": {"orient": "bottom", "title": None},
            },
            "order": {"field": "status", "sort": "ascending"},
        },
        "autosize": {"type": "fit", "contains": "padding"},  # axis labels and titles inside the drawn area
    }
