"""Alembic environment: migrations run on the connection redrive hands over (or the configured URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from redrive.db.engine import make_engine
from redrive.db.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against ``config.attributes['connection']`` or a fresh engine for the configured URL."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "", writer=True, pool_size=1)
    with engine.begin() as fresh:
        _run(fresh)
    engine.dispose()


run_migrations_online()
