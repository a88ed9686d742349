"""The destinations' statements on both databases: a forced change and its audit row, retention of transitions,
and the limits' rows made before the first claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from redrive.db.database import Database
from redrive.db.schema import audit_log, breaker_transitions, destinations
from redrive.destinations.breaker import Policy
from redrive.destinations.store import TRANSITIONS_RETENTION, force_job, purge_transitions, sync_limits

NOW = datetime(2031, 1, 1, tzinfo=UTC)


def test_transitions_are_kept_for_their_retention_and_limits_rows_are_restricted(db_url: str) -> None:
    db = Database(db_url)
    try:
        db.write_sync(force_job("https://old.example:443", "open", "ops", NOW - TRANSITIONS_RETENTION - timedelta(1)))
        db.write_sync(force_job("https://new.example:443", "open", "ops", NOW))
        assert db.write_sync(purge_transitions(NOW - TRANSITIONS_RETENTION)) == 1
        db.write_sync(sync_limits({"crm": Policy(None, rate=5.0)}, NOW))
        kept = db.read_sync(lambda c: list(c.execute(select(breaker_transitions.c.destination)).scalars()))
        audited = db.read_sync(lambda c: c.execute(select(func.count()).select_from(audit_log)).scalar_one())
        crm = db.read_sync(lambda c: c.execute(select(destinations).where(destinations.c.name == "crm")).one())
    finally:
        db.close()
    assert kept == ["https://new.example:443"]
    assert audited == 2  # the audit log is not the transitions' history: it keeps its own retention
    assert (crm.state, crm.restricted) == ("closed", True)
