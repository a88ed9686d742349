"""A populated database (a row in every table) migrates from the first migration to head and back down to base.

Each revision is applied in turn; after each, every table that has no row yet gets one (built from the reflected
columns, foreign keys pointing at rows made before), so each migration runs over data, not over empty tables. At
head every table of the models holds a row. Then each revision is undone in turn, and every table still there must
keep its rows. Both databases: SQLite alters tables by copying them (batch mode), where rows are easiest to lose.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    select,
)
from sqlalchemy.engine import Connection

from databases import pg_admin, pg_url
from redrive.db.migrate import alembic_config
from redrive.db.schema import metadata

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("pg_template")  # skips (or fails under CI) when PostgreSQL is not there
    name = f"redrive_m_{uuid.uuid4().hex[:12]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    yield pg_url(name)
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sample(column: Any) -> Any:
    kind = column.type
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer):
        return 1
    if isinstance(kind, Float):
        return 1.5
    if isinstance(kind, DateTime):
        return NOW
    if isinstance(kind, Date):
        return date(2026, 12, 1)
    if isinstance(kind, JSON) or type(kind).__name__ in {"JSONB", "JSON"}:
        return {"k": "v"}
    if isinstance(kind, LargeBinary):
        return b"x"
    if isinstance(kind, String):
        return f"{column.name}-1"[: kind.length or 64]
    raise AssertionError(f"no sample value for {column.table.name}.{column.name} of type {kind!r}")


def _tables(connection: Connection) -> dict[str, Table]:
    reflected = MetaData()
    reflected.reflect(connection)
    return {name: table for name, table in reflected.tables.items() if name != "alembic_version"}


def _counts(connection: Connection) -> dict[str, int]:
    return {
        name: connection.execute(select(func.count()).select_from(t)).scalar_one()
        for name, t in _tables(connection).items()
    }


def _populate(connection: Connection) -> None:
    """Give every empty table one row; referenced tables come first."""
    reflected = MetaData()
    reflected.reflect(connection)
    for table in reflected.sorted_tables:
        if table.name == "alembic_version" or connection.execute(select(func.count()).select_from(table)).scalar_one():
            continue
        row: dict[str, Any] = {}
        for column in table.columns:
            if column.foreign_keys:
                target = next(iter(column.foreign_keys)).column
                found = connection.execute(select(target).limit(1)).scalar_one_or_none()
                assert found is not None or column.nullable, f"{table.name}.{column.name} needs a row it cannot have"
                row[column.name] = found  # None: a self-reference (replay_of), nullable
            elif column.primary_key and isinstance(column.type, Integer) and len(table.primary_key.columns) == 1:
                continue  # generated
            else:
                row[column.name] = _sample(column)
        connection.execute(table.insert().values(row))


def _migrate(url: str, direction: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            getattr(command, direction)(config, revision)
    finally:
        engine.dispose()


def _with(url: str, work: Any) -> Any:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            return work(connection)
    finally:
        engine.dispose()


def test_a_populated_database_migrates_up_to_head_and_down_to_base(empty_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(empty_url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert len(revisions) >= 2

    for revision in revisions:
        before = _with(empty_url, _counts)
        _migrate(empty_url, "upgrade", revision)
        after = _with(empty_url, _counts)
        kept = {name: after.get(name) for name in before}
        assert kept == before, f"upgrading to {revision} lost rows"
        _with(empty_url, _populate)

    at_head = _with(empty_url, _counts)
    assert set(at_head) == set(metadata.tables)
    assert all(n >= 1 for n in at_head.values()), at_head

    for revision in reversed(revisions):
        before = _with(empty_url, _counts)
        _migrate(empty_url, "downgrade", "-1")
        after = _with(empty_url, _counts)
        assert {name: n for name, n in after.items()} == {name: before[name] for name in after}, (
            f"undoing {revision} lost rows"
        )
    assert _with(empty_url, _counts) == {}
