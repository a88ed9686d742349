"""Which breaker settings and limits apply to a destination, resolved once from the trigger file.

A trigger's ``breaker:`` and ``limits: {rate, concurrency}`` apply to the destination its executions go to; an
entry in the top-level ``destinations:`` section wins over them (its ``breaker`` replaces the trigger's, each limit
it sets replaces the trigger's). When several triggers share a destination, the first declared trigger's breaker
applies and the strictest of their limits. The breaker is on by default for ``http`` and off for the other kinds
(their destination is usually the trigger itself, whose failures are its own, not an outage to wait out).
A destination nobody declared (a templated one) gets the policy of the trigger whose execution it is. A claim
knows only the destination's row: a templated destination whose trigger declares limits or its own breaker has its
row made with its first execution (or a replay's), naming that trigger (``Seed``;
``redrive.destinations.store.seed_rows``), so its limits and breaker hold from the first claim. A row made before,
naming no trigger (an operator's force before the first event, outcomes counted while the trigger declared
nothing, a row older than migration 0013), is adopted then, and at the worker's start for executions already
queued (``store.adopt_queued``). Any other gets the default breaker and no limits there, which is what its trigger
says of it (or, for a breaker that is off, nothing a claim acts on: such a row never opens).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from redrive.destinations.breaker import Policy
from redrive.triggers.config import BreakerConfig, DestinationConfig, TriggerConfig

DEFAULT = Policy(BreakerConfig())


def _stricter(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def trigger_policy(trigger: TriggerConfig) -> Policy:
    """What a trigger's own ``breaker:`` and ``limits:`` say."""
    breaker = trigger.breaker
    enabled = breaker.enabled if breaker.enabled is not None else trigger.action.kind == "http"
    return Policy(breaker if enabled else None, trigger.limits.rate, trigger.limits.concurrency)


@dataclass(frozen=True, slots=True)
class Seed:
    """What a templated destination's row is made with, with its first execution: the trigger whose policy its
    claims apply, and that policy (its limits make the row restricted at once)."""

    trigger: str
    policy: Policy


def seed_of(trigger: TriggerConfig) -> Seed | None:
    """The ``Seed`` of ``trigger``'s templated destinations; None when a claim's default for an unknown destination
    (the default breaker, no limits) already is its policy, so ingest makes no row for it."""
    policy = trigger_policy(trigger)
    if not policy.limited and (policy.breaker is None or policy.breaker == DEFAULT.breaker):
        return None
    return Seed(trigger.name, policy)


def _declared(entry: DestinationConfig, base: Policy) -> Policy:
    breaker = base.breaker
    if entry.breaker is not None:
        breaker = entry.breaker if entry.breaker.enabled is not False else None
    rate = entry.limits.rate if entry.limits.rate is not None else base.rate
    concurrency = entry.limits.concurrency if entry.limits.concurrency is not None else base.concurrency
    return Policy(breaker, rate, concurrency)


class Policies:
    """Policies by destination name (fixed destinations and the ``destinations:`` section) and by trigger."""

    def __init__(self, triggers: Iterable[tuple[TriggerConfig, str | None]], declared: dict[str, DestinationConfig]):
        """``triggers``: each trigger with its fixed destination (None when it depends on the event)."""
        self._by_trigger: dict[str, Policy] = {}
        by_name: dict[str, Policy] = {}
        for trigger, fixed in triggers:
            own = trigger_policy(trigger)
            self._by_trigger[trigger.name] = own
            if fixed is None:
                continue
            known = by_name.get(fixed)
            if known is None:
                by_name[fixed] = own
            else:
                rate = _stricter(known.rate, own.rate)
                concurrency = _stricter(known.concurrency, own.concurrency)
                by_name[fixed] = replace(
                    known, rate=rate, concurrency=None if concurrency is None else int(concurrency)
                )
        for name, entry in declared.items():
            by_name[name] = _declared(entry, by_name.get(name, DEFAULT))
        self._declared = declared
        self._by_name = by_name

    def of(self, destination: str, trigger: str | None = None) -> Policy:
        """The policy of ``destination``, reached by an execution of ``trigger`` when known."""
        known = self._by_name.get(destination)
        if known is not None:
            return known
        own = self._by_trigger.get(trigger) if trigger is not None else None
        return own if own is not None else DEFAULT

    @property
    def names(self) -> list[str]:
        """Destinations known up front: the fixed ones of the triggers and those of the ``destinations:`` section."""
        return sorted(self._by_name)

    def limited(self) -> dict[str, Policy]:
        """Destinations known up front that carry a limit: their rows must exist before the first claim."""
        return {name: p for name, p in self._by_name.items() if p.limited}

    def tracked(self, destination: str, trigger: str | None) -> bool:
        """Whether outcomes at ``destination`` are recorded (a breaker or a limit applies)."""
        return self.of(destination, trigger).tracked
