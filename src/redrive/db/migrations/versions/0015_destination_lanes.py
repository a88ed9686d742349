"""a held destination's due rows are laned (dest_waiting), out of the range every other claim reads

A destination whose claims are held (its breaker open, an operator's maintenance, a ``Retry-After``) or capped by
its limits kept its due rows in ``ix_executions_due``'s claim range, the oldest there, so every claim for any other
destination stepped over all of them (40 ms a claim at 100,000 held rows). ``executions.dest_waiting`` lanes them,
``ix_executions_due`` gains it before ``run_at``, and ``destinations.laned_to`` says up to which ``run_at`` a
destination's rows are laned. Nothing is laned here: the first claim that finds a capped destination's backlog
lanes it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import redrive.db.schema

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NOT NULL with a constant default: PostgreSQL 11+ adds it without rewriting the table, SQLite with ALTER TABLE.
    op.add_column(
        "executions", sa.Column("dest_waiting", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.add_column("destinations", sa.Column("laned_to", redrive.db.schema.UtcDateTime(timezone=True), nullable=True))
    # Plain index statements, not a batch (on SQLite a batch would copy the whole table).
    op.drop_index("ix_executions_due", table_name="executions")
    op.create_index("ix_executions_due", "executions", ["status", "key_waiting", "dest_waiting", "run_at"])


def downgrade() -> None:
    op.drop_index("ix_executions_due", table_name="executions")
    op.create_index("ix_executions_due", "executions", ["status", "key_waiting", "run_at"])
    with op.batch_alter_table("destinations", schema=None) as batch_op:
        batch_op.drop_column("laned_to")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("dest_waiting")
