"""Test databases: the PostgreSQL admin connection, and a fresh migrated database cloned from a template.

Every fixture that needs its own database (``db_url`` per test, module-scoped ones for suites that seed once) gets
it from ``fresh_database``, so there is one way to make and drop one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

PG_ADMIN = os.environ.get("REDRIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def pg_url(database: str) -> str:
    """The SQLAlchemy URL of ``database`` on the test server."""
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{database}"


def pg_admin(sql: str) -> None:
    """Run one administrative statement (CREATE/DROP DATABASE) outside a transaction."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type]


def fresh_database(request: pytest.FixtureRequest, kind: str, folder: Path) -> Iterator[str]:
    """A migrated database of ``kind`` (sqlite: a file in ``folder``; postgresql: a clone of the template), dropped
    afterwards; a generator for fixtures to ``yield from``."""
    if kind == "sqlite":
        path = folder / "redrive.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"redrive_t_{uuid.uuid4().hex[:12]}"
    pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield pg_url(name)
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
