"""Alert conditions: what an alert rule's ``when:`` block can say, and how each one is measured from the database.

Each condition is one pydantic model whose first field names it (``failure_rate: ">= 5%"``, ``dlq_size: ">= 10"``)
and one ``measure`` method: given a read connection, the rule's triggers and now, it returns a :class:`Reading`
saying whether the condition holds (fire), has cleared (may resolve) or neither (keep the state: the band between
the firing threshold and ``resolve_below`` is the hysteresis). Measures read counts only, from indexes, with the
statements ``redrive.observe.stats`` defines where one exists.

Adding a condition is one class here and one entry in :data:`CONDITIONS`: the trigger-file model, ``config check``
and the engine pick it up from that tuple (the breaker-open condition plugs in the same way).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from redrive.db.schema import attempts, error_groups, executions, triggers
from redrive.states import ExecutionStatus
from redrive.triggers.fields import Duration, StrictModel

# The statements of redrive.observe.stats are imported where they are used: that module imports the trigger
# runtime, which imports the trigger file's model, which imports these conditions.

_THRESHOLD = re.compile(r"^\s*(>=|>)?\s*([0-9]+(?:\.[0-9]+)?)\s*(%?)\s*$")


def _threshold(percent: bool) -> Any:
    """A validator for ``">= 5%"`` (a fraction, 0.05) or ``">= 10"`` (a count); ``>`` is read as ``>=``."""

    def parse(value: object) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) / 100 if percent else float(value)
        match = _THRESHOLD.match(value) if isinstance(value, str) else None
        if match is None or (match.group(3) == "%") != percent:
            shape = "'>= 5%' (a percentage)" if percent else "'>= 10' (a count)"
            raise ValueError(f"{value!r} is not a threshold; write it like {shape}")
        number = float(match.group(2))
        return number / 100 if percent else number

    return BeforeValidator(parse)


Rate = Annotated[float, _threshold(percent=True), Field(ge=0, le=1)]
Count = Annotated[float, _threshold(percent=False), Field(ge=0)]


@dataclass(frozen=True, slots=True)
class Scope:
    """The triggers a rule watches (every declared one unless it lists some)."""

    trigger_ids: tuple[int, ...]
    trigger_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement: fire (``holds``), may resolve (``clears``), or neither; ``numbers`` go in the message."""

    holds: bool
    clears: bool
    summary: str
    """One line: the measured value against the threshold (``failure rate 31.0% >= 5% over 5m``)."""
    numbers: dict[str, Any] = field(default_factory=dict)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


class Condition(StrictModel):
    """Base of the conditions: ``key`` is the field that names it in ``when:``."""

    key: ClassVar[str]

    def measure(self, connection: Connection, scope: Scope, now: datetime) -> Reading:
        """Measure the condition for ``scope`` at ``now``."""
        raise NotImplementedError


class FailureRate(Condition):
    """Failed attempts over attempts that finished in the window, once there are at least ``min_attempts``."""

    key: ClassVar[str] = "failure_rate"
    failure_rate: Rate
    window: Duration = Field(300.0, gt=0, le=7 * 86400)
    min_attempts: int = Field(20, ge=1)
    resolve_below: Rate | None = None
    """Resolve when the rate falls below this (default: the firing threshold); no attempt at all also resolves."""

    def measure(self, connection: Connection, scope: Scope, now: datetime) -> Reading:
        """Count attempts and failed attempts of the scope's executions in the window (``ix_attempts_finished``)."""
        from redrive.observe.stats import FAILED_OUTCOMES

        since = now - timedelta(seconds=self.window)
        total, failed = connection.execute(
            select(func.count(), func.count().filter(attempts.c.outcome.in_(FAILED_OUTCOMES)))
            .select_from(attempts.join(executions, executions.c.id == attempts.c.execution_id))
            .where(attempts.c.finished_at >= since, executions.c.trigger_id.in_(scope.trigger_ids))
        ).one()
        rate = failed / total if total else 0.0
        resolve = self.failure_rate if self.resolve_below is None else self.resolve_below
        summary = (
            f"failure rate {_pct(rate)} ({failed} of {total} attempts) over {_span(self.window)}; "
            f"fires at >= {_pct(self.failure_rate)} with {self.min_attempts}+ attempts, resolves below {_pct(resolve)}"
        )
        numbers = {"rate": round(rate, 4), "failed": failed, "attempts": total, "window": _span(self.window)}
        holds = total >= self.min_attempts and rate >= self.failure_rate
        return Reading(holds, total == 0 or rate < resolve, summary, numbers)


class DeadLetters(Condition):
    """Dead letters now (``failed_retryable``) of the scope's triggers."""

    key: ClassVar[str] = "dlq_size"
    dlq_size: Count
    resolve_below: Count | None = None

    def measure(self, connection: Connection, scope: Scope, now: datetime) -> Reading:
        """``status_count_statement`` (DLQ_SIZE_MEANS) narrowed to the scope's triggers."""
        from redrive.observe.stats import status_count_statement

        statement = status_count_statement([ExecutionStatus.FAILED_RETRYABLE])
        size = int(connection.execute(statement.where(executions.c.trigger_id.in_(scope.trigger_ids))).scalar_one())
        resolve = self.dlq_size if self.resolve_below is None else self.resolve_below
        summary = f"{size} dead letters; fires at >= {self.dlq_size:g}, resolves below {resolve:g}"
        return Reading(size >= self.dlq_size, size < resolve, summary, {"dlq_size": size})


class DeadLetterGrowth(Condition):
    """Executions dead-lettered in the window (still dead letters now) of the scope's triggers."""

    key: ClassVar[str] = "dlq_growth"
    dlq_growth: Count
    window: Duration = Field(600.0, gt=0, le=7 * 86400)
    resolve_below: Count | None = None

    def measure(self, connection: Connection, scope: Scope, now: datetime) -> Reading:
        """``status_count_statement`` of dead letters, narrowed to the window's finish times."""
        from redrive.observe.stats import status_count_statement

        since = now - timedelta(seconds=self.window)
        statement = status_count_statement([ExecutionStatus.FAILED_RETRYABLE]).where(
            executions.c.finished_at >= since, executions.c.trigger_id.in_(scope.trigger_ids)
        )
        grown = int(connection.execute(statement).scalar_one())
        resolve = self.dlq_growth if self.resolve_below is None else self.resolve_below
        summary = f"{grown} new dead letters over {_span(self.window)}; fires at >= {self.dlq_growth:g}"
        return Reading(
            grown >= self.dlq_growth, grown < resolve, summary, {"dlq_growth": grown, "window": _span(self.window)}
        )


class OldestPending(Condition):
    """Age of the oldest execution that is due and not yet claimed (queue lag)."""

    key: ClassVar[str] = "oldest_pending"
    oldest_pending: Duration = Field(gt=0)
    resolve_below: Duration | None = None

    def measure(self, connection: Connection, scope: Scope, now: datetime) -> Reading:
        """The earliest ``run_at`` of due pending executions (``ix_executions_due``)."""
        oldest = connection.execute(
            select(func.min(executions.c.run_at)).where(
                executions.c.status == ExecutionStatus.PENDING,
                executions.c.run_at <= now,
                executions.c.trigger_id.in_(scope.trigger_ids),
            )
        ).scalar_one_or_none()
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        resolve = self.oldest_pending if self.resolve_below is None else self.resolve_below
        summary = f"oldest pending execution waited {age:.0f}s; fires at >= {_span(self.oldest_pending)}"
        return Reading(age >= self.oldest_pending, age < resolve, summary, {"oldest_pending_seconds": round(age, 1)})


class ErrorGroupSeen(Condition):
    """A new error group, or a resolved one that regressed, in the last ``quiet`` period; resolves after a quiet
    period with none."""

    key: ClassVar[str] = "error_group"
    error_group: Literal["new", "regressed", "new_or_regressed"]
    quiet: Duration = Field(600.0, gt=0, le=7 * 86400)

    def measure(self, connection: Connection, scope: Scope, now: datetime) -> Reading:
        """Groups of the scope first seen (new) or regressed since ``now - quiet``, newest first."""
        since = now - timedelta(seconds=self.quiet)
        wanted = []
        if self.error_group != "regressed":
            wanted.append(error_groups.c.first_seen >= since)
        if self.error_group != "new":
            wanted.append((error_groups.c.status == "regressed") & (error_groups.c.status_changed_at >= since))
        found = connection.execute(
            select(error_groups.c.fingerprint, error_groups.c.title, error_groups.c.status)
            .where(error_groups.c.trigger_id.in_(scope.trigger_ids), error_groups.c.status != "ignored")
            .where(wanted[0] if len(wanted) == 1 else wanted[0] | wanted[1])
            .order_by(error_groups.c.last_seen.desc())
            .limit(5)
        ).all()
        groups = [{"fingerprint": row.fingerprint, "title": row.title, "status": row.status} for row in found]
        if groups:
            summary = f"{len(groups)} {self.error_group.replace('_', ' ')} error group(s) in {_span(self.quiet)}: "
            summary += groups[0]["title"]
        else:
            summary = f"no {self.error_group.replace('_', ' ')} error group in {_span(self.quiet)}"
        numbers: dict[str, Any] = {"groups": groups, "fingerprint": groups[0]["fingerprint"] if groups else None}
        return Reading(bool(groups), not groups, summary, numbers)


class TriggerPaused(Condition):
    """A trigger redrive paused by itself (its target answered 410 Gone); an operator's pause does not count."""

    key: ClassVar[str] = "trigger_paused"
    trigger_paused: Literal[True]

    def measure(self, connection: Connection, scope: Scope, now: datetime) -> Reading:
        """The scope's paused triggers whose reason is not an operator's (``paused by NAME``)."""
        rows = connection.execute(
            select(triggers.c.name, triggers.c.paused_reason)
            .where(triggers.c.id.in_(scope.trigger_ids), triggers.c.paused)
            .order_by(triggers.c.name)
        ).all()
        auto = [{"trigger": r.name, "reason": r.paused_reason} for r in rows if not _by_operator(r.paused_reason)]
        summary = "; ".join(f"{a['trigger']} paused: {a['reason']}" for a in auto) or "no trigger auto-paused"
        return Reading(bool(auto), not auto, summary, {"paused": auto})


def _by_operator(reason: str | None) -> bool:
    return (reason or "").startswith("paused by ")  # what the pause route writes (redrive.api.triggers)


CONDITIONS: tuple[type[Condition], ...] = (
    FailureRate,
    DeadLetters,
    DeadLetterGrowth,
    OldestPending,
    ErrorGroupSeen,
    TriggerPaused,
)
"""Every condition a rule's ``when:`` may use, by its naming field. Add a condition here."""


def _which(value: Any) -> str | None:
    """The condition a ``when:`` mapping names (its first key that is a condition's name)."""
    if isinstance(value, Condition):
        return value.key
    if isinstance(value, dict):
        return next((c.key for c in CONDITIONS if c.key in value), None)
    return None


def when_type() -> Any:
    """The type of ``when:``: the conditions as a union told apart by the key each one has."""
    members = tuple(Annotated[c, Tag(c.key)] for c in CONDITIONS)
    names = ", ".join(c.key for c in CONDITIONS)
    return Annotated[
        Union[members],  # noqa: UP007 (a tuple of members is spelled this way)
        Discriminator(
            _which,
            custom_error_type="unknown_condition",
            custom_error_message=f"'when' must name one condition: {names}",
        ),
    ]
