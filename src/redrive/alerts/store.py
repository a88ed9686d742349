"""Every alert statement: rule states, transitions with their notifications, delivery bookkeeping, history.

A transition and its notifications are written in the same transaction as the state change, and only where the
rule's ``seq`` is still what the evaluation read (compare-and-set), so a second leader in a hand-over records
nothing twice; the transition's unique ``key`` backs that up. Deliveries are claimed (``attempts`` + 1, ``next_at``
pushed past a lease) before they are sent, so two dispatchers never send the same notification at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection

from redrive.alerts.decide import AlertState, Step
from redrive.db.engine import dialect_insert
from redrive.db.schema import alert_notifications, alert_states, alert_transitions
from redrive.failures.audit import jsonable

CLAIM_LEASE = timedelta(seconds=60)
"""How long a claimed delivery is left alone before another dispatcher may try it (a sender's timeout is shorter)."""


@dataclass(frozen=True, slots=True)
class Message:
    """A transition's content: what every channel is told."""

    title: str
    text: str
    detail: dict[str, Any]


def load_states(rules: Sequence[str], now: datetime) -> Callable[[Connection], dict[str, AlertState]]:
    """A write job: the stored state of each rule, creating ``ok`` rows for new rules."""

    def job(connection: Connection) -> dict[str, AlertState]:
        if rules:
            insert = dialect_insert(connection)(alert_states)
            rows = [{"rule": rule, "state": "ok", "since": now, "seq": 0} for rule in rules]
            connection.execute(insert.values(rows).on_conflict_do_nothing(index_elements=["rule"]))
        found = connection.execute(select(alert_states).where(alert_states.c.rule.in_(rules)))
        return {
            row.rule: AlertState(row.rule, row.state, row.since, row.seq, row.clearing_since, row.notified_at)
            for row in found
        }

    return job


def save_step(
    read_seq: int,
    step: Step,
    now: datetime,
    summary: str,
    message: Message | None,
    channels: Sequence[str],
) -> Callable[[Connection], int | None]:
    """A write job: store the rule's new state where its ``seq`` is still ``read_seq``; with a transition, record
    it and one pending notification per channel. Returns the transition's id (None when there is none, or when
    another node got there first)."""

    def job(connection: Connection) -> int | None:
        state = step.state
        changed = connection.execute(
            update(alert_states)
            .where(alert_states.c.rule == state.rule, alert_states.c.seq == read_seq)
            .values(
                state=state.state,
                since=state.since,
                seq=state.seq,
                clearing_since=state.clearing_since,
                notified_at=state.notified_at,
                evaluated_at=now,
                summary=summary,
            )
        ).rowcount
        if not changed or step.transition is None or message is None:
            return None
        return record_transition(connection, step.key, state.rule, step.transition, now, message, channels)

    return job


def record_transition(
    connection: Connection,
    key: str,
    rule: str,
    kind: str,
    at: datetime,
    message: Message,
    channels: Sequence[str],
) -> int:
    """Insert a transition and its pending notifications in the caller's transaction; its id."""
    transition_id: int = connection.execute(
        alert_transitions.insert()
        .values(
            key=key,
            rule=rule,
            kind=kind,
            at=at,
            title=message.title,
            text=message.text,
            detail=jsonable(message.detail),
        )
        .returning(alert_transitions.c.id)
    ).scalar_one()
    if channels:
        connection.execute(
            alert_notifications.insert(),
            [{"transition_id": transition_id, "channel": c, "status": "pending", "next_at": at} for c in channels],
        )
    return transition_id


@dataclass(frozen=True, slots=True)
class Delivery:
    """One claimed notification: the channel, the attempt number, and the transition it tells."""

    id: int
    channel: str
    attempt: int
    key: str
    rule: str
    kind: str
    at: datetime
    title: str
    text: str
    detail: dict[str, Any]


def claim_due(now: datetime, limit: int = 50) -> Callable[[Connection], list[Delivery]]:
    """A write job: claim the pending notifications due at ``now`` (oldest first), each for ``CLAIM_LEASE``."""

    def job(connection: Connection) -> list[Delivery]:
        rows = connection.execute(
            select(alert_notifications, alert_transitions)
            .join(alert_transitions, alert_transitions.c.id == alert_notifications.c.transition_id)
            .where(alert_notifications.c.status == "pending", alert_notifications.c.next_at <= now)
            .order_by(alert_notifications.c.next_at, alert_notifications.c.id)
            .limit(limit)
        ).all()
        claimed = []
        for row in rows:
            n = row._mapping
            taken = connection.execute(
                update(alert_notifications)
                .where(alert_notifications.c.id == n["id"], alert_notifications.c.attempts == n["attempts"])
                .values(attempts=n["attempts"] + 1, next_at=now + CLAIM_LEASE)
            ).rowcount
            if taken:
                claimed.append(
                    Delivery(
                        n["id"],
                        n["channel"],
                        n["attempts"] + 1,
                        n["key"],
                        n["rule"],
                        n["kind"],
                        n["at"],
                        n["title"],
                        n["text"],
                        dict(n["detail"]),
                    )
                )
        return claimed

    return job


def record_delivery(
    notification_id: int, now: datetime, *, error: str | None, retry_at: datetime | None
) -> Callable[[Connection], None]:
    """A write job: delivered (no ``error``), retry at ``retry_at``, or failed for good (an error, no retry)."""

    def job(connection: Connection) -> None:
        if error is None:
            values: dict[str, Any] = {"status": "delivered", "delivered_at": now, "last_error": None}
        elif retry_at is not None:
            values = {"next_at": retry_at, "last_error": error}
        else:
            values = {"status": "failed", "last_error": error}
        connection.execute(
            update(alert_notifications).where(alert_notifications.c.id == notification_id).values(**values)
        )

    return job


def purge_history(before: datetime) -> Callable[[Connection], int]:
    """A write job: delete the transitions older than ``before`` and their notifications, except those still
    pending (a delivery in retry keeps its transition); how many transitions went."""

    def job(connection: Connection) -> int:
        old = select(alert_transitions.c.id).where(alert_transitions.c.at < before)
        waiting = select(alert_notifications.c.transition_id).where(alert_notifications.c.status == "pending")
        doomed = old.where(alert_transitions.c.id.not_in(waiting))
        connection.execute(delete(alert_notifications).where(alert_notifications.c.transition_id.in_(doomed)))
        return int(connection.execute(delete(alert_transitions).where(alert_transitions.c.id.in_(doomed))).rowcount)

    return job


def read_states() -> Callable[[Connection], dict[str, dict[str, Any]]]:
    """A read job: every stored rule state by rule."""

    def job(connection: Connection) -> dict[str, dict[str, Any]]:
        return {row.rule: dict(row._mapping) for row in connection.execute(select(alert_states))}

    return job


def read_history(limit: int = 100, rule: str | None = None) -> Callable[[Connection], list[dict[str, Any]]]:
    """A read job: the latest transitions, newest first, each with its notifications and their delivery status."""

    def job(connection: Connection) -> list[dict[str, Any]]:
        query = select(alert_transitions).order_by(alert_transitions.c.id.desc()).limit(limit)
        if rule is not None:
            query = query.where(alert_transitions.c.rule == rule)
        transitions = [dict(row._mapping) for row in connection.execute(query)]
        ids = [t["id"] for t in transitions]
        notes: dict[int, list[dict[str, Any]]] = {}
        found = connection.execute(
            select(alert_notifications)
            .where(alert_notifications.c.transition_id.in_(ids))
            .order_by(alert_notifications.c.id)
        )
        for row in found:
            item = dict(row._mapping)
            notes.setdefault(item.pop("transition_id"), []).append(item)
        for transition in transitions:
            transition["notifications"] = notes.get(transition["id"], [])
        return transitions

    return job


def channel_health(since: datetime) -> Callable[[Connection], dict[str, dict[str, int]]]:
    """A read job: per channel, notifications created since ``since`` by delivery status (pending, delivered,
    failed), and how many pending ones have failed at least once (``retrying``)."""

    def job(connection: Connection) -> dict[str, dict[str, int]]:
        rows = connection.execute(
            select(
                alert_notifications.c.channel,
                alert_notifications.c.status,
                func.count(),
                func.count().filter(alert_notifications.c.last_error.is_not(None)),
            )
            .join(alert_transitions, alert_transitions.c.id == alert_notifications.c.transition_id)
            .where(alert_transitions.c.at >= since)
            .group_by(alert_notifications.c.channel, alert_notifications.c.status)
        )
        health: dict[str, dict[str, int]] = {}
        for channel, status, count, erred in rows:
            entry = health.setdefault(channel, {"pending": 0, "delivered": 0, "failed": 0, "retrying": 0})
            entry[status] = int(count)
            if status == "pending":
                entry["retrying"] = int(erred)
        return health

    return job
