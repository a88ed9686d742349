"""Alert conditions: what an alert rule's ``when:`` block can say, and how each one judges what was counted.

Each condition is one pydantic model whose first field names it (``failure_rate: ">= 5%"``, ``dlq_size: ">= 10"``)
and one pure ``judge`` method: given the counts its query found (``redrive.alerts.measures``, run by ``measure``), it
returns a :class:`Reading` saying whether the condition holds (fire), has cleared (may resolve) or neither (keep the
state: the band between the firing threshold and ``resolve_below`` is the hysteresis).

Adding a condition is one class here, one entry in :data:`CONDITIONS` and its count in ``measures.COUNTS`` under the
same key: the trigger-file model, ``config check`` and the engine pick it up from there (the breaker-open condition
plugs in the same way). This module stays free of SQLAlchemy: the trigger file's model imports it, and loading a
trigger file (``redrive config check``) should not pay for the database layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag

from redrive.triggers.fields import Duration, StrictModel

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

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

    def judge(self, counts: dict[str, Any]) -> Reading:
        """What ``counts`` (this condition's query result) mean against its thresholds."""
        raise NotImplementedError

    def measure(self, connection: Connection, scope: Scope, now: datetime) -> Reading:
        """Count (``measures.COUNTS[key]``) for ``scope`` at ``now``, then judge."""
        from redrive.alerts.measures import COUNTS

        return self.judge(COUNTS[self.key](self, connection, scope, now))


class FailureRate(Condition):
    """Failed attempts over attempts that finished in the window, once there are at least ``min_attempts``."""

    key: ClassVar[str] = "failure_rate"
    failure_rate: Rate
    window: Duration = Field(300.0, gt=0, le=7 * 86400)
    min_attempts: int = Field(20, ge=1)
    resolve_below: Rate | None = None
    """Resolve when the rate falls below this (default: the firing threshold); no attempt at all also resolves."""

    def judge(self, counts: dict[str, Any]) -> Reading:
        """``attempts`` and ``failed`` in the window."""
        total, failed = counts["attempts"], counts["failed"]
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

    def judge(self, counts: dict[str, Any]) -> Reading:
        """``dlq_size``: dead letters now."""
        size = counts["dlq_size"]
        resolve = self.dlq_size if self.resolve_below is None else self.resolve_below
        summary = f"{size} dead letters; fires at >= {self.dlq_size:g}, resolves below {resolve:g}"
        return Reading(size >= self.dlq_size, size < resolve, summary, {"dlq_size": size})


class DeadLetterGrowth(Condition):
    """Executions dead-lettered in the window (still dead letters now) of the scope's triggers."""

    key: ClassVar[str] = "dlq_growth"
    dlq_growth: Count
    window: Duration = Field(600.0, gt=0, le=7 * 86400)
    resolve_below: Count | None = None

    def judge(self, counts: dict[str, Any]) -> Reading:
        """``dlq_growth``: dead letters that finished in the window."""
        grown = counts["dlq_growth"]
        resolve = self.dlq_growth if self.resolve_below is None else self.resolve_below
        summary = f"{grown} new dead letters over {_span(self.window)}; fires at >= {self.dlq_growth:g}"
        numbers = {"dlq_growth": grown, "window": _span(self.window)}
        return Reading(grown >= self.dlq_growth, grown < resolve, summary, numbers)


class OldestPending(Condition):
    """Age of the oldest execution that is due and not yet claimed (queue lag)."""

    key: ClassVar[str] = "oldest_pending"
    oldest_pending: Duration = Field(gt=0)
    resolve_below: Duration | None = None

    def judge(self, counts: dict[str, Any]) -> Reading:
        """``oldest_pending_seconds``: how long the oldest due execution has waited (0 when none waits)."""
        age = counts["oldest_pending_seconds"]
        resolve = self.oldest_pending if self.resolve_below is None else self.resolve_below
        summary = f"oldest pending execution waited {age:.0f}s; fires at >= {_span(self.oldest_pending)}"
        return Reading(age >= self.oldest_pending, age < resolve, summary, {"oldest_pending_seconds": round(age, 1)})


class ErrorGroupSeen(Condition):
    """A new error group, or a resolved one that regressed, in the last ``quiet`` period; resolves after a quiet
    period with none."""

    key: ClassVar[str] = "error_group"
    error_group: Literal["new", "regressed", "new_or_regressed"]
    quiet: Duration = Field(600.0, gt=0, le=7 * 86400)

    def judge(self, counts: dict[str, Any]) -> Reading:
        """``groups``: the matching groups, newest first (fingerprint, title, status)."""
        groups = counts["groups"]
        what = self.error_group.replace("_", " ")
        if groups:
            summary = f"{len(groups)} {what} error group(s) in {_span(self.quiet)}: {groups[0]['title']}"
        else:
            summary = f"no {what} error group in {_span(self.quiet)}"
        numbers: dict[str, Any] = {"groups": groups, "fingerprint": groups[0]["fingerprint"] if groups else None}
        return Reading(bool(groups), not groups, summary, numbers)


class TriggerPaused(Condition):
    """A trigger redrive paused by itself (its target answered 410 Gone); an operator's pause does not count."""

    key: ClassVar[str] = "trigger_paused"
    trigger_paused: Literal[True]

    def judge(self, counts: dict[str, Any]) -> Reading:
        """``paused``: the scope's paused triggers with their reasons."""
        auto = [p for p in counts["paused"] if not (p["reason"] or "").startswith(OPERATOR_PAUSE)]
        summary = "; ".join(f"{a['trigger']} paused: {a['reason']}" for a in auto) or "no trigger auto-paused"
        return Reading(bool(auto), not auto, summary, {"paused": auto})


class BreakerOpen(Condition):
    """A destination whose breaker has held its work for at least ``breaker_open`` (open or probing since it last
    left closed); a breaker an operator forced open (maintenance) does not count. Resolves once none is held that
    long. Destinations are shared by triggers, so this watches every destination unless it lists some."""

    key: ClassVar[str] = "breaker_open"
    breaker_open: Duration = Field(gt=0)
    destinations: list[str] | None = None

    def judge(self, counts: dict[str, Any]) -> Reading:
        """``held``: the destinations held now, each with ``seconds`` since its breaker left closed."""
        long = [h for h in counts["held"] if h["seconds"] >= self.breaker_open]
        if long:
            listed = ", ".join(f"{h['destination']} ({h['state']} for {h['seconds']:.0f}s)" for h in long)
            summary = f"breaker open: {listed}; fires after {_span(self.breaker_open)}"
        else:
            summary = f"no breaker held open for {_span(self.breaker_open)}"
        return Reading(bool(long), not long, summary, {"held": long})


OPERATOR_PAUSE = "paused by "
"""How the pause route words an operator's pause (``redrive.api.triggers``): not what this condition watches."""


CONDITIONS: tuple[type[Condition], ...] = (
    FailureRate,
    DeadLetters,
    DeadLetterGrowth,
    OldestPending,
    ErrorGroupSeen,
    TriggerPaused,
    BreakerOpen,
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
