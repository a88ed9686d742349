"""executions behind a busy ordering key are parked (key_waiting), and the queue's indexes leave them out of claims

An ordered trigger's rows all stayed ``pending`` and every claim walked the rows waiting behind each key's head
(``ix_executions_due`` held them all). ``key_waiting`` marks the rows behind a holder; ``ix_executions_due``,
``ix_executions_destination`` and ``ix_executions_ordering`` gain it so a claim's range holds unparked rows only.

The pending ordered rows already queued behind an earlier pending or running row of their key are parked here, so
that each key keeps exactly one unparked row in front. Rows behind a dead head of an ``on_dead_letter: block``
trigger are not (the migration does not know the config); the claim's head check still holds them back, and the
key's next holder parks and promotes as usual from then on.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 15:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = "ordering_key IS NOT NULL"

_PARK_QUEUED = sa.text(
    """
    UPDATE executions SET key_waiting = true
    WHERE status = 'pending' AND ordering_key IS NOT NULL AND EXISTS (
        SELECT 1 FROM executions AS earlier
        WHERE earlier.trigger_id = executions.trigger_id AND earlier.ordering_key = executions.ordering_key
          AND earlier.status IN ('pending', 'running') AND earlier.id < executions.id
    )
    """
)


def _indexes(with_parking: bool) -> None:
    # Plain index statements, not a batch: on SQLite a batch would copy the whole table (and its foreign keys
    # refuse the DROP TABLE of the copy once rows refer to it).
    waiting = ["key_waiting"] if with_parking else []
    for name in ("ix_executions_due", "ix_executions_destination", "ix_executions_ordering"):
        op.drop_index(name, table_name="executions")
    op.create_index("ix_executions_due", "executions", ["status", *waiting, "run_at"], unique=False)
    op.create_index("ix_executions_destination", "executions", ["destination", "status", *waiting, "run_at"])
    op.create_index(
        "ix_executions_ordering",
        "executions",
        ["trigger_id", "ordering_key", "status", *waiting, "id"],
        unique=False,
        sqlite_where=sa.text(_WHERE),
        postgresql_where=sa.text(_WHERE),
    )


def upgrade() -> None:
    # NOT NULL with a constant default: PostgreSQL 11+ adds it without rewriting the table, SQLite with ALTER TABLE.
    op.add_column("executions", sa.Column("key_waiting", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.execute(_PARK_QUEUED)
    _indexes(with_parking=True)


def downgrade() -> None:
    _indexes(with_parking=False)
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("key_waiting")
