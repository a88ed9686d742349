"""A database with history at revision 0006 migrates to head, and its rollups are backfilled in batches while the
live path keeps working on the same rows (ingest, completions of old executions, a replay of an old dead letter, a
retention purge): once the backfill is done every rollup-served figure equals the raw count, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select

from databases import pg_admin, pg_url
from redrive.db.engine import make_engine
from redrive.db.migrate import alembic_config
from redrive.db.schema import attempts, error_groups, events, executions, rollup_backfill
from redrive.observe import backfill, rollups
from redrive.plugins import builtin_registry
from redrive.triggers.runtime import build_trigger_set, sync_triggers
from rollup_support import CONFIG, FINGERPRINTS, START, History, brute_force, figures, run

STATUSES = ("succeeded", "failed", "failed_retryable", "replayed", "pending", "succeeded")


@pytest.fixture(params=["sqlite", "postgresql"])
def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at revision 0006."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        request.getfixturevalue("pg_template")  # skips (or fails under CI) when PostgreSQL is not there
        name = f"redrive_r_{uuid.uuid4().hex[:12]}"
        pg_admin(f'CREATE DATABASE "{name}"')
        url = pg_url(name)
    _migrate(url, "0006")
    yield url
    if request.param == "postgresql":
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrate(url: str, revision: str) -> None:
    engine = make_engine(url, writer=True)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def _old_history(history: History, count: int) -> None:
    """Rows as a redrive at 0006 left them, spread over ten days: every status, attempts, groups, a replay."""
    with history.engine.begin() as connection:
        for fingerprint in FINGERPRINTS:
            connection.execute(
                error_groups.insert().values(
                    fingerprint=fingerprint,
                    trigger_id=history.ids["a"],
                    action_kind="command",
                    code="boom",
                    category="transient",
                    title="boom",
                    status="open",
                    total=1,
                    first_seen=START - timedelta(days=10),
                    last_seen=START,
                )
            )
        for n in range(count):
            at = START - timedelta(minutes=n * 97 + n % 7, seconds=n % 59)
            trigger = "a" if n % 3 else "b"
            status = STATUSES[n % len(STATUSES)]
            fingerprint = FINGERPRINTS[n % 3] if status.startswith("failed") else None
            event_id = connection.execute(
                events.insert()
                .values(trigger_id=history.ids[trigger], body_sha256="0" * 64, headers={}, payload={}, received_at=at)
                .returning(events.c.id)
            ).scalar_one()
            execution_id = connection.execute(
                executions.insert()
                .values(
                    event_id=event_id,
                    trigger_id=history.ids[trigger],
                    action_kind="command" if trigger == "a" else "http",
                    status=status,
                    attempts=0 if status == "pending" else 1 + n % 2,
                    run_at=at,
                    created_at=at,
                    updated_at=at,
                    finished_at=None if status == "pending" else at,
                    fingerprint=fingerprint,
                )
                .returning(executions.c.id)
            ).scalar_one()
            for number in range(1, (0 if status == "pending" else 1 + n % 2) + 1):
                # Only a succeeded execution's last attempt succeeded (a replayed one was a dead letter first).
                failed = status != "succeeded" or number < 1 + n % 2
                connection.execute(
                    attempts.insert().values(
                        execution_id=execution_id,
                        number=number,
                        started_at=at,
                        finished_at=at,
                        duration_ms=1.0,
                        outcome="transient" if failed else "succeeded",
                        detail={},
                        fingerprint=FINGERPRINTS[n % 3] if failed else None,
                    )
                )


def test_history_at_0006_is_backfilled_in_batches_beside_live_traffic(old_url: str) -> None:
    engine = make_engine(old_url, writer=True)
    try:
        with engine.begin() as connection:
            ids = sync_triggers(connection, CONFIG, START - timedelta(days=11))
        history = History(engine, build_trigger_set(CONFIG, ids, builtin_registry()), ids)
        _old_history(history, 120)
        rollups.forget()
        _migrate(old_url, "head")
        marks = history.read(lambda c: {r.source: (r.next_id, r.watermark) for r in c.execute(select(rollup_backfill))})
        assert marks["executions"][1] - marks["executions"][0] == 119
        assert not history.read(rollups.ready)
        assert figures(history) == brute_force(history)  # scanned while the backfill has not finished
        live = [
            ("ingest", "a", 4, True),
            ("claim", 3, False),  # old pending executions, some before the backfill reaches them, some after
            ("complete", ["succeeded", "dead", "retry"], 1),
            ("replay", 0, False),
            ("advance", 3601),
            ("purge", 7 * 86400.0),
        ]
        batches = 0
        while history.write(backfill.step(9)):
            batches += 1
            if live:
                run(history, live.pop(0))
        assert batches >= (120 // 9) * 2  # executions, then events, nine ids per transaction
        assert history.read(rollups.ready)
        assert figures(history) == brute_force(history)
    finally:
        engine.dispose()
