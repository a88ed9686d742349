"""The alert state machine, as a pure function: a rule's stored state and a fresh reading in, the next state and
the transition to record (if any) out.

- ``ok`` → ``firing`` when the condition holds.
- ``firing`` → ``ok`` (resolved) only when the condition has cleared (below ``resolve_below``, or no longer seen)
  and stayed cleared for the rule's ``quiet`` period; a reading in between the two thresholds neither fires nor
  resolves, and restarts the quiet period. This is the hysteresis: a rate hovering at the threshold does not flap.
- While firing, a ``repeat`` transition is due every ``repeat`` seconds after the last notification.

Every transition bumps ``seq``; the store updates the row only where ``seq`` is still what was read, so two leaders
overlapping during a hand-over record a transition once, and its key (``rule:seq:kind``) is the same on both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from redrive.alerts.conditions import Reading

TransitionKind = Literal["firing", "resolved", "repeat"]


@dataclass(frozen=True, slots=True)
class AlertState:
    """A rule's state as stored."""

    rule: str
    state: Literal["ok", "firing"]
    since: datetime
    seq: int = 0
    clearing_since: datetime | None = None
    notified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """What one evaluation decided: the state to store and the transition to record (None: nothing to tell)."""

    state: AlertState
    transition: TransitionKind | None = None

    @property
    def key(self) -> str:
        """The transition's idempotency key: the same on every node that decides it from the same stored state."""
        return f"{self.state.rule}:{self.state.seq}:{self.transition}"


def decide(
    current: AlertState, reading: Reading, now: datetime, *, quiet: float = 0.0, repeat: float | None = None
) -> Step:
    """The next state of a rule given ``reading`` at ``now`` (see the module docstring)."""
    if current.state == "ok":
        if not reading.holds:
            return Step(current)
        return Step(AlertState(current.rule, "firing", now, current.seq + 1, None, now), "firing")
    if reading.holds:
        calm = replace(current, clearing_since=None)
        if repeat is not None and current.notified_at is not None and now - current.notified_at >= _s(repeat):
            return Step(replace(calm, seq=current.seq + 1, notified_at=now), "repeat")
        return Step(calm)
    if not reading.clears:
        return Step(replace(current, clearing_since=None))
    clearing_since = current.clearing_since or now
    if now - clearing_since >= _s(quiet):
        return Step(AlertState(current.rule, "ok", now, current.seq + 1), "resolved")
    return Step(replace(current, clearing_since=clearing_since))


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)
