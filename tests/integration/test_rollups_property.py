"""The rollups tell the truth: random histories driven through the real write jobs (ingest batches with duplicate
keys, claims, completions that succeed, retry, dead-letter or fail for good, lease expiries, node deaths, replays,
bulk replays, retention purges, and a backfill restarted and interleaved with all of it), then every figure the
rollups serve equals the brute-force count over the raw tables, on both databases.

One database per test, emptied before each example (making one per example would dominate the run time).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update

from redrive.db.engine import make_engine
from redrive.db.schema import (
    attempts,
    audit_log,
    bulk_replays,
    daily_counters,
    error_groups,
    events,
    executions,
    nodes,
    rollup_backfill,
    stat_rollups,
)
from redrive.observe import backfill, rollups
from redrive.plugins import builtin_registry
from redrive.triggers.runtime import build_trigger_set, sync_triggers
from rollup_support import CONFIG, FINGERPRINTS, START, STEPS, History, brute_force, figures, run

DISRUPTIONS = st.one_of(
    st.tuples(st.just("sweep")),
    st.tuples(st.just("reap")),
    st.tuples(st.just("replay"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("bulk"), st.sampled_from(["a", "b"])),
    st.tuples(st.just("purge"), st.sampled_from([0.0, 60.0, 3600.0, 86400.0])),
    st.tuples(st.just("restart")),
    st.tuples(st.just("backfill"), st.integers(1, 4)),
)
# A round: events arrive, workers claim and finish some, something else happens, time passes.
ROUNDS = st.tuples(
    st.tuples(st.just("ingest"), st.sampled_from(["a", "b"]), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("claim"), st.integers(0, 5), st.booleans()),
    st.tuples(
        st.just("complete"),
        st.lists(st.sampled_from(["succeeded", "retry", "held", "dead", "permanent"]), max_size=5),
        st.integers(0, len(FINGERPRINTS) - 1),
    ),
    DISRUPTIONS,
    st.tuples(st.just("advance"), st.sampled_from(STEPS)),
)


def _empty(h: History) -> None:
    """A clean slate: no rows, no counts, nothing to backfill."""
    rollups.forget()
    with h.engine.begin() as connection:
        connection.execute(update(executions).values(replay_of=None))
        for table in (attempts, executions, events, error_groups, bulk_replays, audit_log, daily_counters, nodes):
            connection.execute(delete(table))
        connection.execute(delete(stat_rollups))
        connection.execute(update(rollup_backfill).values(watermark=0, next_id=1))


@pytest.fixture
def history(db_url: str) -> Iterator[History]:
    engine = make_engine(db_url, writer=True)
    ids = {}
    with engine.begin() as connection:
        ids = sync_triggers(connection, CONFIG, START)
    yield History(engine, build_trigger_set(CONFIG, ids, builtin_registry()), ids)
    engine.dispose()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rounds=st.lists(ROUNDS, min_size=1, max_size=8))
def test_every_rollup_figure_equals_the_raw_count(history: History, rounds: list[tuple[Any, ...]]) -> None:
    _empty(history)
    history.now = START
    history.held = []
    for operation in itertools.chain.from_iterable(rounds):
        run(history, operation)
    while history.write(backfill.step()):  # a history may end with the backfill restarted or half done
        pass
    assert history.read(rollups.ready)
    served = figures(history)
    assert served == brute_force(history)
