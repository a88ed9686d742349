"""the ordering index leaves out succeeded rows: it holds the rows that can hold a key, not the history

ix_executions_ordering (trigger, key, status, key_waiting, id) held every ordered row ever made, and its searches
(the ingest's parking, the claim's head check, the completion's promotion) went through all of them: an ordered
trigger's history grew the index that each of its events searches several times. A succeeded row never holds its
key, and no search of the index looks for one, so it now leaves the index when it succeeds: its completion deletes
its entry instead of moving it, and the index holds the pending, running and dead rows (and the few replayed ones).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ["trigger_id", "ordering_key", "status", "key_waiting", "id"]


def _ordering_index(where: str) -> None:
    # Built from one scan of the table under a SHARE lock (the migrations run in one transaction, which rules out
    # CREATE INDEX CONCURRENTLY); the old one goes first, so its name is free.
    op.drop_index("ix_executions_ordering", table_name="executions")
    op.create_index(
        "ix_executions_ordering",
        "executions",
        _COLUMNS,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def upgrade() -> None:
    _ordering_index("ordering_key IS NOT NULL AND status <> 'succeeded'")


def downgrade() -> None:
    _ordering_index("ordering_key IS NOT NULL")
