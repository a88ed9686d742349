"""Retention on both databases: what is past its window goes in batches, what a live execution needs stays, a
purged event's idempotency key is free again, and ``redrive purge --dry-run`` counts exactly what a purge removes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from redrive.db.database import Database
from redrive.db.schema import attempts, executions
from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_event
from redrive.node import retention
from redrive.node.retention import count, plan, purge
from redrive.observe.redaction import Redactor
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import sync_triggers
from support import query

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CONFIG = """
triggers:
  - {name: a, action: {kind: command, argv: ['true']}, source: {filter: "payload.keep != false"}}
  - {name: b, action: {kind: command, argv: ['true']}, retention: {succeeded: 1d}}
"""


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def seed(db_url: str) -> dict[str, int]:
    """Executions named by what should happen to them; returns name -> execution id (or event id for 'filtered')."""
    config = parse_config(CONFIG)
    db = Database(db_url)
    ids = db.write_sync(lambda c: sync_triggers(c, config, NOW))
    made: dict[str, int] = {}

    def add(
        name: str, trigger: str, received: datetime, status: str | None, finished: datetime | None, keep: bool = True
    ) -> None:
        event = prepare(
            config.trigger(trigger),
            ids[trigger],
            body=name.encode(),
            headers={},
            received_at=received,
            redactor=Redactor(),
            payload={"n": name, "keep": keep},
            key=name,
        )
        stored = db.write_sync(store_event(event))
        made[name] = stored.execution_id or stored.event_id
        if status is not None:
            db.write_sync(
                lambda c: c.execute(
                    update(executions)
                    .where(executions.c.id == made[name])
                    .values(status=status, finished_at=finished, attempts=1)
                )
            )
            db.write_sync(
                lambda c: c.execute(
                    attempts.insert().values(
                        execution_id=made[name],
                        number=1,
                        started_at=finished,
                        finished_at=finished,
                        duration_ms=1.0,
                        outcome="succeeded",
                        detail={},
                    )
                )
            )

    add("old_success", "a", ago(8), "succeeded", ago(8))
    add("recent_success", "a", ago(6), "succeeded", ago(6))
    add("recent_dlq", "a", ago(13), "failed_retryable", ago(13))
    add("old_dlq", "a", ago(15), "failed_retryable", ago(15))
    add("old_failed", "a", ago(15), "failed", ago(15))
    add("pending_on_old_event", "a", ago(30), None, None)
    add("replayed", "a", ago(20), "replayed", ago(20))
    add("old_filtered", "a", ago(8), None, None, keep=False)
    add("recent_filtered", "a", ago(6), None, None, keep=False)
    add("b_success", "b", ago(2), "succeeded", ago(2))

    # The replay of 'replayed': same event, succeeded yesterday; it keeps the row it replays (and the event).
    def replay(c: Connection) -> None:
        original = c.execute(select(executions).where(executions.c.id == made["replayed"])).one()
        c.execute(
            executions.insert().values(
                event_id=original.event_id,
                trigger_id=original.trigger_id,
                action_kind=original.action_kind,
                status="succeeded",
                attempts=1,
                run_at=ago(1),
                created_at=ago(1),
                updated_at=ago(1),
                finished_at=ago(1),
                replay_of=original.id,
            )
        )

    db.write_sync(replay)
    made["_ids_a"], made["_ids_b"] = ids["a"], ids["b"]
    db.close()
    return made


def test_purge_keeps_what_is_needed_and_dry_run_counts_the_same(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "BATCH", 1)  # a handful of rows still takes several batches per scope
    made = seed(db_url)
    config = parse_config(CONFIG)
    retentions = {made["_ids_a"]: config.triggers[0].retention, made["_ids_b"]: config.triggers[1].retention}
    db = Database(db_url)
    try:
        would = db.read_sync(count(plan(retentions, NOW)))
        did = asyncio.run(purge(lambda job: asyncio.to_thread(db.write_sync, job), plan(retentions, NOW)))
        # Purging again finds nothing: the first pass went to the end, batch after batch.
        again = asyncio.run(purge(lambda job: asyncio.to_thread(db.write_sync, job), plan(retentions, NOW)))
    finally:
        db.close()
    assert did.by_status == {"succeeded": 2, "failed_retryable": 1, "failed": 1}
    # Events: the four purged executions' except b's (its trigger keeps keys 7 days), and the old filtered one.
    assert (did.executions, did.attempts, did.events) == (4, 4, 4)
    assert (would.executions, would.attempts, would.events, would.by_status) == (4, 4, 4, did.by_status)
    assert (again.executions, again.events) == (0, 0)

    left = {row.id for row in query(db_url, "SELECT id FROM executions")}
    for name in ("recent_success", "recent_dlq", "pending_on_old_event", "replayed"):
        assert made[name] in left, name
    for name in ("old_success", "old_dlq", "old_failed", "b_success"):
        assert made[name] not in left, name
    keys = {row.idempotency_key for row in query(db_url, "SELECT idempotency_key FROM events")}
    assert keys == {"recent_success", "recent_dlq", "pending_on_old_event", "replayed", "recent_filtered", "b_success"}


def test_a_trigger_no_longer_declared_is_purged_by_the_default_windows(db_url: str) -> None:
    made = seed(db_url)
    declared = {made["_ids_a"]: parse_config(CONFIG).triggers[0].retention}  # b is in the database, not the file
    db = Database(db_url)
    try:
        kept = asyncio.run(purge(lambda job: asyncio.to_thread(db.write_sync, job), plan(declared, NOW)))
        assert made["b_success"] in {row.id for row in query(db_url, "SELECT id FROM executions")}  # 2 days < 7
        would = db.read_sync(count(plan(declared, NOW, older_than=86400)))
        gone = asyncio.run(purge(lambda job: asyncio.to_thread(db.write_sync, job), plan(declared, NOW, 86400)))
    finally:
        db.close()
    assert kept.by_status == {"succeeded": 1, "failed_retryable": 1, "failed": 1}  # a's, by a's windows
    assert made["b_success"] not in {row.id for row in query(db_url, "SELECT id FROM executions")}  # 2 days > 1
    assert (would.executions, would.by_status) == (gone.executions, gone.by_status)
    assert gone.by_status["succeeded"] == 2  # a's recent success and b's


def test_a_purged_key_is_free_again(db_url: str) -> None:
    made = seed(db_url)
    config = parse_config(CONFIG)
    db = Database(db_url)
    try:
        asyncio.run(purge(lambda job: asyncio.to_thread(db.write_sync, job), plan({}, NOW)))
        event = prepare(
            config.triggers[0],
            made["_ids_a"],
            body=b"{}",
            headers={},
            received_at=NOW,
            redactor=Redactor(),
            payload={"n": 1, "keep": True},
            key="old_success",
        )
        assert db.write_sync(store_event(event)).outcome == "created"
    finally:
        db.close()


def run_purge(db_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from redrive.cli import main; main()", "purge", *args],
        cwd=cwd,
        env={"REDRIVE_DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", "COLUMNS": "1000"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_purge_command_dry_run_changes_nothing(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    (tmp_path / "redrive.yaml").write_text(CONFIG)
    before = query(db_url, "SELECT count(*) FROM executions")[0][0]

    def cli(*args: str) -> str:
        done = run_purge(db_url, tmp_path, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    # NOW is months in the past: with --older-than 1d every finished execution goes (the replay chain included),
    # and every event but the pending execution's.
    output = cli("--older-than", "1d", "--dry-run")
    assert output.startswith("would purge 8 execution(s)"), output
    assert output.endswith("9 event(s) with their idempotency keys"), output
    assert query(db_url, "SELECT count(*) FROM executions")[0][0] == before
    output = cli("--older-than", "1d")
    assert output.startswith("purged 8 execution(s)"), output
    assert output.endswith("9 event(s) with their idempotency keys"), output
    assert query(db_url, "SELECT status FROM executions") == [("pending",)]


def test_purging_by_retention_without_the_trigger_file_refuses_and_deletes_nothing(db_url: str, tmp_path: Path) -> None:
    # Each trigger's windows live in the trigger file; when it is missing the defaults must not stand in for them
    # (the seeded work is months old: a purge at the defaults would delete most of it).
    seed(db_url)
    before = query(db_url, "SELECT count(*) FROM executions")[0][0]
    done = run_purge(db_url, tmp_path)
    assert done.returncode == 2, done.stdout
    assert "redrive.yaml" in done.stderr
    assert query(db_url, "SELECT count(*) FROM executions")[0][0] == before
