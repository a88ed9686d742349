"""Alembic, driven from code: upgrade to head, and check that a database is there."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from redrive.db.engine import make_engine
from redrive.errors import RedriveError

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x72_64_6D_69_67  # an advisory lock key held while migrating ("rdmig")


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at redrive's migrations and ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (creating the SQLite file when needed)."""
    engine = make_engine(url, writer=True, pool_size=1)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Nodes starting together would otherwise race to create the same tables; the second waits here,
                # then finds the schema at head.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest migration's revision id."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def assert_at_head(connection: Connection) -> None:
    """Raise a clear error when the database has not been migrated to the newest schema."""
    current = MigrationContext.configure(connection).get_current_revision()
    head = head_revision()
    if current != head:
        raise RedriveError(
            f"the database is at schema revision {current or 'none'} but this redrive needs {head}; "
            "run `redrive migrate`",
            code="schema_outdated",
            status=503,
        )
