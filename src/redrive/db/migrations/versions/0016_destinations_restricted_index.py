"""the restricted destinations are read from an index of their own

Every claim reads the destinations whose breaker is open or probing, or that are limited, ramping or paced (or
leaves them out of its lease, reading the same rows). They are a few, but the table holds a row for every destination
that ever counted an outcome: one per customer's endpoint when a trigger's URL is templated. Without an index each
claim read them all (at 100,000 rows a claim that found nothing took 10.2 ms on SQLite and 3.8 ms on
PostgreSQL, 0.23 and 0.92 ms with this index: ``benchmarks/destination_rows.py``). A partial index holds the
restricted ones only.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 01:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_destinations_restricted",
        "destinations",
        ["name"],
        sqlite_where=sa.text("restricted IS 1"),
        postgresql_where=sa.text("restricted IS true"),
    )


def downgrade() -> None:
    op.drop_index("ix_destinations_restricted", table_name="destinations")
