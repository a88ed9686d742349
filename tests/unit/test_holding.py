"""Which outcomes complete into an open breaker (``destinations.holding.into_open``), pure: the tripping failure and
everything before it are charged, transient failures after it are candidates for holding, successes never are."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from redrive.destinations.breaker import CLOSED, OPEN, Destination, Observed, Policy
from redrive.destinations.holding import holds_claims, into_open
from redrive.triggers.config import BreakerConfig

T0 = datetime(2031, 1, 1, tzinfo=UTC)
POLICY = Policy(BreakerConfig(consecutive=3))


def seen(*outcomes: str) -> list[Observed]:
    return [Observed(o, 0.01) for o in outcomes]  # type: ignore[arg-type]


def test_the_failure_that_trips_it_is_charged_and_later_ones_are_candidates() -> None:
    d = Destination.new("d", T0)
    outcomes = seen("transient", "transient", "transient", "transient", "succeeded", "permanent", "transient")
    assert into_open(d, outcomes, POLICY, T0) == [False, False, False, True, False, False, True]


def test_an_open_breaker_holds_and_a_forced_one_decides() -> None:
    d = replace(Destination.new("d", T0), state=OPEN)
    assert into_open(d, seen("transient", "succeeded"), POLICY, T0) == [True, False]
    forced_closed = replace(d, forced=CLOSED)
    assert not holds_claims(forced_closed)
    assert into_open(forced_closed, seen("transient"), POLICY, T0) == [False]
    assert into_open(replace(Destination.new("d", T0), forced=OPEN), seen("transient"), POLICY, T0) == [True]
    assert into_open(Destination.new("d", T0), seen("succeeded", "permanent"), POLICY, T0) == [False, False]
