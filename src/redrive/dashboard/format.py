"""Pure shaping of API answers into what the pages draw: chart columns, table rows, short texts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redrive.dashboard.client import ErrorGroup

STATUS_ICONS = {
    "succeeded": "✅",
    "failed_retryable": "📥",
    "failed": "⛔",
    "replayed": "🔁",
    "pending": "⏳",
    "running": "▶️",
}


STATUS_COLORS = {"succeeded": "#2e7d32", "failed": "#c62828", "failed_retryable": "#ef6c00", "replayed": "#90a4ae"}


def status_colors(statuses: Sequence[str]) -> list[str]:
    """One chart color per status, in the order of ``statuses``."""
    return [STATUS_COLORS.get(status, "#607d8b") for status in statuses]


def when(value: str | None) -> datetime | None:
    """An ISO 8601 time from the API as a datetime (the tables format it)."""
    return datetime.fromisoformat(value) if value else None


def chart_columns(buckets: Sequence[dict[str, Any]]) -> tuple[dict[str, list[Any]], list[str]]:
    """Timeseries buckets as chart columns: ``time`` plus one column per status."""
    statuses = list(buckets[0]["counts"]) if buckets else []
    data: dict[str, list[Any]] = {"time": [when(b["start"]) for b in buckets]}
    for status in statuses:
        data[status] = [b["counts"][status] for b in buckets]
    return data, statuses


def group_rows(groups: Sequence[ErrorGroup]) -> list[dict[str, Any]]:
    """Error groups as table rows."""
    return [
        {
            "error": g["title"],
            "trigger": g["trigger"],
            "code": g["code"],
            "in window": g["count"],
            "dead letters": g["dlq"],
            "status": g["status"],
            "last seen": when(g["last_seen"]),
        }
        for g in groups
    ]


def execution_rows(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Executions as table rows."""
    return [
        {
            "id": e["id"],
            "status": f"{STATUS_ICONS.get(e['status'], '')} {e['status']}",
            "trigger": e["trigger"],
            "kind": e["kind"],
            "attempts": e["attempt_count"],
            "error": e["error_code"] or "",
            "message": e["error_message"] or "",
            "created": when(e["created_at"]),
            "finished": when(e["finished_at"]),
            "replay of": e["replay_of"],
        }
        for e in items
    ]


def sent_by_attempt(attempts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What each attempt sent (redacted, as stored when it ran), keyed ``attempt N``."""
    return {f"attempt {a['number']}": a.get("request") or {"note": "not recorded"} for a in attempts}


def attempt_rows(attempts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """An execution's attempts, oldest first, as a timeline table."""
    return [
        {
            "attempt": a["number"],
            "started": when(a["started_at"]),
            "finished": when(a["finished_at"]),
            "ms": a["duration_ms"],
            "outcome": a["outcome"],
            "error": a["error_code"] or "",
            "message": a["message"] or "",
        }
        for a in attempts
    ]


def execution_label(e: dict[str, Any]) -> str:
    """One line naming an execution in a picker."""
    return f"#{e['id']} · {e['trigger']} · {e['status']}" + (f" · {e['error_code']}" if e["error_code"] else "")
