"""Rollup retention: after the leader's pass, no row a served window cannot read is left, old days live on folded
in day bucket 0, and every figure still equals the brute-force count over the raw tables, before and after the
executions themselves are purged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from redrive.db.engine import make_engine
from redrive.db.schema import stat_rollups
from redrive.observe import rollup_retention, rollups
from redrive.plugins import builtin_registry
from redrive.triggers.runtime import build_trigger_set, sync_triggers
from rollup_support import CONFIG, START, History, brute_force, figures, run

T = TypeVar("T")
DAY = 86400


@pytest.fixture
def history(db_url: str) -> Iterator[History]:
    rollups.forget()
    engine = make_engine(db_url, writer=True)
    with engine.begin() as connection:
        ids = sync_triggers(connection, CONFIG, START)
    yield History(engine, build_trigger_set(CONFIG, ids, builtin_registry()), ids)
    engine.dispose()
    rollups.forget()


def _work(h: History, fingerprint: int) -> None:
    """Events on both triggers; some succeed, some dead-letter, one fails for good, one is retried; one replay."""
    for operation in (
        ("ingest", "a", 4, False),
        ("ingest", "b", 3, False),
        ("claim", 7, False),
        ("complete", ["succeeded", "dead", "permanent", "retry", "succeeded", "dead", "succeeded"], fingerprint),
        ("advance", 61),
        ("replay", 0, False),
        ("claim", 5, False),
        ("complete", ["succeeded", "dead"], fingerprint),
    ):
        run(h, operation)


def _trim(h: History) -> None:
    async def write(job: Callable[[Connection], T]) -> T:
        return h.write(job)

    asyncio.run(rollup_retention.trim(write, h.now))


def _rows(h: History, *where: Any) -> int:
    return int(h.read(lambda c: c.execute(select(func.count()).select_from(stat_rollups).where(*where)).scalar_one()))


def test_trim_keeps_every_figure_and_only_what_windows_read(history: History) -> None:
    for step, fingerprint in ((0, 0), (10 * DAY, 1), (25 * DAY, 2), (3 * DAY, 0)):  # 38 days in all
        run(history, ("advance", step))
        _work(history, fingerprint)
    before = figures(history)
    edge = rollup_retention.horizons(history.now)
    fine = stat_rollups.c.grain.in_(rollup_retention.FINE)
    old_day = (stat_rollups.c.grain == rollups.DAY) & stat_rollups.c.bucket.between(1, edge.day - 1)
    assert _rows(history, fine, stat_rollups.c.bucket + stat_rollups.c.grain <= edge.fine) > 0
    assert _rows(history, old_day) > 0

    _trim(history)

    assert _rows(history, fine, stat_rollups.c.bucket + stat_rollups.c.grain <= edge.fine) == 0
    assert _rows(history, old_day) == 0
    assert _rows(history, stat_rollups.c.grain == rollups.DAY, stat_rollups.c.bucket == 0) > 0  # folded
    assert _rows(history, stat_rollups.c.value == 0, stat_rollups.c.bucket < edge.fine) == 0
    assert _rows(history, fine, stat_rollups.c.bucket + stat_rollups.c.grain > edge.fine) > 0  # the last 8 days
    assert figures(history) == before == brute_force(history)


def test_figures_stay_exact_when_executions_go_after_their_rollups(history: History) -> None:
    for step, fingerprint in ((0, 0), (20 * DAY, 1), (20 * DAY, 2)):
        run(history, ("advance", step))
        _work(history, fingerprint)
    _trim(history)
    # Every execution finished a minute ago or more goes: it subtracts from buckets trimmed or folded already.
    run(history, ("purge", 60.0))
    assert figures(history) == brute_force(history)
    edge = rollup_retention.horizons(history.now)
    assert _rows(history, stat_rollups.c.grain.in_(rollup_retention.FINE), stat_rollups.c.bucket < edge.fine) == 0
    assert _rows(history, stat_rollups.c.grain == rollups.DAY, stat_rollups.c.bucket.between(1, edge.day - 1)) == 0

    run(history, ("advance", timedelta(days=40).total_seconds()))
    _trim(history)
    assert figures(history) == brute_force(history)
