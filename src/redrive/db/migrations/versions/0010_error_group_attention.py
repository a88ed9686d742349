"""error groups can be acknowledged (who, when, a note) and snoozed (until a time or until the group's total
reaches a count), so an operator silences repeated alerts without resolving the group

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 12:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import redrive.db.schema

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("acknowledged_at", "acknowledged_by", "acknowledge_note", "snoozed_until", "snooze_until_total")


def upgrade() -> None:
    # Nullable, no default: PostgreSQL rewrites nothing and SQLite adds them in place (no table copy), so ingest
    # is not held up; every existing group starts neither acknowledged nor snoozed.
    with op.batch_alter_table("error_groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acknowledged_at", redrive.db.schema.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acknowledged_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("acknowledge_note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("snoozed_until", redrive.db.schema.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("snooze_until_total", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("error_groups", schema=None) as batch_op:
        for column in reversed(COLUMNS):
            batch_op.drop_column(column)
