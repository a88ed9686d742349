"""The migrations produce exactly the tables in redrive.db.schema, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from redrive.db.migrate import head_revision, upgrade
from redrive.db.schema import metadata


def test_upgrade_head_equals_the_models(db_url: str) -> None:
    # db_url is already migrated by the fixture; upgrading again must be a no-op.
    upgrade(db_url)
    engine = create_engine(db_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert context.get_current_revision() == head_revision()
        assert compare_metadata(context, metadata) == []
    engine.dispose()
