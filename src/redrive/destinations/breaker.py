"""The breaker and the limits of one destination, decided in pure functions: a state and facts in, a state out.

States: ``closed`` (everything flows) → ``open`` (nothing goes: due executions are held, spending no attempt) →
``half_open`` (``probes`` executions at a time go through) → ``closed`` on a probe's success, ``open`` again on its
transient failure, with the cool-down doubled up to ``max_cooldown``.

A closed breaker opens on ``consecutive`` transient failures in a row, or when, over a sliding window of
``window`` seconds holding at least ``min_volume`` attempts, the transient share reaches ``failure_ratio``. The
window is two fixed windows, the previous one weighted by how much of it still overlaps (the usual sliding-window
counter): two numbers per window instead of one row per attempt. Permanent failures (4xx, template errors) count
as volume, never as failures: the destination answered. A failure that names its own wait (429/503 with
``Retry-After``) paces the destination instead (``paced_until``): nothing goes there before that time, for every
execution, and it does not count towards opening.

After a close the destination drains ramped: its rate starts at ``drain_rate`` per second and doubles every
``drain_step`` seconds until it reaches the destination's rate limit (or ``drain_max``).

Limits: ``concurrency`` caps running executions (counted in the database); ``rate`` is a token bucket holding at
most a tenth of a second's tokens (at least one), so bursts stay small and a claim batch cannot overshoot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from redrive.triggers.config import BreakerConfig

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_DEFAULT_WINDOW = BreakerConfig().window
BURST_SECONDS = 0.1
"""The token bucket holds this many seconds of the rate (at least one token)."""
AttemptOutcome = Literal["succeeded", "transient", "permanent"]


@dataclass(frozen=True, slots=True)
class Policy:
    """What applies to one destination: its breaker (None: off) and limits."""

    breaker: BreakerConfig | None
    rate: float | None = None
    concurrency: int | None = None

    @property
    def limited(self) -> bool:
        """Whether a rate or concurrency limit applies (its destination's row is then restricted)."""
        return self.rate is not None or self.concurrency is not None

    @property
    def window(self) -> float:
        """The seconds over which outcomes are counted: the breaker's window (with the breaker off, the default's,
        for the failure rate shown)."""
        return self.breaker.window if self.breaker is not None else _DEFAULT_WINDOW

    @property
    def tracked(self) -> bool:
        """Whether outcomes under this policy are recorded (a breaker or a limit applies)."""
        return self.breaker is not None or self.limited


@dataclass(frozen=True, slots=True)
class Observed:
    """One attempt's outcome at a destination, as the breaker sees it."""

    outcome: AttemptOutcome
    seconds: float
    retry_after: float | None = None  # the destination named its own wait (429/503 Retry-After)


@dataclass(frozen=True, slots=True)
class Change:
    """A transition of the breaker."""

    from_state: str
    to_state: str
    reason: str


@dataclass(frozen=True, slots=True)
class Destination:
    """The persisted state of one destination (a ``destinations`` row)."""

    name: str
    state: str
    forced: str | None
    changed_at: datetime
    reopen_at: datetime | None
    cooldown: float
    consecutive_failures: int
    window_start: datetime
    window_total: int
    window_failed: int
    previous_total: int
    previous_failed: int
    latency_ms: float | None
    concurrency: int | None
    rate: float | None
    tokens: float
    tokens_at: datetime | None
    ramp_start: datetime | None
    paced_until: datetime | None
    trigger: str | None = None  # a templated destination: the trigger whose policy its claims apply
    laned_to: datetime | None = None  # its due rows up to this run_at are laned (``redrive.destinations.store``)

    @classmethod
    def new(cls, name: str, now: datetime) -> Destination:
        """A destination never seen before: closed, nothing counted."""
        return cls(name, CLOSED, None, now, None, 0.0, 0, now, 0, 0, 0, 0, None, None, None, 0.0, None, None, None)

    def restricted(self, now: datetime) -> bool:
        """Whether claims must plan for it (held, probing, limited, ramping or paced) rather than take it freely."""
        paced = self.paced_until is not None and self.paced_until > now
        limited = self.concurrency is not None or self.rate is not None
        return self.state != CLOSED or self.forced is not None or limited or self.ramp_start is not None or paced

    def failure_rate(self, now: datetime, window: float) -> tuple[float, float]:
        """(attempts, transient failures) over the sliding window ending ``now``."""
        elapsed = (now - self.window_start).total_seconds()
        if elapsed >= 2 * window:
            return 0.0, 0.0
        if elapsed >= window:  # the current window is now the previous one
            weight = 1 - (elapsed - window) / window
            return self.window_total * weight, self.window_failed * weight
        weight = 1 - elapsed / window
        return self.window_total + self.previous_total * weight, self.window_failed + self.previous_failed * weight


def _roll(d: Destination, now: datetime, window: float) -> Destination:
    elapsed = (now - d.window_start).total_seconds()
    if elapsed < window:
        return d
    previous = (d.window_total, d.window_failed) if elapsed < 2 * window else (0, 0)
    start = d.window_start + timedelta(seconds=window * math.floor(elapsed / window))
    return replace(
        d, window_start=start, previous_total=previous[0], previous_failed=previous[1], window_total=0, window_failed=0
    )


def _opens(d: Destination, policy: BreakerConfig, now: datetime) -> str | None:
    """Why a closed breaker opens now, or None."""
    if d.consecutive_failures >= policy.consecutive:
        return f"{d.consecutive_failures} transient failures in a row"
    total, failed = d.failure_rate(now, policy.window)
    if total >= policy.min_volume and failed / total >= policy.failure_ratio:
        return f"{failed / total:.0%} of {total:.0f} attempts in {policy.window:g}s failed transiently"
    return None


def _open(d: Destination, now: datetime, cooldown: float) -> Destination:
    return replace(d, state=OPEN, changed_at=now, cooldown=cooldown, reopen_at=now + timedelta(seconds=cooldown))


def close(d: Destination, now: datetime, *, ramp: bool) -> Destination:
    """The destination closed: counters cleared, and (unless ``ramp`` is off) its drain starts ramped."""
    return replace(
        d,
        state=CLOSED,
        changed_at=now,
        reopen_at=None,
        cooldown=0.0,
        consecutive_failures=0,
        window_start=now,
        window_total=0,
        window_failed=0,
        previous_total=0,
        previous_failed=0,
        ramp_start=now if ramp else None,
        tokens=1.0,
        tokens_at=now,
    )


_KEEP, _TAKE = 0.8, 0.2  # the latency's moving average: what it keeps of itself, what it takes of each attempt


def quiet(seen: Sequence[Observed]) -> bool:
    """Whether counting ``seen`` at a closed, unforced breaker decides nothing and changes only its counters: no
    transient failure (the only outcome that can open it) and no stated wait (``Retry-After`` paces it)."""
    return all(one.outcome != "transient" and one.retry_after is None for one in seen)


def latency_fold(seen: Sequence[Observed]) -> tuple[float, float, float]:
    """``observe``'s moving average of the latencies of ``seen`` (one at least), as a function of the row's:
    ``(fresh, keep, add)``, where the average is ``fresh`` if the row had none, else ``keep * latency_ms + add``."""
    first, *rest = (one.seconds * 1000 for one in seen)
    fresh, keep, add = first, _KEEP, _TAKE * first
    for latency in rest:
        fresh, keep, add = _KEEP * fresh + _TAKE * latency, _KEEP * keep, _KEEP * add + _TAKE * latency
    return fresh, keep, add


def observe(d: Destination, seen: list[Observed], policy: Policy, now: datetime) -> tuple[Destination, list[Change]]:
    """Count ``seen`` (in completion order) and take the breaker's decisions; returns the state and its changes.

    The counters run in locals and the row is rebuilt only where a decision may be due (a failure while closed,
    any outcome while half-open) and once at the end: a batch of successes at a closed breaker, the usual case,
    costs one copy of the row rather than one per attempt."""
    breaker = policy.breaker
    changes: list[Change] = []
    window = policy.window
    d = _roll(d, now, window)
    latency_ms, paced_until = d.latency_ms, d.paced_until
    total, failures, consecutive = d.window_total, d.window_failed, d.consecutive_failures

    def counted(d: Destination) -> Destination:  # the row with the counters run so far
        return replace(
            d,
            latency_ms=latency_ms,
            paced_until=paced_until,
            window_total=total,
            window_failed=failures,
            consecutive_failures=consecutive,
        )

    for one in seen:
        latency = one.seconds * 1000
        latency_ms = latency if latency_ms is None else _KEEP * latency_ms + _TAKE * latency  # a moving average
        if one.retry_after is not None:
            until = now + timedelta(seconds=one.retry_after)
            paced_until = until if paced_until is None else max(until, paced_until)
            continue
        failed = one.outcome == "transient"
        total, failures, consecutive = total + 1, failures + failed, consecutive + 1 if failed else 0
        if breaker is None or d.forced is not None or d.state == OPEN or (d.state == CLOSED and not failed):
            continue  # nothing to decide
        d = counted(d)
        before = d.state
        if d.state == CLOSED and (why := _opens(d, breaker, now)) is not None:
            d = _open(d, now, breaker.cooldown)
            changes.append(Change(before, OPEN, why))
        elif d.state == HALF_OPEN and failed:
            d = _open(d, now, min(d.cooldown * 2, breaker.max_cooldown))
            changes.append(Change(before, OPEN, f"a probe failed; cool-down now {d.cooldown:g}s"))
        elif d.state == HALF_OPEN:
            d = close(d, now, ramp=True)
            changes.append(Change(before, CLOSED, "a probe succeeded"))
        total, failures, consecutive = d.window_total, d.window_failed, d.consecutive_failures
    return counted(d), changes


@dataclass(frozen=True, slots=True)
class Allowance:
    """What a claim may take for one destination now: ``count`` executions (None: no limit applies), and when more
    may be taken when it is zero (None: when something else changes, such as a running execution ending)."""

    count: int | None
    next_at: datetime | None


def _ramp_rate(d: Destination, breaker: BreakerConfig, ceiling: float, now: datetime) -> float | None:
    if d.ramp_start is None:
        return None
    steps = (now - d.ramp_start).total_seconds() // breaker.drain_step
    rate = breaker.drain_rate * 2 ** min(steps, 60)
    return None if rate >= ceiling else rate


def plan(d: Destination, policy: Policy, running: int, now: datetime) -> tuple[Destination, Allowance, list[Change]]:
    """What a claim may take for ``d`` with ``running`` executions in flight; moves open to half-open when due."""
    changes: list[Change] = []
    breaker = policy.breaker or BreakerConfig()
    if policy.breaker is None and d.forced is None and d.state != CLOSED:  # turned off since it opened
        changes.append(Change(d.state, CLOSED, "its breaker is off"))
        d = close(d, now, ramp=False)
    if d.state == OPEN and d.forced != OPEN and d.reopen_at is not None and now >= d.reopen_at:
        d = replace(d, state=HALF_OPEN, changed_at=now)
        changes.append(Change(OPEN, HALF_OPEN, f"cool-down of {d.cooldown:g}s over"))
    # The row is copied once, at the end: a claim plans every restricted destination, and a copy of the row is
    # most of what planning a closed one costs.
    limits: dict[str, object] = {"concurrency": policy.concurrency, "rate": policy.rate}
    if d.forced == OPEN or (d.state == OPEN and d.forced != CLOSED):
        return _changed(d, limits), Allowance(0, None if d.forced == OPEN else d.reopen_at), changes
    if d.paced_until is not None and d.paced_until > now:
        return _changed(d, limits), Allowance(0, d.paced_until), changes
    count: int | None = None
    if d.state == HALF_OPEN and d.forced != CLOSED:
        count = max(0, breaker.probes - running)
    if policy.concurrency is not None:
        count = max(0, min(count if count is not None else policy.concurrency, policy.concurrency - running))
    ramp = _ramp_rate(d, breaker, policy.rate or breaker.drain_max, now)
    if ramp is None:
        limits["ramp_start"] = None
    rates = [r for r in (policy.rate, ramp) if r is not None]
    if not rates:
        return _changed(d, {**limits, "paced_until": None}), Allowance(count, None), changes
    rate = min(rates)
    capacity = max(1.0, rate * BURST_SECONDS)
    # A claim's ``now`` is read before it waits for the row lock, so it may be older than the last refill: the
    # bucket's clock never goes back, or the next claim would refill the same interval twice.
    refilled = now if d.tokens_at is None else max(now, d.tokens_at)
    elapsed = (refilled - d.tokens_at).total_seconds() if d.tokens_at is not None else math.inf
    tokens = min(capacity, d.tokens + rate * elapsed)
    d = _changed(d, {**limits, "tokens": tokens, "tokens_at": refilled})
    whole = math.floor(tokens)
    count = whole if count is None else min(count, whole)
    next_at = refilled + timedelta(seconds=(1 - tokens) / rate) if whole == 0 else None
    return d, Allowance(count, next_at), changes


def _changed(d: Destination, values: dict[str, object]) -> Destination:
    """``d`` with ``values``; ``d`` itself when it has them all already (no copy)."""
    if all(getattr(d, name) == value for name, value in values.items()):
        return d
    return replace(d, **values)  # type: ignore[arg-type]  # the names are Destination's fields


def take(d: Destination, count: int) -> Destination:
    """``count`` executions were claimed for ``d``: spend their tokens (when a rate is in force)."""
    return replace(d, tokens=max(0.0, d.tokens - count)) if count else d


def force(d: Destination, action: Literal["open", "close", "reset"], now: datetime) -> tuple[Destination, Change]:
    """An operator's action: ``open`` holds everything until reset; ``close`` lets everything through (the
    breaker stops deciding) until reset; ``reset`` clears the override and the counters and closes it, ramped."""
    before = d.state
    if action == "open":
        d = replace(_open(d, now, d.cooldown), forced=OPEN, reopen_at=None)
    elif action == "close":
        d = replace(close(d, now, ramp=before != CLOSED), forced=CLOSED)
    else:
        d = replace(close(d, now, ramp=before != CLOSED), forced=None, paced_until=None)
    return d, Change(before, d.state, f"forced {action}" if action != "reset" else "reset")
