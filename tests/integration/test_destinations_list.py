"""Listing every destination (the API's ``GET /api/v1/destinations``, the CLI's ``destinations ls``, the dashboard's
Destinations page): a row per destination ever seen, one per customer's endpoint when a trigger's URL is templated,
can be far more than one statement's parameters may be (PostgreSQL's protocol takes 65,535). The list counted each
destination's queued executions with every name bound as a parameter, and failed past that."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from plans import seed_trigger_and_event
from redrive.db.database import Database
from redrive.destinations.views import list_destinations

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]

NOW = datetime(2031, 1, 1, tzinfo=UTC)
DESTINATIONS = 66_000
QUEUED_AT = "https://customer-7.example:443"


def test_more_destinations_than_a_statement_may_bind_are_listed_with_their_queued_work(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO destinations (name, state, restricted, changed_at, window_start, updated_at) "
                    "SELECT 'https://customer-' || n || '.example:443', 'closed', false, :at, :at, :at "
                    "FROM generate_series(1, :count) AS n"
                ),
                {"at": NOW, "count": DESTINATIONS},
            )
            trigger_id, event_id = seed_trigger_and_event(connection, NOW)
            connection.execute(
                text(
                    "INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
                    "updated_at, destination) VALUES (:event, :trigger, 'http', 'pending', 0, :at, :at, :at, :to)"
                ),
                {"event": event_id, "trigger": trigger_id, "at": NOW, "to": QUEUED_AT},
            )
    finally:
        engine.dispose()
    db = Database(db_url)
    try:
        items = db.read_sync(list_destinations([], NOW))
    finally:
        db.close()
    assert len(items) == DESTINATIONS
    pending = {item["name"]: item["pending"] for item in items if item["pending"]}
    assert pending == {QUEUED_AT: 1}
