"""destinations: each execution names what its action talks to; breakers and limits per destination

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import redrive.db.schema

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing on PostgreSQL; rows made before it have no destination (no
    # breaker or limit applies to them). The index starts with that column, so old rows add nothing to its lookups.
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("destination", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_executions_destination", ["destination", "status", "run_at"], unique=False)
    op.create_table(
        "destinations",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("forced", sa.String(length=16), nullable=True),
        sa.Column("restricted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("changed_at", redrive.db.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("reopen_at", redrive.db.schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column("cooldown", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("window_start", redrive.db.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("window_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("window_failed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("previous_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("previous_failed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("concurrency", sa.Integer(), nullable=True),
        sa.Column("rate", sa.Float(), nullable=True),
        sa.Column("tokens", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("tokens_at", redrive.db.schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column("ramp_start", redrive.db.schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column("paced_until", redrive.db.schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", redrive.db.schema.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_destinations")),
    )
    op.create_table(
        "breaker_transitions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("destination", sa.String(length=255), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("at", redrive.db.schema.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breaker_transitions")),
    )
    with op.batch_alter_table("breaker_transitions", schema=None) as batch_op:
        batch_op.create_index("ix_breaker_transitions_at", ["at"], unique=False)
        batch_op.create_index("ix_breaker_transitions_destination_at", ["destination", "at"], unique=False)


def downgrade() -> None:
    op.drop_table("breaker_transitions")
    op.drop_table("destinations")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_destination")
        batch_op.drop_column("destination")
