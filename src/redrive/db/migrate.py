"""Alembic, driven from code: upgrade to head, and check that a database is there."""

from __future__ import annotations

from pathlib import Path

import stamina
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from redrive.db.engine import is_sqlite, make_engine
from redrive.errors import DatabaseEncoding, SchemaOutdated

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x72_64_6D_69_67  # an advisory lock key held while migrating ("rdmig")
# Server encodings that take every string redrive writes: UTF8, and SQL_ASCII (stores bytes as given, the default of
# a cluster initialised under the C locale). Any other (LATIN1, ...) would reject the first emoji in a payload.
USABLE_ENCODINGS = frozenset({"UTF8", "SQL_ASCII"})


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at redrive's migrations and ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, *, wait: float = 0.0) -> None:
    """Bring the database at ``url`` to the newest schema (creating the SQLite file when needed).

    ``wait``: seconds to keep trying while a PostgreSQL server cannot be reached (nodes and their database often
    start together); each retry is logged, and the last error is raised when the time is up.
    """
    if wait <= 0 or is_sqlite(url):
        _upgrade(url)
        return
    for attempt in stamina.retry_context(on=OperationalError, attempts=None, timeout=wait, wait_max=5.0):
        with attempt:
            _upgrade(url)


def _upgrade(url: str) -> None:
    engine = make_engine(url, writer=True, pool_size=1)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                assert_usable_encoding(connection)
                # Nodes starting together would otherwise race to create the same tables; the second waits here,
                # then finds the schema at head.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def assert_usable_encoding(connection: Connection) -> None:
    """Refuse a PostgreSQL database that cannot store every payload, before anything is written to it."""
    encoding = connection.exec_driver_sql("SHOW server_encoding").scalar_one()
    if encoding not in USABLE_ENCODINGS:
        database = connection.engine.url.database
        raise DatabaseEncoding(
            f"the PostgreSQL database {database!r} uses the {encoding} encoding, which cannot store every payload; "
            f"redrive needs UTF8: CREATE DATABASE {database} ENCODING 'UTF8' TEMPLATE template0",
        )


def head_revision() -> str | None:
    """The newest migration's revision id."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def assert_at_head(connection: Connection) -> None:
    """Raise a clear error when the database has not been migrated to the newest schema."""
    current = MigrationContext.configure(connection).get_current_revision()
    head = head_revision()
    if current != head:
        raise SchemaOutdated(
            f"the database is at schema revision {current or 'none'} but this redrive needs {head}; "
            "run `redrive migrate`",
        )
