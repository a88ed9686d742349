"""Shared fixtures: a fresh real database per test (SQLite file and PostgreSQL), services on loopback.

PostgreSQL is the server on 127.0.0.1:5432 (override with REDRIVE_TEST_PG). Each test gets its own database,
cloned from a template migrated once per test process. Without a reachable server the PostgreSQL half is skipped
with one line in the report header saying why; under CI (CI=true) that is a failure instead.
"""

from __future__ import annotations

import os
import re
import traceback
import uuid
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import _connection_base as psycopg_connections
from sqlalchemy import event
from sqlalchemy.pool import Pool

from databases import PG_ADMIN, fresh_database, pg_admin, pg_url
from redrive.db.migrate import upgrade

_pg_problem: str | None = None


def _probe_postgres() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"{PG_ADMIN} is not reachable ({str(exc).strip().splitlines()[0]})"


_opened_at: dict[int, str] = {}  # id(psycopg connection) -> the stack that opened it, while it lives


def _remember_where_opened(connection: Any, record: Any) -> None:
    if isinstance(connection, psycopg.Connection):
        key = id(connection)
        ours = [frame for frame in traceback.extract_stack()[:-1] if "site-packages" not in frame.filename]
        _opened_at[key] = "".join(traceback.format_list(ours[-15:]))  # redrive's and the tests' frames
        forget = weakref.finalize(connection, _opened_at.pop, key, None)  # runs after the connection's __del__
        forget.atexit = False


def _warn_with_origin(message: str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """psycopg's warning for a connection collected while open, with the stack that opened it: the suite turns
    warnings into errors, and a leak surfaces in whichever test the collector happens to run in."""
    found = re.search(r"object at (0x[0-9a-f]+)", message)
    origin = _opened_at.get(int(found.group(1), 16)) if found else None
    warnings.warn(f"{message}\nopened at:\n{origin or '(not opened through an SQLAlchemy pool)'}", category, 2)


def pytest_configure(config: pytest.Config) -> None:
    global _pg_problem
    event.listen(Pool, "connect", _remember_where_opened)
    psycopg_connections.BaseConnection.__del__.__defaults__ = (_warn_with_origin,)
    _pg_problem = _probe_postgres()
    if _pg_problem and os.environ.get("CI"):
        raise pytest.UsageError(f"CI needs PostgreSQL: {_pg_problem}")


def pytest_report_header(config: pytest.Config) -> str:
    if _pg_problem:
        return f"redrive: SKIPPING the PostgreSQL half of the suite: {_pg_problem}"
    return f"redrive: PostgreSQL at {PG_ADMIN.rsplit('@', 1)[-1]}"


@pytest.fixture(scope="session")
def pg_template(worker_id: str) -> Iterator[str]:
    """A migrated template database for this test process."""
    if _pg_problem:
        pytest.skip(_pg_problem)
    name = f"redrive_tpl_{worker_id}_{uuid.uuid4().hex[:6]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    upgrade(pg_url(name))
    yield name
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file to copy for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: an SQLite file, then a PostgreSQL database."""
    yield from fresh_database(request, request.param, tmp_path)
