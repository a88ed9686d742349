"""Overview: firing alerts first, then executions failing now (dead letters and permanent failures), failed
attempts, retries and duplicates today, warnings, the last 24 h by status and the top error groups. Every number is
the API's own, and each card's help text is the API's own definition of it (its OpenAPI description); the page
refreshes every 5 s."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import streamlit as st

from redrive.dashboard import session, tables
from redrive.dashboard.charts import executions_chart
from redrive.dashboard.client import ErrorGroup, Summary
from redrive.dashboard.format import group_rows
from redrive.dashboard.pages.alerts import firing_banners

REFRESH_SECONDS = 5
DEFINITIONS = "overview_definitions"  # session key: the cards' help texts, read once from the OpenAPI document


def warning_text(warning: str, summary: Summary) -> str:
    """A sentence for one of the summary's warnings."""
    if warning == "dlq_growing":
        return f"The dead-letter queue is growing: {summary['dlq_size']} executions wait for a fix and a replay."
    if warning.startswith("watermark_hit:"):
        name = warning.split(":", 1)[1]
        volume = summary["triggers"].get(name)
        if volume is not None:
            return (
                f"Trigger **{name}** hit its daily watermark: {volume['count']} events today, "
                f"watermark {volume['daily_watermark']}."
            )
    return warning


# The cards: label and the summary field they show, in two rows of three so every label reads whole at 1400 px:
# what is failing now (failing now = dead letters + permanent failures), then what happened today. Each card's help
# is the API's definition.
NOW = (
    ("Failing now", "failing_now"),
    ("Dead letters", "dlq_size"),
    ("Permanent failures", "permanent_failures"),
)
TODAY = (
    ("Failed attempts today", "attempts_failed"),
    ("Retries today", "retries_observed"),
    ("Duplicates dropped today", "idempotent_replays"),
)
CARDS = NOW + TODAY


def show(summary: Summary, definitions: dict[str, str], buckets: list[Any], groups: list[ErrorGroup]) -> None:
    """Render what the API answered; ``definitions`` are the summary fields' descriptions, shown as help."""
    for warning in summary["warnings"]:
        st.warning(warning_text(warning, summary), icon="⚠️")
    figures: dict[str, Any] = dict(summary)
    for row in (NOW, TODAY):
        for column, (label, field) in zip(st.columns(len(row)), row, strict=True):
            column.metric(label, figures[field], help=definitions.get(field) or None, border=True)
    st.subheader("Executions per hour, last 24 h")
    chart = executions_chart(buckets)
    if chart is None:
        st.info("No executions in the last 24 h.")
    else:
        st.vega_lite_chart(chart, height=280, width="stretch")
    st.subheader("Top error groups, last 24 h")
    if groups:
        rows = group_rows(groups)
        st.dataframe(rows, hide_index=True, width="stretch", column_config=tables.columns(rows))
    else:
        st.success("No failures in the last 24 h.")


@st.fragment(run_every=REFRESH_SECONDS)
def live() -> None:
    """Fetch everything, then render; a failed call shows a banner instead."""
    with session.client() as api, session.guarded():
        firing_banners(api.alerts()["items"])  # what is firing comes before anything else
        summary = api.summary()
        definitions = st.session_state.get(DEFINITIONS) or api.definitions("Summary")
        st.session_state[DEFINITIONS] = definitions  # they change only with the server: not every 5 s
        buckets = api.timeseries(since="24h", bucket="1h")
        groups = api.error_groups(since="24h", limit=5)
        show(summary, definitions, buckets, groups)
        st.caption(f"Updated {datetime.now():%H:%M:%S}; refreshes every {REFRESH_SECONDS} s.")


def render() -> None:
    """The page."""
    st.title("Overview")
    live()


if __name__ == "__main__":
    render()
