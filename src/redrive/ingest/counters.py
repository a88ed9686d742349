"""Per-trigger, per-UTC-day counters of things that are not rows of their own (rejected deliveries, for one)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from sqlalchemy.engine import Connection

from redrive.db.engine import dialect_insert
from redrive.db.schema import daily_counters


def increment(trigger_id: int, day: date, name: str) -> Callable[[Connection], None]:
    """A write job adding one to the counter ``name`` of ``trigger_id`` on ``day``."""

    def job(connection: Connection) -> None:
        insert = dialect_insert(connection)(daily_counters).values(trigger_id=trigger_id, day=day, name=name, value=1)
        connection.execute(
            insert.on_conflict_do_update(
                index_elements=["trigger_id", "day", "name"], set_={"value": daily_counters.c.value + 1}
            )
        )

    return job
