"""What an alert says: the rule and the numbers that tripped it, the top error group with its hint and remedy, one
sample failing execution (redacted payload excerpt), and a link to the dashboard; a resolution says how long it
fired and how many events failed meanwhile.

``gather`` reads the facts in one read job (counts and one sample, from indexes); ``compose`` is pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from redrive.alerts.conditions import Reading, Scope
from redrive.alerts.rules import AlertRule
from redrive.alerts.store import Message
from redrive.db.schema import attempts, events, executions, triggers
from redrive.failures.error_groups import GroupFilter, get_group, list_statement
from redrive.failures.hints import Hint
from redrive.observe.redaction import Redactor
from redrive.observe.stats import FAILED_OUTCOMES

EXCERPT_CHARS = 300
DEFAULT_LOOKBACK = 3600.0  # where a condition has no window of its own: the last hour's top group


@dataclass(frozen=True, slots=True)
class Facts:
    """What the database says around a transition."""

    group: dict[str, Any] | None = None
    sample: dict[str, Any] | None = None
    failed_meanwhile: int | None = None


@dataclass(frozen=True, slots=True)
class Voice:
    """What composing needs besides facts: hints, redaction, the dashboard's base URL."""

    hint_for: Callable[[str, str], Hint]
    redactor: Redactor = field(default_factory=Redactor)
    public_url: str | None = None


def lookback(rule: AlertRule) -> float:
    """The window the message's top group is counted over: the condition's window or quiet period, else an hour."""
    return float(getattr(rule.when, "window", None) or getattr(rule.when, "quiet", None) or DEFAULT_LOOKBACK)


def gather(
    rule: AlertRule, scope: Scope, reading: Reading, now: datetime, fired_since: datetime | None
) -> Callable[[Connection], Facts]:
    """A read job: the top error group of the scope (the condition's own group when it names one), its sample
    execution, and, for a resolution, the executions whose attempts failed while it fired (counted from the start of
    the window that tripped it, so the failures that made it fire count too)."""

    def job(connection: Connection) -> Facts:
        since = now - timedelta(seconds=lookback(rule))
        fingerprint = reading.numbers.get("fingerprint")
        if isinstance(fingerprint, str):
            group = get_group(fingerprint, since)(connection)
        else:
            statement = list_statement(GroupFilter(since=since, limit=1))
            row = connection.execute(statement.where(triggers.c.name.in_(scope.trigger_names))).first()
            group = None if row is None else dict(row._mapping)
        sample = _sample(connection, group["sample_execution_id"]) if group and group["sample_execution_id"] else None
        start = None if fired_since is None else fired_since - timedelta(seconds=lookback(rule))
        failed = None if start is None else _failed_since(connection, scope, start)
        return Facts(group, sample, failed)

    return job


def _sample(connection: Connection, execution_id: int) -> dict[str, Any] | None:
    row = connection.execute(
        select(executions.c.id, triggers.c.name, executions.c.error_code, executions.c.error_message, events.c.payload)
        .join(events, events.c.id == executions.c.event_id)
        .join(triggers, triggers.c.id == executions.c.trigger_id)
        .where(executions.c.id == execution_id)
    ).first()
    if row is None:
        return None
    return {"execution_id": row.id, "trigger": row.name, "error_code": row.error_code, "payload": row.payload}


def _failed_since(connection: Connection, scope: Scope, since: datetime) -> int:
    """Executions of the scope with a failed attempt since ``since`` (replayed ones included: they did fail)."""
    count = connection.execute(
        select(func.count(func.distinct(attempts.c.execution_id)))
        .select_from(attempts.join(executions, executions.c.id == attempts.c.execution_id))
        .where(
            attempts.c.finished_at >= since,
            attempts.c.outcome.in_(FAILED_OUTCOMES),
            executions.c.trigger_id.in_(scope.trigger_ids),
        )
    ).scalar_one()
    return int(count)


def _span(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes}m {secs}s" if hours else f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _link(voice: Voice, group: dict[str, Any] | None) -> str | None:
    if voice.public_url is None:
        return None
    base = voice.public_url.rstrip("/")
    if group is not None:
        return f"{base}/ui/dead-letters?fingerprint={group['fingerprint']}"
    return f"{base}/ui/alerts"


def _group_detail(voice: Voice, group: dict[str, Any]) -> dict[str, Any]:
    hint = voice.hint_for(group["code"], group["title"])
    return {
        "fingerprint": group["fingerprint"],
        "title": group["title"],
        "code": group["code"],
        "trigger": group["trigger"],
        "count": group["count"],
        "dlq": group["dlq"],
        "hint": {"title": hint.title, "advice": hint.advice, "remedy": hint.remedy},
    }


def _sample_detail(voice: Voice, sample: dict[str, Any]) -> dict[str, Any]:
    text = orjson.dumps(voice.redactor.tree(sample["payload"])).decode()
    excerpt = voice.redactor.excerpt(text)
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[:EXCERPT_CHARS] + "…"
    return {**{k: v for k, v in sample.items() if k != "payload"}, "payload_excerpt": excerpt}


def compose(
    rule: AlertRule,
    kind: str,
    reading: Reading,
    facts: Facts,
    voice: Voice,
    *,
    now: datetime,
    fired_since: datetime | None = None,
) -> Message:
    """The message of one transition (``firing``, ``repeat``, ``resolved`` or ``test``)."""
    detail: dict[str, Any] = {
        "rule": rule.name,
        "kind": kind,
        "condition": type(rule.when).key,
        "summary": reading.summary,
        "numbers": reading.numbers,
        "triggers": rule.triggers,
        "group": None if facts.group is None else _group_detail(voice, facts.group),
        "sample": None if facts.sample is None else _sample_detail(voice, facts.sample),
        "link": _link(voice, facts.group),
    }
    headline = reading.summary.split(";")[0]
    lines = [f"Rule {rule.name} ({detail['condition']}): {reading.summary}."]
    if kind == "test":
        lines.insert(0, "This is a TEST notification sent by an operator: nothing fired.")
    if fired_since is not None and kind == "resolved":
        fired_for = (now - fired_since).total_seconds()
        detail["fired_for_seconds"] = round(fired_for, 1)
        detail["failed_meanwhile"] = facts.failed_meanwhile
        lines.insert(
            0, f"Resolved after firing for {_span(fired_for)}; {facts.failed_meanwhile} events failed meanwhile."
        )
    group = detail["group"]
    if group is not None:
        counts = f"{group['count']} failed attempts recently, {group['dlq']} dead letters"
        lines.append(f"Top error group: {group['title']} ({group['code']}, {counts}).")
        hint = group["hint"]
        lines.append(f"Hint: {hint['title']}. {hint['advice']} Remedy: {hint['remedy']}.")
    sample = detail["sample"]
    if sample is not None:
        lines.append(
            f"Sample: execution {sample['execution_id']} (trigger {sample['trigger']}, error {sample['error_code']}): "
            f"{sample['payload_excerpt']}"
        )
    if detail["link"]:
        lines.append(f"Open: {detail['link']}")
    title = f"[{kind.upper()}] {rule.name}: {headline}"
    return Message(title, "\n".join(lines), detail)
