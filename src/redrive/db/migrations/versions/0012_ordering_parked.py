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
    waiting = ["key_waiting"] if with_parking else []
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_due")
        batch_op.drop_index("ix_executions_destination")
        batch_op.drop_index("ix_executions_ordering")
        batch_op.create_index("ix_executions_due", ["status", *waiting, "run_at"], unique=False)
        batch_op.create_index("ix_executions_destination", ["destination", "status", *waiting, "run_at"], unique=False)
        batch_op.create_index(
            "ix_executions_ordering",
            ["trigger_id", "ordering_key", "status", *waiting, "id"],
            unique=False,
            sqlite_where=sa.text(_WHERE),
            postgresql_where=sa.text(_WHERE),
        )


def upgrade() -> None:
    # NOT NULL with a constant default: PostgreSQL 11+ adds it without rewriting the table.
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_waiting", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.execute(_PARK_QUEUED)
    _indexes(with_parking=True)


def downgrade() -> None:
    _indexes(with_parking=False)
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("key_waiting")
