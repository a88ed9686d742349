"""alerts: state per rule, transitions (each with its idempotency key), notifications with their delivery status

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 12:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import redrive.db.schema

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc() -> redrive.db.schema.UtcDateTime:
    return redrive.db.schema.UtcDateTime(timezone=True)


def upgrade() -> None:
    # New tables only: nothing existing is rewritten or locked.
    op.create_table(
        "alert_states",
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", _utc(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("clearing_since", _utc(), nullable=True),
        sa.Column("notified_at", _utc(), nullable=True),
        sa.Column("evaluated_at", _utc(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("rule", name=op.f("pk_alert_states")),
    )
    op.create_table(
        "alert_transitions",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "detail", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_transitions")),
        sa.UniqueConstraint("key", name=op.f("uq_alert_transitions_key")),
    )
    op.create_index("ix_alert_transitions_at", "alert_transitions", ["at"], unique=False)
    op.create_table(
        "alert_notifications",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("transition_id", Id, nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_at", _utc(), nullable=False),
        sa.Column("delivered_at", _utc(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["transition_id"],
            ["alert_transitions.id"],
            name=op.f("fk_alert_notifications_transition_id_alert_transitions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_notifications")),
    )
    op.create_index("ix_alert_notifications_due", "alert_notifications", ["status", "next_at"], unique=False)
    op.create_index(
        "ix_alert_notifications_transition", "alert_notifications", ["transition_id", "channel"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_alert_notifications_transition", table_name="alert_notifications")
    op.drop_index("ix_alert_notifications_due", table_name="alert_notifications")
    op.drop_table("alert_notifications")
    op.drop_index("ix_alert_transitions_at", table_name="alert_transitions")
    op.drop_table("alert_transitions")
    op.drop_table("alert_states")
