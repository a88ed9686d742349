"""A healthy destination's quiet outcomes are counted by one update of its row (``store._count_quietly``).

Counting a completion batch at a destination used to lock and read its row, run the breaker's ``observe`` on it and
write it back: two statements (two round trips on PostgreSQL) on every completion batch, most of which only add
successes to a closed breaker's counters. The update does that in place, guarded by its ``WHERE`` (closed, not
forced, not restricted, window not rolling); any other row, or any outcome that can decide something, goes the way
it went. The property test holds both ways to the breaker's own arithmetic on both databases.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from queue_support import destination_statements
from sqlalchemy import Engine, select

from redrive.db.engine import make_engine
from redrive.db.schema import destinations
from redrive.destinations.breaker import CLOSED, HALF_OPEN, OPEN, Destination, Observed, Policy, observe
from redrive.destinations.store import Outcome, _write, load, record_outcomes
from redrive.triggers.config import BreakerConfig

NOW = datetime(2031, 1, 1, tzinfo=UTC)
FIELDS = [f.name for f in fields(Destination)]
_names = itertools.count()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    made = make_engine(db_url, writer=True)
    yield made
    made.dispose()


def stored(engine: Engine, d: Destination, saved_at: datetime) -> Destination:
    """Store ``d`` as a save at ``saved_at`` leaves it (its ``restricted`` column as of then); the row read back."""
    with engine.begin() as connection:
        connection.execute(destinations.insert(), {**{name: getattr(d, name) for name in FIELDS}, "updated_at": NOW})
        _write(connection, [(d, saved_at)])
    return read(engine, d.name)[0]


def read(engine: Engine, name: str) -> tuple[Destination, Any]:
    with engine.connect() as connection:
        found = connection.execute(select(destinations).where(destinations.c.name == name)).one()
    return load(found), found


ROWS = st.fixed_dictionaries(
    {
        "state": st.sampled_from([CLOSED, CLOSED, CLOSED, OPEN, HALF_OPEN]),
        "forced": st.sampled_from([None, None, None, OPEN, CLOSED]),
        "window_age": st.sampled_from([0.0, 1.5, 30.0, 59.999, 60.0, 61.0, 119.0, 125.0]),
        "window_total": st.integers(0, 40),
        "window_failed": st.integers(0, 40),
        "previous_total": st.integers(0, 40),
        "previous_failed": st.integers(0, 40),
        "consecutive_failures": st.integers(0, 6),
        "latency_ms": st.one_of(st.none(), st.floats(0.5, 5000.0)),
        "concurrency": st.sampled_from([None, None, None, 5]),
        "ramp": st.sampled_from([False, False, False, True]),
        "paced": st.sampled_from([None, None, None, -5.0, 5.0]),  # paced until that many seconds from now
        "saved_ago": st.sampled_from([0.0, 10.0]),  # when its restricted column was last computed
    }
)
OBSERVED = st.builds(
    Observed,
    outcome=st.sampled_from(["succeeded", "succeeded", "succeeded", "permanent", "transient"]),
    seconds=st.floats(0.001, 3.0),
    retry_after=st.sampled_from([None, None, None, None, None, None, 3.0]),
)
BATCH = st.tuples(
    ROWS,
    st.lists(st.tuples(OBSERVED, st.booleans()), min_size=1, max_size=6),
    st.sampled_from([BreakerConfig(), BreakerConfig(window=30.0), None]),
)


def shaped(name: str, spec: dict[str, Any]) -> Destination:
    return replace(
        Destination.new(name, NOW - timedelta(hours=1)),
        state=spec["state"],
        forced=spec["forced"],
        reopen_at=NOW + timedelta(seconds=30) if spec["state"] == OPEN else None,
        cooldown=30.0 if spec["state"] != CLOSED else 0.0,
        window_start=NOW - timedelta(seconds=spec["window_age"]),
        window_total=spec["window_total"],
        window_failed=min(spec["window_failed"], spec["window_total"]),
        previous_total=spec["previous_total"],
        previous_failed=min(spec["previous_failed"], spec["previous_total"]),
        consecutive_failures=spec["consecutive_failures"],
        latency_ms=spec["latency_ms"],
        concurrency=spec["concurrency"],
        ramp_start=NOW - timedelta(seconds=2) if spec["ramp"] else None,
        paced_until=None if spec["paced"] is None else NOW + timedelta(seconds=spec["paced"]),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(BATCH, min_size=1, max_size=3))
def test_every_row_ends_as_the_breaker_counts_it(engine: Engine, batches: list[Any]) -> None:
    """Whichever way a destination is counted, its row ends as ``observe`` leaves it, and the transitions are its."""
    before: dict[str, Destination] = {}
    outcomes: list[Outcome] = []
    for spec, seen, breaker in batches:
        name = f"https://d{next(_names)}.example:443"
        before[name] = stored(engine, shaped(name, spec), NOW - timedelta(seconds=spec["saved_ago"]))
        # Probes are leased only from a half-open breaker; the flag rides on what a claim took.
        outcomes += [
            Outcome(name, observed, Policy(breaker), probe and spec["state"] == HALF_OPEN) for observed, probe in seen
        ]
    with engine.begin() as connection:
        recorded = record_outcomes(connection, outcomes, NOW)
    expected_transitions = []
    for name, d in sorted(before.items()):
        mine = [o for o in outcomes if o.destination == name]
        expected, changes = observe(d, [o.observed for o in mine], mine[0].policy, NOW)
        expected_transitions += [(name, c.from_state, c.to_state, c.reason) for c in changes]
        after, row = read(engine, name)
        assert replace(after, latency_ms=None) == replace(expected, latency_ms=None)
        assert after.latency_ms == pytest.approx(expected.latency_ms, rel=1e-9)
        assert row.restricted == expected.restricted(NOW)
        assert row.updated_at == NOW
    made = [(t.destination, t.from_state, t.to_state, t.reason) for t in recorded.transitions]
    assert made == expected_transitions


def test_a_healthy_destinations_successes_cost_one_update_and_a_failure_its_read(engine: Engine) -> None:
    name = "https://crm.example:443"
    policy = Policy(BreakerConfig())
    stored(engine, Destination.new(name, NOW - timedelta(seconds=5)), NOW - timedelta(seconds=5))
    successes = [Outcome(name, Observed("succeeded", 0.02), policy), Outcome(name, Observed("permanent", 0.04), policy)]
    with destination_statements(engine) as quiet, engine.begin() as connection:
        record_outcomes(connection, successes, NOW)
    with destination_statements(engine) as loud, engine.begin() as connection:
        record_outcomes(connection, [Outcome(name, Observed("transient", 0.5), policy)], NOW)
    assert quiet == ["update"]  # was: the locked read, then the save
    assert loud == ["select", "update"]  # a transient failure may open it: read, decided on, saved
    after, _ = read(engine, name)
    assert (after.window_total, after.window_failed, after.consecutive_failures) == (3, 1, 1)
    assert after.latency_ms == pytest.approx(0.8 * (0.8 * 20 + 0.2 * 40) + 0.2 * 500)


def test_a_pace_that_has_run_out_is_cleared_by_the_next_count(engine: Engine) -> None:
    """A row saved while paced stays restricted in its column after the pace ends: its next count takes the long
    way, which saves it unrestricted (claims then take it freely again)."""
    name = "https://paced.example:443"
    paced = replace(Destination.new(name, NOW - timedelta(seconds=20)), paced_until=NOW - timedelta(seconds=5))
    assert stored(engine, paced, NOW - timedelta(seconds=10)).restricted(NOW - timedelta(seconds=10))
    with destination_statements(engine) as seen, engine.begin() as connection:
        record_outcomes(connection, [Outcome(name, Observed("succeeded", 0.01), Policy(BreakerConfig()))], NOW)
    assert seen == ["update", "select", "update"]  # tried, refused by its WHERE, then read and saved
    after, row = read(engine, name)
    assert (after.window_total, row.restricted) == (1, False)


def test_a_limited_destination_is_counted_the_long_way_without_trying_the_update(engine: Engine) -> None:
    """Limits keep a destination's row restricted, so the quiet update could only miss: it is not sent."""
    name = "https://limited.example:443"
    limited = Policy(BreakerConfig(), rate=50.0, concurrency=5)
    row = replace(Destination.new(name, NOW - timedelta(seconds=5)), rate=50.0, concurrency=5)
    stored(engine, row, NOW - timedelta(seconds=5))
    with destination_statements(engine) as seen, engine.begin() as connection:
        record_outcomes(connection, [Outcome(name, Observed("succeeded", 0.01), limited)], NOW)
    assert seen == ["select", "update"]  # was: the update that could not match, then the read and the save
    after, row_read = read(engine, name)
    assert (after.window_total, row_read.restricted) == (1, True)
