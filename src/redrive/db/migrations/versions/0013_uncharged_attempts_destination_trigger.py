"""attempts held by an open breaker are recorded but not charged (attempts.charged, executions.uncharged); a
templated destination's row names the trigger whose policy its claims apply (destinations.trigger)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 15:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Constant defaults: PostgreSQL rewrites nothing and SQLite adds them in place (plain ALTER TABLE: a batch
    # operation would copy the table for an expression default); every existing attempt was charged, no execution
    # has an uncharged one, and no destination row names a trigger.
    op.add_column("attempts", sa.Column("charged", sa.Boolean(), server_default=sa.text("true"), nullable=False))
    op.add_column("executions", sa.Column("uncharged", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("destinations", sa.Column("trigger", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("destinations", schema=None) as batch_op:
        batch_op.drop_column("trigger")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("uncharged")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("charged")
