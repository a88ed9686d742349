"""metrics history: one sample per minute for the System page's charts; nodes report leadership and memory

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import redrive.db.schema

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metrics_history",
        sa.Column("at", redrive.db.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("queue_depth", sa.Integer(), nullable=False),
        sa.Column("oldest_pending_age_seconds", sa.Float(), nullable=False),
        sa.Column("dlq_size", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("at", name=op.f("pk_metrics_history")),
    )
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leader", sa.Boolean(), server_default=sa.text("false"), nullable=False))
        batch_op.add_column(sa.Column("rss_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_column("rss_bytes")
        batch_op.drop_column("leader")
    op.drop_table("metrics_history")
