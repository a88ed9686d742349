"""The alert engine: the leader evaluates every rule from database counts, records transitions once, and delivers
their notifications through the channels, retried with backoff, apart from evaluation.

Two loops, both doing nothing unless this node leads (``is_leader``): ``evaluate_once`` (every
``alert_interval``) measures each rule, decides (``redrive.alerts.decide``) and stores the state with its transition
and pending notifications in one transaction; ``deliver_once`` (every second) claims due notifications and sends
them concurrently, each bounded by ``SEND_TIMEOUT``, so a slow or failing channel delays only itself. A rule whose
measure fails is logged and skipped; the others are evaluated. State lives in the database only: a new leader
carries on from the stored state, and the per-transition ``seq`` guard keeps it from recording a transition twice.
History older than ``HISTORY_RETENTION`` is purged by the leader once an hour.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from redrive.alerts.conditions import Reading, Scope
from redrive.alerts.decide import AlertState, decide
from redrive.alerts.message import Voice, compose, gather
from redrive.alerts.rules import AlertRule
from redrive.alerts.store import (
    Delivery,
    channel_health,
    claim_due,
    load_states,
    purge_history,
    record_delivery,
    record_transition,
    save_step,
)
from redrive.clock import Clock
from redrive.db.database import Database
from redrive.extensions import AlertChannel, AlertNotification
from redrive.failures import audit
from redrive.failures.error_groups import silenced
from redrive.node.periodic import Periodic
from redrive.observe.metrics import Metrics
from redrive.queue.retry import RetryPolicy

log = structlog.get_logger("redrive.alerts")

SEND_TIMEOUT = 30.0
DELIVERY_INTERVAL = 1.0
DELIVERY_RETRY = RetryPolicy(max_attempts=12, base=5.0, factor=2.0, max_delay=600.0, jitter="none")
"""A notification is tried 12 times, 5 s, 10 s, 20 s ... then every 10 min (about an hour in all), then failed."""
HISTORY_RETENTION = timedelta(days=30)
"""Transitions (and their notifications) older than this are purged by the leader, once an hour."""
PURGE_EVERY = timedelta(hours=1)


@dataclass
class AlertSetup:
    """What the engine is given: the rules, the built channels by name, how to scope a rule, and its helpers."""

    rules: Sequence[AlertRule]
    channels: dict[str, AlertChannel]
    scope: Callable[[AlertRule], Scope]
    voice: Voice


class AlertEngine:
    """Evaluates the rules and delivers notifications while ``is_leader()`` says this node leads."""

    def __init__(
        self,
        db: Database,
        setup: AlertSetup,
        *,
        clock: Clock,
        is_leader: Callable[[], bool],
        interval: float,
        metrics: Metrics | None = None,
        publish: Callable[[str, dict[str, Any]], None] = lambda kind, data: None,
    ) -> None:
        self._db = db
        self._setup = setup
        self._clock = clock
        self._is_leader = is_leader
        self._metrics = metrics
        self._publish = publish
        self._purged_at: datetime | None = None
        self._evaluation = Periodic("alerts", self.evaluate_once, interval, failed_evt="alert_evaluation_failed")
        self._delivery = Periodic(
            "alert-delivery", self.deliver_once, DELIVERY_INTERVAL, failed_evt="alert_delivery_failed"
        )

    @property
    def rules(self) -> Sequence[AlertRule]:
        """The configured rules."""
        return self._setup.rules

    def start(self) -> None:
        """Start both loops (when there are rules)."""
        if self._setup.rules:
            self._evaluation.start()
            self._delivery.start()

    async def stop(self) -> None:
        """Stop both loops."""
        await self._evaluation.stop()
        await self._delivery.stop()

    async def evaluate_once(self) -> list[str]:
        """Evaluate every rule once (when leading); the keys of the transitions recorded."""
        if not self._is_leader() or not self._setup.rules:
            return []
        now = self._clock()
        states = await self._db.write(load_states([r.name for r in self._setup.rules], now))
        recorded = []
        for rule in self._setup.rules:
            try:
                key = await self._evaluate(rule, states[rule.name], now)
            except Exception as exc:  # one rule's trouble never stops the others
                log.warning("alert_rule_failed", rule=rule.name, error=str(exc) or type(exc).__name__)
                continue
            if key is not None:
                recorded.append(key)
        if self._purged_at is None or now - self._purged_at >= PURGE_EVERY:
            self._purged_at = now
            await self._db.write(purge_history(now - HISTORY_RETENTION))
        return recorded

    async def _evaluate(self, rule: AlertRule, current: AlertState, now: datetime) -> str | None:
        scope = self._setup.scope(rule)
        reading = await self._measure(rule, scope, now)
        step = decide(current, reading, now, quiet=rule.quiet, repeat=rule.repeat)
        message = None
        if step.transition is not None:
            fired_since = current.since if step.transition == "resolved" else None
            facts = await self._db.read(gather(rule, scope, reading, now, fired_since))
            if step.transition == "repeat" and facts.group is not None and silenced(facts.group, now):
                # An operator acknowledged (or snoozed) the cause: no reminder, and the rule keeps firing; the
                # next evaluation asks again, so the reminders resume when the acknowledgement goes.
                log.info("alert_repeat_silenced", rule=rule.name, fingerprint=facts.group["fingerprint"])
                return None
            message = compose(
                rule, step.transition, reading, facts, self._setup.voice, now=now, fired_since=fired_since
            )
        recorded = await self._db.write(save_step(current.seq, step, now, reading.summary, message, rule.notify))
        if recorded is None or step.transition is None:
            return None
        evt = "alert_resolved" if step.transition == "resolved" else "alert_firing"
        log.warning(evt, rule=rule.name, key=step.key, kind=step.transition, summary=reading.summary)
        self._counted(rule.name, step.transition)
        self._publish(
            "alert", {"rule": rule.name, "kind": step.transition, "key": step.key, "summary": reading.summary}
        )
        return step.key

    async def _measure(self, rule: AlertRule, scope: Scope, now: datetime) -> Reading:
        reading: Reading = await self._db.read(lambda connection: rule.when.measure(connection, scope, now))
        return reading

    def _counted(self, rule: str, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.alert_transitions.labels(rule, kind).inc()

    async def send_test(self, rule: AlertRule, *, actor: str) -> str:
        """Record a clearly marked test notification of ``rule`` for each of its channels, audited; its key."""
        now = self._clock()
        scope = self._setup.scope(rule)
        reading = await self._measure(rule, scope, now)
        facts = await self._db.read(gather(rule, scope, reading, now, None))
        message = compose(rule, "test", reading, facts, self._setup.voice, now=now)
        key = f"{rule.name}:test:{uuid.uuid4().hex[:12]}"

        def job(connection: Connection) -> None:
            record_transition(connection, key, rule.name, "test", now, message, rule.notify)
            detail = {"key": key, "channels": list(rule.notify)}
            audit.record(
                connection, at=now, actor=actor, action="alert.test", target=rule.name, result="ok", detail=detail
            )

        await self._db.write(job)
        log.info("alert_test", rule=rule.name, key=key, actor=actor)
        self._counted(rule.name, "test")
        return key

    async def deliver_once(self) -> int:
        """Claim and send the due notifications (when leading); how many were delivered."""
        if not self._is_leader():
            return 0
        now = self._clock()
        due = await self._db.write(claim_due(now))
        results = await asyncio.gather(*(self._deliver(delivery) for delivery in due))
        return sum(results)

    async def _deliver(self, delivery: Delivery) -> bool:
        channel = self._setup.channels.get(delivery.channel)
        error: str | None = None
        try:
            if channel is None:
                raise LookupError(f"channel {delivery.channel!r} is no longer configured")
            await asyncio.wait_for(channel.send(_notification(delivery)), SEND_TIMEOUT)
        except Exception as exc:  # whatever the channel raised: recorded, retried, never spread to the others
            error = self._setup.voice.redactor.text(f"{type(exc).__name__}: {exc}")[:500]  # stored and shown
        now = self._clock()
        retry_at = None
        if error is not None and delivery.attempt < DELIVERY_RETRY.max_attempts and channel is not None:
            retry_at = now + timedelta(seconds=DELIVERY_RETRY.backoff(delivery.attempt, 0.0))
        await self._db.write(record_delivery(delivery.id, now, error=error, retry_at=retry_at))
        outcome = "delivered" if error is None else "retry" if retry_at is not None else "failed"
        fields = {"rule": delivery.rule, "key": delivery.key, "channel": delivery.channel, "attempt": delivery.attempt}
        if error is None:
            log.info("alert_notified", **fields, kind=delivery.kind)
        else:
            log.warning(
                "alert_notify_failed", **fields, error=error, retry_at=retry_at.isoformat() if retry_at else None
            )
        if self._metrics is not None:
            self._metrics.alert_notifications.labels(delivery.channel, outcome).inc()
        return error is None

    async def health(self, since: timedelta = timedelta(days=1)) -> dict[str, dict[str, int]]:
        """Per configured channel: its notifications of the last day by delivery status."""
        found = await self._db.read(channel_health(self._clock() - since))
        empty = {"pending": 0, "delivered": 0, "failed": 0, "retrying": 0}
        return {name: found.get(name, dict(empty)) for name in self._setup.channels}


def _notification(delivery: Delivery) -> AlertNotification:
    return AlertNotification(
        key=delivery.key,
        rule=delivery.rule,
        kind=delivery.kind,
        at=delivery.at,
        title=delivery.title,
        text=delivery.text,
        detail=delivery.detail,
    )
