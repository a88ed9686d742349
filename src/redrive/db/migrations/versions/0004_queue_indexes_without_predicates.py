"""the queue's indexes lead with status instead of a partial-index predicate

A claim binds ``status = :status`` as a parameter; neither SQLite nor a generic PostgreSQL plan can prove that a
bound parameter satisfies a partial index's ``WHERE status = 'pending'``, so SQLite sorted every pending row on each
claim. ``(status, run_at)`` serves the claim (and ``(status, lease_expires_at)`` the sweeper) whatever the binding.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_due")
        batch_op.drop_index("ix_executions_lease")
        batch_op.create_index("ix_executions_due", ["status", "run_at"], unique=False)
        batch_op.create_index("ix_executions_lease", ["status", "lease_expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_lease")
        batch_op.drop_index("ix_executions_due")
        batch_op.create_index(
            "ix_executions_lease",
            ["lease_expires_at"],
            unique=False,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )
        batch_op.create_index(
            "ix_executions_due",
            ["run_at"],
            unique=False,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
