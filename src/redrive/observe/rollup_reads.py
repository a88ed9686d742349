"""Reading the rollups: a window as the fewest whole buckets, and the raw rows at its ragged edges.

A window ``[since, until]`` is cut in three: the partial minute at its start (``since`` up to the next whole minute)
and the partial minute at its end (the last whole minute up to ``until``) are counted from the raw tables, through
the same index ranges the figures always used, and hold at most a minute of rows each; everything in between is
whole minutes, and ``cover`` lays it out as whole days where it can, whole hours around them, then five-minute spans
and minutes at the ends, so a week is at most 7 + 2 x 23 + 2 x 11 + 2 x 4 bucket rows per key whatever the history
holds. A window open at its
end (``until=None``: everything since) needs no end edge: every bucket after ``since`` is whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, String, and_, cast, func, literal, or_, select, union_all
from sqlalchemy.engine import Connection

from redrive.db.schema import stat_rollups
from redrive.observe.rollups import ALL_TIME, DAY, MINUTE, TIMED

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FOREVER = 2**62  # the end of an open window, in seconds since the epoch

Piece = tuple[int, int, int]  # grain, first bucket start, end (exclusive), all in seconds since the epoch


def seconds(moment: datetime) -> int:
    """``moment`` in whole seconds since the epoch, rounded down."""
    return (moment - _EPOCH) // timedelta(seconds=1)


def at(second: int) -> datetime:
    """The UTC time ``second`` seconds after the epoch."""
    return _EPOCH + timedelta(seconds=second)


def _up(value: int, grain: int) -> int:
    return -(-value // grain) * grain


def cover(start: int, end: int, grains: Sequence[int] = TIMED) -> list[Piece]:
    """Tile ``[start, end)`` (multiples of the finest grain) with the coarsest of ``grains`` that fit, oldest first."""
    if start >= end:
        return []
    *finer, grain = sorted(grains)
    first, last = _up(start, grain), end - end % grain if end < FOREVER else end
    if not finer:
        return [(grain, start, end)]
    if first >= last:
        return cover(start, end, finer)
    return [*cover(start, first, finer), (grain, first, last), *cover(last, end, finer)]


@dataclass(frozen=True, slots=True)
class Split:
    """A window cut into its raw edges and its whole minutes (``whole`` is ``[start, end)`` in epoch seconds)."""

    head: tuple[datetime, datetime] | None  # [since, first whole minute): raw
    whole: tuple[int, int] | None
    tail: datetime | None  # [last whole minute, until]: raw (None when the window is open or all raw)


def _minute_up(moment: datetime) -> int:
    """The first whole minute at or after ``moment``, in epoch seconds."""
    floor = seconds(moment) - seconds(moment) % MINUTE
    return floor if at(floor) == moment else floor + MINUTE


def split(since: datetime, until: datetime | None) -> Split:
    """Cut ``[since, until]`` (``until=None``: open) into raw edges and whole minutes."""
    start = _minute_up(since)
    head = (since, at(start)) if at(start) > since else None
    if until is None:
        return Split(head, (start, FOREVER), None)
    end = seconds(until) - seconds(until) % MINUTE
    if start >= end:
        return Split((since, until), None, None)
    return Split(head, (start, end), at(end))


def _total() -> ColumnElement[int]:
    """``sum(value)`` as a bigint: PostgreSQL sums a bigint column to ``numeric``, which the driver hands back as a
    ``Decimal`` per row (a visible cost over the thousands of rows of a day in five-minute buckets)."""
    return cast(func.sum(stat_rollups.c.value), BigInteger)


def summed(metric: str, pieces: Sequence[Piece], by: Sequence[str], *where: Any, bucketed: bool = True) -> Any:
    """``SELECT grain, bucket, <by...>, sum(value)`` of ``metric`` over ``pieces``: one index range per piece
    (``bucketed=False``: ``SELECT <by...>, sum(value)``, summed over the buckets in the database)."""
    columns = [stat_rollups.c[name] for name in by]
    keys = [stat_rollups.c.grain, stat_rollups.c.bucket, *columns] if bucketed else columns
    parts = [
        select(*keys, _total().label("n"))
        .where(
            stat_rollups.c.metric == metric,
            stat_rollups.c.grain == grain,
            stat_rollups.c.bucket >= first,
            stat_rollups.c.bucket < end,
            *where,
        )
        .group_by(*keys)
        for grain, first, end in pieces
    ]
    return parts[0] if len(parts) == 1 else union_all(*parts)


def totals(
    connection: Connection, metric: str, pieces: Sequence[Piece], by: Sequence[str], *where: Any
) -> dict[Any, int]:
    """The sums of ``metric`` over ``pieces`` per value of the ``by`` columns (a tuple key when several)."""
    found: dict[Any, int] = {}
    if not pieces:
        return found
    for row in connection.execute(summed(metric, pieces, by, *where, bucketed=False)).all():
        key = tuple(row[:-1]) if len(by) != 1 else row[0]
        found[key] = found.get(key, 0) + int(row[-1] or 0)
    return found


def total_of(connection: Connection, metric: str, pieces: Sequence[Piece], *where: Any) -> int:
    """The sum of ``metric`` over ``pieces``."""
    return sum(totals(connection, metric, pieces, (), *where).values())


def keyed(metric: str, pieces: Sequence[Piece], by: str | None = None, *where: Any) -> Select[Any]:
    """``SELECT sum(value), <by>`` of ``metric`` over ``pieces`` (``by=None``: the one total), a part for
    ``parts``; the pieces are days or the all-time bucket here, so one range each, summed in the database."""
    key = stat_rollups.c[by] if by is not None else literal("")
    ranges = [
        and_(stat_rollups.c.grain == grain, stat_rollups.c.bucket >= first, stat_rollups.c.bucket < end)
        for grain, first, end in pieces
    ]
    query = select(_total(), key).where(stat_rollups.c.metric == metric, or_(*ranges), *where)
    return query.group_by(key) if by is not None else query


def parts(connection: Connection, named: dict[str, Select[Any]]) -> dict[str, dict[str, int]]:
    """Run several ``SELECT n, key`` statements as one ``UNION ALL`` (one round trip); per name, ``{key: n}`` with
    the keys as text (a part with no row is an empty dict)."""
    arms = [
        select(literal(name).label("part"), cast(query.c[1], String).label("key"), query.c[0].label("n"))
        for name, query in ((name, statement.subquery(name)) for name, statement in named.items())
    ]
    found: dict[str, dict[str, int]] = {name: {} for name in named}
    for part, key, n in connection.execute(union_all(*arms)).all():
        if n is not None:
            found[part][key] = found[part].get(key, 0) + int(n)
    return found


def since_day(moment: datetime) -> list[Piece]:
    """Every day bucket from ``moment``'s (a midnight) on."""
    return [(DAY, seconds(moment), FOREVER)]


ALL = [(ALL_TIME, 0, 1)]
"""The one all-time bucket."""
