"""The text a datetime is stored as on SQLite (``schema.sqlite_text``) is the text SQLAlchemy's DATETIME writes.

Rows are compared and ranged by that text (``run_at <= :now``), so a single character apart would reorder the queue.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from redrive.db.schema import sqlite_text

_SQLALCHEMY = cast(Callable[[datetime], str], sqlite.DATETIME().bind_processor(sqlite.dialect()))  # type: ignore[no-untyped-call]


def sqlalchemys(value: datetime) -> str:
    """What SQLAlchemy's SQLite DATETIME writes for ``value`` as a naive UTC time (what ``UtcDateTime`` hands it)."""
    return _SQLALCHEMY(value.astimezone(UTC).replace(tzinfo=None))


class Stamp(datetime):
    """A subclass, as a test clock may hand out: orjson refuses it."""


@given(
    st.datetimes(
        min_value=datetime(1000, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]),
    )
)
def test_any_utc_moment_is_written_as_sqlalchemy_writes_it(value: datetime) -> None:
    assert sqlite_text(value) == sqlalchemys(value)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 7, 10, 0, 0, tzinfo=UTC),  # microseconds 0: orjson leaves them out
        datetime(2026, 12, 7, 10, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 12, 7, 11, 30, 0, 500, tzinfo=timezone(timedelta(hours=1, minutes=30))),  # converted to UTC
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        Stamp(2026, 12, 7, 10, 0, 0, 250, tzinfo=UTC),
    ],
)
def test_edges_are_written_as_sqlalchemy_writes_them(value: datetime) -> None:
    assert sqlite_text(value) == sqlalchemys(value)


def test_none_is_null_and_a_naive_datetime_is_refused() -> None:
    assert sqlite_text(None) is None
    with pytest.raises(ValueError, match="naive"):
        sqlite_text(datetime(2026, 12, 7, 10, 0, 0))
