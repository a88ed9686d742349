"""Migration 0012 parks the ordered rows already queued behind an earlier pending or running row of their key, on
both databases: each key keeps its oldest unfinished row unparked, and unordered rows are left alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from databases import pg_admin, pg_url
from redrive.db.engine import make_engine
from redrive.db.migrate import alembic_config

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    request.getfixturevalue("pg_template")
    name = f"redrive_p_{uuid.uuid4().hex[:12]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    yield pg_url(name)
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


def test_queued_ordered_rows_behind_a_holder_are_parked(url: str) -> None:
    _migrate(url, "0011")
    # (status, key) in id order: key a runs its head with two behind it; key b's head died and one waits (the
    # migration does not know the policy: only pending and running rows hold); c is alone; the last is unordered.
    rows = [
        ("running", "a"),
        ("pending", "a"),
        ("pending", "a"),
        ("failed_retryable", "b"),
        ("pending", "b"),
        ("succeeded", "c"),
        ("pending", "c"),
        ("pending", None),
    ]
    engine = make_engine(url, writer=True)
    try:
        with engine.begin() as connection:
            trigger = connection.execute(
                text(
                    "INSERT INTO triggers (name, action_kind, paused, created_at, updated_at) "
                    "VALUES ('t', 'http', false, :at, :at) RETURNING id"
                ),
                {"at": AT},
            ).scalar_one()
            event = connection.execute(
                text(
                    "INSERT INTO events (trigger_id, body_sha256, headers, payload, filtered, received_at, "
                    "replay_count) VALUES (:t, :sha, '{}', '{}', false, :at, 0) RETURNING id"
                ),
                {"t": trigger, "sha": "0" * 64, "at": AT},
            ).scalar_one()
            for status, key in rows:
                connection.execute(
                    text(
                        "INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, "
                        "created_at, updated_at, ordering_key) VALUES (:e, :t, 'http', :s, 0, :at, :at, :at, :k)"
                    ),
                    {"e": event, "t": trigger, "s": status, "at": AT, "k": key},
                )
        engine.dispose()
        _migrate(url, "head")
        with engine.connect() as connection:
            found = connection.execute(text("SELECT key_waiting FROM executions ORDER BY id")).scalars().all()
        assert [bool(flag) for flag in found] == [False, True, True, False, False, False, False, False]
    finally:
        engine.dispose()
