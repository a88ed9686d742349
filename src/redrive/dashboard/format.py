"""Pure shaping of API answers into what the pages draw: chart columns, table rows, short texts.

Times are shown relative to ``now`` ("3 min ago") with the exact UTC time beside them or on hover; every function
that needs the current time takes it as ``now``, so tests pin the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from redrive.dashboard.client import ErrorGroup

STATUS_COLORS = {"succeeded": "#2e7d32", "failed": "#c62828", "failed_retryable": "#ef6c00", "replayed": "#90a4ae"}
MIB = 1024 * 1024


def group_scope(value: str | None) -> str | None:
    """An error-group fingerprint from a link's query string: 16 lower-case hex digits, else nothing."""
    if value is None or len(value) != 16 or any(c not in "0123456789abcdef" for c in value):
        return None
    return value


def when(value: str | None) -> datetime | None:
    """An ISO 8601 time from the API as an aware datetime (UTC when the text carries no zone)."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def relative(at: datetime | str | None, now: datetime) -> str:
    """``at`` as a distance from ``now``: "just now", "42 s ago", "3 min ago", "5 h ago", "2 d ago", "in 4 min"."""
    moment = when(at) if isinstance(at, str) or at is None else at
    if moment is None:
        return "—"
    seconds = int((now - moment).total_seconds())
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds < 5:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if seconds >= size:
            amount = f"{seconds // size} {unit}"
            return f"in {amount}" if ahead else f"{amount} ago"
    raise AssertionError("unreachable")  # pragma: no cover


def exact(at: datetime | str | None, *, zone: bool = True) -> str:
    """``at`` in full, in UTC, to the second: "2026-12-02 07:47:15 UTC" (without " UTC" for a "(UTC)" column)."""
    moment = when(at) if isinstance(at, str) or at is None else at
    if moment is None:
        return "—"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}" + (" UTC" if zone else "")


def both(at: datetime | str | None, now: datetime) -> str:
    """Relative, then exact in brackets: for sentences, where there is no hover."""
    return "—" if at is None else f"{relative(at, now)} ({exact(at)})"


def active_buckets(buckets: Sequence[dict[str, Any]], minimum: int = 1) -> list[dict[str, Any]]:
    """The buckets from the first to the last with any count: a chart zoomed to where the activity is. A span
    shorter than ``minimum`` buckets is widened with the empty ones before it (then after it), so that one busy
    hour is drawn as a bar among hours, not as a band across the whole chart."""
    busy = [i for i, b in enumerate(buckets) if any(b["counts"].values())]
    if not busy:
        return []
    first, last = busy[0], busy[-1]
    short = max(0, minimum - (last - first + 1))
    first = max(0, first - short)
    last = min(len(buckets) - 1, first + max(minimum, busy[-1] - first + 1) - 1)
    return list(buckets[first : last + 1])


def group_rows(groups: Sequence[ErrorGroup], now: datetime | None = None) -> list[dict[str, Any]]:
    """Error groups as table rows."""
    now = now or datetime.now(UTC)
    return [
        {
            "trigger": g["trigger"],
            "code": g["code"],
            "in window": g["count"],
            "dead letters": g["dlq"],
            "status": g["status"],
            "last seen": relative(g["last_seen"], now),
            "last seen (UTC)": exact(g["last_seen"], zone=False),
            "error": g["title"],  # last: the only column a narrow window may cut
        }
        for g in groups
    ]


def execution_rows(items: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Executions as table rows."""
    return [
        {
            "id": e["id"],
            "status": e["status"],
            "trigger": e["trigger"],
            "kind": e["kind"],
            "attempts": e["attempt_count"],
            "error": e["error_code"] or "",
            "replay of": f"#{e['replay_of']}" if e["replay_of"] else "",
            "created": relative(e["created_at"], now),
            "created (UTC)": exact(e["created_at"], zone=False),
            "message": e["error_message"] or "",  # last: the only column a narrow window may cut (whole in the detail)
        }
        for e in items
    ]


def dead_letter_rows(items: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Dead letters (``failed_retryable`` executions) as selectable table rows."""
    return [
        {
            "id": e["id"],
            "trigger": e["trigger"],
            "error": e["error_code"] or "",
            "attempts": e["attempt_count"],
            "replay of": f"#{e['replay_of']}" if e["replay_of"] else "",
            "dead since": relative(e["finished_at"], now),
            "dead since (UTC)": exact(e["finished_at"], zone=False),
            "message": e["error_message"] or "",
        }
        for e in items
    ]


def sample_rows(sample: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """A bulk replay dry run's sample of executions as table rows."""
    return [
        {
            "id": e["id"],
            "trigger": e["trigger"],
            "status": e["status"],
            "error": e.get("error_code") or "",
            "created": relative(e.get("created_at"), now),
            "created (UTC)": exact(e.get("created_at"), zone=False),
        }
        for e in sample
    ]


def sent_by_attempt(attempts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What each attempt sent (redacted, as stored when it ran), keyed ``attempt N``."""
    return {f"attempt {a['number']}": a.get("request") or {"note": "not recorded"} for a in attempts}


def attempt_rows(attempts: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """An execution's attempts, oldest first, as a timeline table."""
    return [
        {
            "attempt": a["number"],
            "started": relative(a["started_at"], now),
            "started (UTC)": exact(a["started_at"], zone=False),
            "ms": round(a["duration_ms"], 1),
            "outcome": a["outcome"] if not a.get("note") else f"{a['outcome']} ({a['note']})",
            "error": a["error_code"] or "",
            "message": a["message"] or "",
        }
        for a in attempts
    ]


def node_rows(nodes: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """``/api/v1/system``'s nodes as table rows: RSS in MiB, the last beat relative and exact."""
    return [
        {
            "id": n["id"],
            "role": n["role"],
            "host": n["host"],
            "leader": bool(n.get("leader")),
            "alive": bool(n["alive"]),
            "last beat": relative(n["last_beat_at"], now),
            "last beat (UTC)": exact(n["last_beat_at"], zone=False),
            "in flight": n["in_flight"],
            "RSS (MiB)": round(n["rss_bytes"] / MIB, 1) if n.get("rss_bytes") is not None else None,
        }
        for n in nodes
    ]


def history_columns(samples: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """``/api/v1/system/history`` samples as chart columns; the failure rate in percent (None: nothing ran)."""
    rates = [s["failure_rate"] for s in samples]
    return {
        "time": [when(s["at"]) for s in samples],
        "queue depth": [s["queue_depth"] for s in samples],
        "oldest pending age (s)": [s["oldest_pending_age_seconds"] for s in samples],
        "dead letters": [s["dlq_size"] for s in samples],
        "failure rate (%)": [None if r is None else round(100 * r, 1) for r in rates],
    }


def execution_label(e: dict[str, Any]) -> str:
    """One line naming an execution in a picker."""
    return f"#{e['id']} · {e['trigger']} · {e['status']}" + (f" · {e['error_code']}" if e["error_code"] else "")


def replay_outcome(execution_id: int, answer: dict[str, Any] | None, refusal: tuple[str, str] | None) -> str:
    """One line per replayed dead letter: its new execution, or the API's refusal (code and message)."""
    if answer is not None:
        return f"#{execution_id} → new execution #{answer['new_execution_id']}"
    code, message = refusal or ("error", "no answer")
    return f"#{execution_id} not replayed ({code}): {message}"


def ordering_line(ordering: dict[str, Any]) -> str:
    """Where an ordered execution stands in its key, in one sentence (the execution view's ``ordering`` block)."""
    policy = ordering["on_dead_letter"]
    rule = {
        "continue": "a dead-lettered head releases the next",
        "block": "a dead-lettered head blocks the key until it is replayed",
    }.get(policy, "the trigger no longer orders its deliveries")
    state = ordering["state"]
    where = {
        "head": "next in its key",
        "running": "running (the key's head)",
        "finished": "finished",
        "waiting": f"waiting on execution #{ordering['waiting_on']}",
        "blocked": f"blocked by dead-lettered execution #{ordering['waiting_on']}",
    }.get(state, state)
    return f"Ordered by key `{ordering['key']}` ({policy or 'unordered now'}: {rule}) · {where}"
