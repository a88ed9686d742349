"""stat rollups: counters the stats read instead of scanning history, and where their backfill has got to

The tables are created empty; existing rows are not counted here, in one long transaction that would hold up ingest
on a big database, but by the service in the background, a batch of ids per short transaction (observe/backfill.py).
This migration only records, per source table, the id range the backfill must walk; rows added from now on are
counted live, and until the backfill is done the stats keep scanning the raw tables.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stat_rollups",
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("grain", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("trigger_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "metric",
            "grain",
            "bucket",
            "trigger_id",
            "kind",
            "status",
            "fingerprint",
            "shard",
            name=op.f("pk_stat_rollups"),
        ),
    )
    backfill = op.create_table(
        "rollup_backfill",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("next_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_rollup_backfill")),
    )
    connection = op.get_bind()
    rows = []
    for source in ("executions", "events"):  # an index read each: min and max of the primary key
        ids = sa.table(source, sa.column("id")).c.id
        low, high = connection.execute(sa.select(sa.func.min(ids), sa.func.max(ids))).one()
        rows.append({"source": source, "watermark": high or 0, "next_id": low or 1})
    op.bulk_insert(backfill, rows)


def downgrade() -> None:
    op.drop_table("rollup_backfill")
    op.drop_table("stat_rollups")
