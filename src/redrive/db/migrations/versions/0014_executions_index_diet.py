"""executions' secondary indexes become partial on the column they look up, so a row enters only those that can find it

Every write of an execution (insert, lease, completion) changes its status, so none is a HOT update and each put an
entry in all of the table's indexes: 31 index insertions for an event run once. Now a row enters the lease index only
while leased, the finished index once finished, and the fingerprint, bulk-replay and replay-of indexes only when it
has one; ix_executions_status_updated, which no query reads since the stats moved to rollups, goes. A successful
attempt no longer enters ix_attempts_fingerprint_finished.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 15:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (index, table, columns, the column whose NULL rows the partial index leaves out)
_PARTIAL = (
    ("ix_executions_lease", "executions", ["status", "lease_expires_at"], "lease_expires_at"),
    ("ix_executions_finished", "executions", ["status", "finished_at", "action_kind"], "finished_at"),
    ("ix_executions_fingerprint", "executions", ["fingerprint", "status"], "fingerprint"),
    ("ix_executions_bulk_replay", "executions", ["bulk_replay_id", "status"], "bulk_replay_id"),
    ("ix_executions_replay_of", "executions", ["replay_of"], "replay_of"),
    ("ix_attempts_fingerprint_finished", "attempts", ["fingerprint", "finished_at"], "fingerprint"),
)


def upgrade() -> None:
    # Each partial index is built from one scan of its table under a SHARE lock (redrive's migrations run in one
    # transaction, which rules out CREATE INDEX CONCURRENTLY); the old one goes first, so its name is free.
    op.drop_index("ix_executions_status_updated", table_name="executions")
    for name, table, columns, column in _PARTIAL:
        where = sa.text(f"{column} IS NOT NULL")
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns, sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name, table, columns, _ in _PARTIAL:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
    op.create_index("ix_executions_status_updated", "executions", ["status", "updated_at"])
