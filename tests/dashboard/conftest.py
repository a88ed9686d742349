"""One seeded redrive service per database for the dashboard tests (module-scoped: seeding runs real processes)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from dashboard_support import Seeded, config_yaml, seed

from support import run_service

PG_ADMIN = os.environ.get("REDRIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")  # as tests/conftest.py


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type]


def _pg_url(database: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{database}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh migrated database for one test module: an SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("dashboard") / "redrive.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"redrive_d_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _pg_url(name)
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def seeded(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """A service with succeeded, retried, dead-lettered and permanently failed executions."""
    folder = tmp_path_factory.mktemp("seeded")
    (folder / "marks").mkdir()
    fix_file = folder / "fixed"
    with run_service(module_db_url, config_yaml(fix_file, folder / "marks")) as service:
        yield seed(service, fix_file)
