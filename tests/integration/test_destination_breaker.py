"""The breaker end to end, on both databases, with the injected clock: an outage held without a dead letter, the
drain after it ramped, a Retry-After pacing the whole destination.

The target fails for 30 s of the clock; 500 events arrive during the outage. With the breaker, the attempts charged
during the outage are at most the threshold plus the probes (the issue's bound): what was already in flight when it
opened fails too, but is held, not charged (``redrive.destinations.holding``); the requests the target saw are at
most that plus the worker's concurrency less one (in-flight requests cannot be recalled). Nothing is dead-lettered
and everything is delivered once the target is back. Without it, the same script dead-letters every one of them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from destination_support import START, Harness, at, running
from sqlalchemy import select

from redrive.db.schema import attempts, executions
from redrive.failures.classify import Failure

EVENTS = 500
CONSECUTIVE = 10
CONCURRENCY = 4
DRAIN_RATE = 5.0


def orders(breaker: bool) -> str:
    return f"""
triggers:
  - name: orders
    action: {{kind: target}}
    destination: "https://orders.example:443"
    retry: {{max_attempts: 3, base: 2s, factor: 2, jitter: none}}
    breaker: {{enabled: {str(breaker).lower()}, consecutive: {CONSECUTIVE}, cooldown: 5s, max_cooldown: 20s,
               probes: 1, drain_rate: {DRAIN_RATE:g}/s, drain_step: 5s}}
"""


def _outage_attempts(h: Harness, *where: Any) -> int:
    return h.attempt_count(attempts.c.started_at < at(30), attempts.c.execution_id.in_(_order_ids(h)), *where)


def _order_ids(h: Harness) -> list[int]:
    query = select(executions.c.id).where(executions.c.trigger_id == h.ids["orders"])
    return list(h.db.read_sync(lambda connection: list(connection.execute(query).scalars())))


@pytest.mark.parametrize("breaker", [True, False], ids=["breaker", "no-breaker"])
def test_an_outage_is_held_without_dead_letters_and_drained_ramped(db_url: str, breaker: bool) -> None:
    async def scenario() -> None:
        async with running(db_url, orders(breaker), worker_concurrency=CONCURRENCY) as h:
            h.target.down_until = at(30)
            for n in range(EVENTS):
                await h.ingest("orders", {"n": n})
            await h.advance_to(30, step=1.0)
            dead = h.count(executions.c.trigger_id == h.ids["orders"], executions.c.status == "failed_retryable")
            if not breaker:  # the same script without the breaker: every event spent its attempts and is dead
                assert dead == EVENTS
                return
            assert dead == 0
            half_opens = [t for t in h.transitions() if t.to_state == "half_open" and t.at < at(30)]
            charged = _outage_attempts(h, attempts.c.charged.is_(True))
            requests = len([when for trigger, when in h.target.arrivals if trigger == "orders" and when < at(30)])
            assert charged <= CONSECUTIVE + len(half_opens), (charged, requests, half_opens)
            assert requests <= CONSECUTIVE + len(half_opens) + (CONCURRENCY - 1), (charged, requests, half_opens)
            assert _outage_attempts(h) == requests  # every request is an attempt row, held ones too
            assert h.count(executions.c.trigger_id == h.ids["orders"], executions.c.status == "pending") == EVENTS

            await h.advance_to(36, step=1.0)  # the cool-down (5, 10, 20 s) ends at 35: a probe succeeds, it closes
            closed = [t for t in h.transitions() if t.to_state == "closed"]
            assert len(closed) == 1, h.transitions()
            close_at = closed[0].at
            closed_s = (close_at - START).total_seconds()
            await h.advance_to(closed_s + 16, step=0.1)  # a tenth of a second: the token bucket holds 0.1 s of rate
            await h.advance_to(closed_s + 40, step=1.0)
            await h.until(
                lambda: (
                    h.count(executions.c.trigger_id == h.ids["orders"], executions.c.status == "succeeded") == EVENTS
                ),
                "every order delivered",
            )
            assert h.count(executions.c.status == "failed_retryable") == 0
            delivered = sorted(when for trigger, when in h.target.arrivals if trigger == "orders" and when >= close_at)
            first_second = [when for when in delivered if when < close_at + timedelta(seconds=1)]
            later_second = [
                when
                for when in delivered
                if close_at + timedelta(seconds=15) <= when < close_at + timedelta(seconds=16)
            ]
            assert 0 < len(first_second) <= DRAIN_RATE * 1.5, len(first_second)  # the ramp's start, not a herd
            assert len(later_second) > DRAIN_RATE * 2, len(later_second)  # and it ramps up (doubling every 5 s)

    asyncio.run(scenario())


def test_a_retry_after_paces_every_execution_of_the_destination(db_url: str) -> None:
    config = """
triggers:
  - name: orders
    action: {kind: target}
    destination: "https://orders.example:443"
    retry: {max_attempts: 5, base: 1s, jitter: none}
"""

    async def scenario() -> None:
        async with running(db_url, config, worker_concurrency=1) as h:
            h.target.answers["orders"] = [Failure("transient", "http_429", "slow down", retry_after=3.0)]
            first = await h.ingest("orders")
            await h.until(lambda: h.attempt_count(attempts.c.execution_id == first) == 1, "the 429")
            others = [await h.ingest("orders", {"n": n}) for n in range(3)]
            h.clock.advance(2.9)  # before the stated time: none of the destination's executions goes
            await h.claimed_after_now()
            assert h.attempt_count(attempts.c.execution_id.in_(others)) == 0
            h.clock.advance(0.1)
            await h.advance_to(3.2, step=0.1)
            await h.until(
                lambda: h.count(executions.c.id.in_([first, *others]), executions.c.status == "succeeded") == 4,
                "all four delivered after the wait",
            )
            arrivals = [when for trigger, when in h.target.arrivals if trigger == "orders"]
            assert min(arrivals[1:]) >= at(3.0)

    asyncio.run(scenario())
