"""executions carry the ordering key their trigger rendered for them, indexed for the ordered claim's head lookup

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 12:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = "ordering_key IS NOT NULL"


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing on PostgreSQL; rows made before it are unordered.
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ordering_key", sa.String(length=255), nullable=True))
    # Every existing row has a NULL key, so the partial index is built empty (one scan of the table under a SHARE
    # lock; redrive's migrations run in one transaction, which rules out CREATE INDEX CONCURRENTLY).
    op.create_index(
        "ix_executions_ordering",
        "executions",
        ["trigger_id", "ordering_key", "status", "id"],
        sqlite_where=sa.text(_WHERE),
        postgresql_where=sa.text(_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_executions_ordering", table_name="executions")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("ordering_key")
