"""The breaker's and the limits' decisions, pure: outcomes and times in, state and allowances out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from redrive.destinations.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Destination,
    Observed,
    Policy,
    force,
    observe,
    plan,
    take,
)
from redrive.destinations.keys import DestinationKey, destination_key, origin, url_destination
from redrive.triggers.config import BreakerConfig
from redrive.triggers.templating import compile_template

T0 = datetime(2031, 1, 1, tzinfo=UTC)
BREAKER = BreakerConfig(consecutive=5, min_volume=20, failure_ratio=0.5, window=60, cooldown=5, max_cooldown=20)
POLICY = Policy(BREAKER)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def seen(*outcomes: str) -> list[Observed]:
    return [Observed(o, 0.01) for o in outcomes]  # type: ignore[arg-type]


def test_consecutive_transient_failures_open_it_and_a_success_resets_the_run() -> None:
    d = Destination.new("d", T0)
    d, changes = observe(d, seen("transient", "transient", "transient", "transient", "succeeded"), POLICY, at(1))
    assert (d.state, changes) == (CLOSED, [])
    d, changes = observe(d, seen(*["transient"] * 5), POLICY, at(2))
    assert d.state == OPEN
    assert [(c.from_state, c.to_state) for c in changes] == [(CLOSED, OPEN)]
    assert "5 transient failures in a row" in changes[0].reason
    assert d.reopen_at == at(2 + 5)


@pytest.mark.parametrize(
    ("state", "outcomes", "expected"),
    [
        # a probe closes it, clearing the counters: only what follows the close counts (1 attempt, 1 failure)
        (HALF_OPEN, ["succeeded", "transient"], (CLOSED, 1, 1, 1, [(HALF_OPEN, CLOSED)])),
        # a probe closes it, the next failures (5 in a row) open it again, in the same batch
        (HALF_OPEN, ["succeeded", *["transient"] * 5], (OPEN, 5, 5, 5, [(HALF_OPEN, CLOSED), (CLOSED, OPEN)])),
        # the third failure in a row opens it; what follows is counted, not decided
        (CLOSED, ["transient"] * 3 + ["succeeded", "permanent"], (OPEN, 8, 4, 0, [(CLOSED, OPEN)])),
        # a failed probe reopens it; a Retry-After paces, uncounted
        (HALF_OPEN, ["retry", "transient", "succeeded"], (OPEN, 5, 2, 0, [(HALF_OPEN, OPEN)])),
    ],
)
def test_a_batch_counts_and_decides_in_completion_order(
    state: str, outcomes: list[str], expected: tuple[str, int, int, int, list[tuple[str, str]]]
) -> None:
    # observe keeps its counters in locals and copies the row only where a decision may fall; a decision that
    # clears them (a probe's close) must clear them for the rest of the batch too.
    start = replace(
        Destination.new("d", T0), state=state, cooldown=5.0, window_total=3, window_failed=1, consecutive_failures=2
    )
    batch = [Observed("transient", 0.02, 30.0) if o == "retry" else Observed(o, 0.01) for o in outcomes]  # type: ignore[arg-type]
    d, changes = observe(start, batch, POLICY, at(1))
    found = (
        d.state,
        d.window_total,
        d.window_failed,
        d.consecutive_failures,
        [(c.from_state, c.to_state) for c in changes],
    )
    assert found == expected


def test_permanent_failures_never_open_it() -> None:
    d, changes = observe(Destination.new("d", T0), seen(*["permanent"] * 1000), POLICY, at(1))
    assert (d.state, changes) == (CLOSED, [])


@pytest.mark.parametrize(("volume", "opens"), [(19, False), (20, True)])
def test_the_failure_ratio_needs_the_minimum_volume(volume: int, opens: bool) -> None:
    lenient = Policy(BREAKER.model_copy(update={"consecutive": 1000}))
    outcomes = ["succeeded", "transient"] * (volume // 2) + ["transient"] * (volume % 2)
    d, _ = observe(Destination.new("d", T0), seen(*outcomes), lenient, at(1))
    assert (d.state == OPEN) is opens


def test_the_window_slides_old_failures_out() -> None:
    lenient = Policy(BREAKER.model_copy(update={"consecutive": 1000}))
    d, _ = observe(Destination.new("d", T0), seen(*["transient"] * 10 + ["succeeded"] * 9), lenient, at(1))
    d, _ = observe(d, seen("succeeded"), lenient, at(125))  # two windows later: the 10 failures are gone
    assert d.failure_rate(at(125), 60) == (1, 0)
    assert d.state == CLOSED


def test_a_cool_down_leads_to_probes_and_failing_probes_double_it_up_to_the_cap() -> None:
    d, _ = observe(Destination.new("d", T0), seen(*["transient"] * 5), POLICY, at(0))
    d, allowance, changes = plan(d, POLICY, running=0, now=at(4.9))
    assert (allowance.count, allowance.next_at, changes) == (0, at(5), [])
    cooldowns = []
    now = 5.0
    for _ in range(4):
        d, allowance, changes = plan(d, POLICY, running=0, now=at(now))
        assert (d.state, allowance.count) == (HALF_OPEN, 1)
        assert plan(d, POLICY, running=1, now=at(now))[1].count == 0  # one probe at a time
        d, changes = observe(d, seen("transient"), POLICY, at(now))
        assert [(c.from_state, c.to_state) for c in changes] == [(HALF_OPEN, OPEN)]
        cooldowns.append(d.cooldown)
        now += d.cooldown
    assert cooldowns == [10, 20, 20, 20]
    d, _, _ = plan(d, POLICY, running=0, now=at(now))
    d, changes = observe(d, seen("succeeded"), POLICY, at(now))
    assert (d.state, d.ramp_start, changes[0].reason) == (CLOSED, at(now), "a probe succeeded")


def test_the_drain_after_a_close_starts_slow_and_doubles() -> None:
    breaker = BREAKER.model_copy(update={"drain_rate": 5.0, "drain_step": 5.0, "drain_max": 100.0})
    policy = Policy(breaker)
    d = force(Destination.new("d", T0), "open", T0)[0]
    d = force(d, "reset", T0)[0]
    taken = []
    for tick in range(300):  # 30 s, claiming everything allowed every 0.1 s
        d, allowance, _ = plan(d, policy, running=0, now=at(tick / 10))
        taken.append(allowance.count or 0)
        d = take(d, allowance.count or 0)
    per_second = [sum(taken[i : i + 10]) for i in range(0, 300, 10)]
    assert per_second[0] <= 6  # 5/s and the one token a close starts with
    assert per_second[7] == pytest.approx(10, abs=1)  # doubled after 5 s
    assert d.ramp_start is None  # 5 → 10 → 20 → 40 → 80 → 160 ≥ 100: the drain is over after 25 s
    assert allowance.count is None


def test_a_rate_limit_is_a_token_bucket_with_a_tenth_of_a_second_of_burst() -> None:
    policy = Policy(None, rate=20.0)
    d = Destination.new("d", T0)
    total = 0
    for tick in range(1000):  # 10 s, a claim every 10 ms
        d, allowance, _ = plan(d, policy, running=0, now=at(tick / 100))
        total += allowance.count or 0
        d = take(d, allowance.count or 0)
    assert total == pytest.approx(200, abs=3)


def test_a_claim_whose_clock_reading_is_older_than_the_last_refill_adds_no_tokens() -> None:
    """Workers read the clock before they wait for the destination's row lock, so a claim may plan at a time
    earlier than the claim before it. The bucket's clock must not go back: else the next claim refills the same
    interval twice, and three workers on one destination deliver more than its rate."""
    policy = Policy(None, rate=20.0)
    d = Destination.new("d", T0)
    total = 0
    for tick in range(1000):  # 10 s; each claim at 10 ms steps is followed by one that read the clock 40 ms earlier
        for seconds in (tick / 100, tick / 100 - 0.04):
            d, allowance, _ = plan(d, policy, running=0, now=at(seconds))
            total += allowance.count or 0
            d = take(d, allowance.count or 0)
    assert total == pytest.approx(200, abs=3)


def test_concurrency_allows_what_is_not_running() -> None:
    policy = Policy(None, concurrency=5)
    d = Destination.new("d", T0)
    assert [plan(d, policy, running=r, now=T0)[1].count for r in (0, 3, 5, 7)] == [5, 2, 0, 0]


def test_a_retry_after_holds_the_destination_until_then() -> None:
    d, _ = observe(Destination.new("d", T0), [Observed("transient", 0.1, retry_after=3.0)], POLICY, T0)
    assert d.restricted(at(1))
    assert plan(d, POLICY, running=0, now=at(2.9))[1].count == 0
    assert plan(d, POLICY, running=0, now=at(2.9))[1].next_at == at(3)
    d, allowance, _ = plan(d, POLICY, running=0, now=at(3))
    assert allowance.count is None
    assert not d.restricted(at(3))
    assert d.window_total == 0  # pacing is not a failure


def test_forcing() -> None:
    d, change = force(Destination.new("d", T0), "open", T0)
    assert (d.state, d.forced, change.reason) == (OPEN, OPEN, "forced open")
    assert plan(d, POLICY, running=0, now=at(3600))[1].count == 0  # never half-opens on its own
    d, _ = observe(d, seen(*["succeeded"] * 50), POLICY, at(1))
    assert d.state == OPEN
    d, change = force(d, "close", at(2))
    d, _ = observe(d, seen(*["transient"] * 50), POLICY, at(3))
    assert (d.state, d.forced) == (CLOSED, CLOSED)  # forced closed: the breaker does not decide
    d, change = force(d, "reset", at(4))
    assert (d.state, d.forced, d.consecutive_failures) == (CLOSED, None, 0)


def test_destination_keys() -> None:
    assert origin("https://API.example.com/x?y") == "https://api.example.com:443"
    assert origin("http://[::1]:8080/") == "http://[::1]:8080"
    assert origin("not a url") is None
    assert url_destination(compile_template("https://api.example.com/{{ payload.path }}")) == (
        "https://api.example.com:443"
    )
    dynamic = url_destination(compile_template("https://{{ payload.host }}/hook"))
    assert callable(dynamic)
    key = DestinationKey(None, dynamic, "trigger:t")
    assert key.of({"payload": {"host": "a.example"}}) == "https://a.example:443"
    assert key.of({"payload": {}}) == "trigger:t"  # the template fails: the trigger's own destination
    assert destination_key("t", None, None).fixed == "trigger:t"
    assert destination_key("t", compile_template("crm"), "https://x:443").fixed == "crm"


def test_a_breaker_turned_off_while_open_closes_at_the_next_claim() -> None:
    d, _ = observe(Destination.new("d", T0), seen(*["transient"] * 5), POLICY, at(0))
    d, allowance, changes = plan(d, Policy(None), running=0, now=at(1))
    assert (d.state, allowance.count, changes[0].reason) == (CLOSED, None, "its breaker is off")
