"""Writer tests' jobs: each inserts a named mark, so what committed can be read back."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection

from redrive.db.database import Database


def with_marks(database: Database) -> Database:
    """``database`` with its marks table made."""
    database.write_sync(lambda c: c.execute(text("CREATE TABLE marks (name text PRIMARY KEY)")))
    return database


def mark(name: str) -> Callable[[Connection], str]:
    """A job that inserts the mark ``name`` and returns it."""

    def job(connection: Connection) -> str:
        connection.execute(text("INSERT INTO marks (name) VALUES (:name)"), {"name": name})
        return name

    return job


def marks(db: Database) -> list[str]:
    """The committed marks, sorted."""
    return sorted(db.read_sync(lambda c: c.execute(text("SELECT name FROM marks")).scalars().all()))
