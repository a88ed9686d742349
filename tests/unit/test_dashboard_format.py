"""The dashboard's pure formatting: relative times with the exact time beside them, the chart zoomed to the
activity, nodes and history shaped for their table and charts. ``now`` is injected, so every text is pinned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from redrive.dashboard.charts import executions_chart
from redrive.dashboard.format import (
    active_buckets,
    both,
    dead_letter_rows,
    exact,
    history_columns,
    node_rows,
    ordering_line,
    relative,
    replay_outcome,
    when,
)

NOW = datetime(2026, 12, 2, 7, 47, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ago", "shown"),
    [
        (timedelta(seconds=0), "just now"),
        (timedelta(seconds=4), "just now"),
        (timedelta(seconds=42), "42 s ago"),
        (timedelta(minutes=3, seconds=59), "3 min ago"),
        (timedelta(hours=5, minutes=10), "5 h ago"),
        (timedelta(days=2, hours=23), "2 d ago"),
        (timedelta(minutes=-4), "in 4 min"),
    ],
)
def test_relative_times(ago: timedelta, shown: str) -> None:
    assert relative(NOW - ago, NOW) == shown


def test_relative_reads_the_api_text_and_the_exact_time_is_whole_and_utc() -> None:
    assert relative("2026-12-02T07:44:15+00:00", NOW) == "3 min ago"
    assert relative("2026-12-02T08:44:15+01:00", NOW) == "3 min ago"  # same instant, another zone
    assert relative(None, NOW) == "—"
    assert exact("2026-12-02T08:44:15.123456+01:00") == "2026-12-02 07:44:15 UTC"
    assert exact(None) == "—"
    assert exact("2026-12-02T07:44:15+00:00", zone=False) == "2026-12-02 07:44:15"  # under a "(UTC)" heading
    assert both("2026-12-02T07:44:15+00:00", NOW) == "3 min ago (2026-12-02 07:44:15 UTC)"
    assert when("2026-12-02 07:44:15") == datetime(2026, 12, 2, 7, 44, 15, tzinfo=UTC)


def bucket(hour: int, **counts: int) -> dict[str, object]:
    return {"start": f"2026-12-02T{hour:02d}:00:00+00:00", "counts": {"succeeded": 0, "failed": 0, **counts}}


def test_the_chart_zooms_to_the_first_and_last_bucket_with_activity() -> None:
    buckets = [bucket(h) for h in range(24)]
    buckets[5] = bucket(5, succeeded=2)
    buckets[9] = bucket(9, failed=1)
    assert [b["start"] for b in active_buckets(buckets)] == [bucket(h)["start"] for h in range(5, 10)]
    assert active_buckets([bucket(h) for h in range(24)]) == []
    assert active_buckets([bucket(3, failed=1)]) == [bucket(3, failed=1)]
    # Widened to a minimum: first with the quiet hours before, then after when the busy one is near the start.
    quiet = [bucket(h) for h in range(24)]
    assert [b["start"][11:13] for b in active_buckets([*quiet[:10], bucket(10, failed=1), *quiet[11:]], 4)] == [
        "07", "08", "09", "10"
    ]  # fmt: skip
    assert [b["start"][11:13] for b in active_buckets([bucket(0, failed=1), *quiet[1:]], 3)] == ["00", "01", "02"]
    assert len(active_buckets([*quiet[:5], bucket(5, failed=1), *quiet[6:9], bucket(9, failed=1), *quiet[10:]], 3)) == 5


def test_node_rows_show_mib_leader_and_last_beat() -> None:
    node = {
        "id": "0123456789ab",
        "role": "all",
        "host": "box",
        "pid": 7,
        "leader": True,
        "alive": True,
        "last_beat_at": "2026-12-02T07:47:05+00:00",
        "in_flight": 3,
        "rss_bytes": 157_286_400,
    }
    [row] = node_rows([node, {**node, "rss_bytes": None, "leader": False}], NOW)[:1]
    assert row == {
        "id": "0123456789ab",
        "role": "all",
        "host": "box",
        "leader": True,
        "alive": True,
        "last beat": "10 s ago",
        "last beat (UTC)": "2026-12-02 07:47:05",
        "in flight": 3,
        "RSS (MiB)": 150.0,
    }
    assert node_rows([{**node, "rss_bytes": None}], NOW)[0]["RSS (MiB)"] is None


def test_history_columns_give_the_failure_rate_in_percent_and_none_when_nothing_ran() -> None:
    samples = [
        {"at": "2026-12-02T07:45:00+00:00", "queue_depth": 4, "oldest_pending_age_seconds": 12.5, "dlq_size": 2,
         "failure_rate": 0.25},
        {"at": "2026-12-02T07:46:00+00:00", "queue_depth": 0, "oldest_pending_age_seconds": 0.0, "dlq_size": 2,
         "failure_rate": None},
    ]  # fmt: skip
    columns = history_columns(samples)
    assert columns["time"] == [datetime(2026, 12, 2, 7, 45, tzinfo=UTC), datetime(2026, 12, 2, 7, 46, tzinfo=UTC)]
    assert columns["queue depth"] == [4, 0]
    assert columns["failure rate (%)"] == [25.0, None]


def test_dead_letter_rows_and_replay_outcomes() -> None:
    item = {
        "id": 12,
        "trigger": "orders",
        "error_code": "exit_75",
        "error_message": "exit status 75",
        "attempt_count": 2,
        "finished_at": "2026-12-02T06:47:15+00:00",
        "replay_of": None,
    }
    [row] = dead_letter_rows([item], NOW)
    assert (row["id"], row["dead since"], row["dead since (UTC)"]) == (12, "1 h ago", "2026-12-02 06:47:15")
    assert replay_outcome(12, {"new_execution_id": 40}, None) == "#12 → new execution #40"
    assert replay_outcome(13, None, ("rate_limited", "wait 60 s")) == "#13 not replayed (rate_limited): wait 60 s"


def test_the_executions_chart_spans_the_active_buckets_with_whole_labels() -> None:
    buckets = [bucket(h) for h in range(24)]
    buckets[6] = bucket(6, succeeded=3)
    buckets[8] = bucket(8, failed=2)
    chart = executions_chart(buckets)
    assert chart is not None
    shown = [v["bucket"] for v in chart["data"]["values"] if v["status"] == "failed"]
    assert shown == ["03:00", "04:00", "05:00", "06:00", "07:00", "08:00"]  # 06:00 to 08:00, widened to six
    assert chart["encoding"]["x"]["type"] == "ordinal"  # bands: no label on the chart's edge
    assert chart["encoding"]["x"]["axis"]["labelAngle"] == 0
    assert chart["autosize"]["contains"] == "padding"
    assert executions_chart([bucket(h) for h in range(24)]) is None
    two_days = [bucket(23, failed=1), {**bucket(0, failed=1), "start": "2026-12-03T00:00:00+00:00"}]
    assert {v["bucket"] for v in executions_chart(two_days)["data"]["values"]} == {"02 Dec 23:00", "03 Dec 00:00"}  # type: ignore[index]


def test_the_ordering_line_says_the_key_the_policy_and_what_the_execution_waits_on() -> None:
    blocked = {"key": "c-7", "on_dead_letter": "block", "state": "blocked", "waiting_on": 41, "blocked": True}
    line = ordering_line(blocked)
    assert "`c-7`" in line
    assert "blocks the key until it is replayed" in line
    assert "blocked by dead-lettered execution #41" in line
    waiting = {"key": "c-7", "on_dead_letter": "continue", "state": "waiting", "waiting_on": 40, "blocked": False}
    assert "releases the next" in ordering_line(waiting)
    assert "waiting on execution #40" in ordering_line(waiting)
    gone = {"key": "c-7", "on_dead_letter": None, "state": "head", "waiting_on": None, "blocked": False}
    assert "no longer orders" in ordering_line(gone)
