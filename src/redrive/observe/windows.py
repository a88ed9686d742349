"""Time windows for the stats API: parse ``since=15m`` and ``bucket=5m``, and lay out aligned buckets.

A window or a bucket is a whole number followed by a unit and nothing else, ``^[0-9]+[smhd]$``: no spaces, no
sign, no fraction, a lower-case unit. Windows reach back at most :data:`MAX_WINDOW`; buckets are 1 second to 1 day
wide. Bucket starts are multiples of the bucket width since the Unix epoch (UTC), so the same range always yields
the same buckets, and a chart can fill the empty ones with zeros. A range never spans more than
:data:`MAX_BUCKETS` buckets.

Everything is pure: the caller passes the range's ends (its ``now``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = [
    "MAX_BUCKET",
    "MAX_BUCKETS",
    "MAX_WINDOW",
    "MIN_BUCKET",
    "WindowError",
    "bucket_starts",
    "floor_time",
    "parse_bucket",
    "parse_window",
]

MAX_WINDOW = timedelta(days=7)
"""Longest ``since`` window the stats API serves."""
MIN_BUCKET = timedelta(seconds=1)
MAX_BUCKET = timedelta(days=1)
MAX_BUCKETS = 2000
"""Most buckets one range may span: a day of 1-minute buckets fits (1441), a week of 5-minute ones (2017) not."""

_SYNTAX = re.compile(r"([0-9]+)([smhd])")  # ASCII digits only: int() would also take '١٢'
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SECOND = timedelta(seconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SHOWN = 20  # characters of a rejected value quoted back in the error


class WindowError(ValueError):
    """A window, bucket or range the stats API cannot serve; the message states the rule with examples."""


def _describe(span: timedelta) -> str:
    seconds = span // _SECOND
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}" if count == 1 else f"{count} {unit}s"
    return f"{span.total_seconds():g} seconds"


def _seconds(value: str, maximum: timedelta) -> int | None:
    """Seconds for a well-formed value between 1 second and ``maximum``, else ``None``."""
    match = _SYNTAX.fullmatch(value)
    if match is None:
        return None
    digits, unit = match.group(1).lstrip("0"), match.group(2)
    limit = maximum // _SECOND
    # More digits than the limit has can never fit; checking first keeps int() and timedelta() away from
    # numbers that would overflow (or exceed int's 4300-digit conversion limit).
    if not digits or len(digits) > len(str(limit)):
        return None
    seconds = int(digits) * _UNIT_SECONDS[unit]
    return seconds if seconds <= limit else None


def _rejected(value: str) -> str:
    shown = value if len(value) <= _SHOWN else value[:_SHOWN] + "…"
    return f"(got {shown!r})"


def parse_window(value: str, *, maximum: timedelta = MAX_WINDOW) -> timedelta:
    """Parse a ``since`` window such as ``15m``, ``1h``, ``24h`` or ``7d``; raise WindowError otherwise."""
    seconds = _seconds(value, maximum)
    if seconds is None:
        raise WindowError(
            "since must look like '15m', '1h', '24h', '7d': a whole number > 0 followed by s, m, h or d, "
            f"at most {_describe(maximum)} {_rejected(value)}"
        )
    return timedelta(seconds=seconds)


def parse_bucket(value: str) -> timedelta:
    """Parse a bucket width such as ``10s``, ``1m``, ``5m``, ``1h`` or ``1d``; raise WindowError otherwise."""
    seconds = _seconds(value, MAX_BUCKET)
    if seconds is None:
        raise WindowError(
            "bucket must look like '10s', '1m', '5m', '1h', '1d': a whole number > 0 followed by s, m, h or d, "
            f"from {_describe(MIN_BUCKET)} to {_describe(MAX_BUCKET)} {_rejected(value)}"
        )
    return timedelta(seconds=seconds)


def floor_time(moment: datetime, bucket: timedelta) -> datetime:
    """Return the start of the bucket holding ``moment``: the latest multiple of ``bucket`` since the epoch (UTC)."""
    if bucket <= timedelta(0):
        raise WindowError(f"a bucket must be longer than zero, not {bucket}")
    # A naive moment is taken as UTC. The result keeps the moment's zone; only the alignment is in UTC.
    epoch = _EPOCH if moment.tzinfo is not None else _EPOCH.replace(tzinfo=None)
    return moment - (moment - epoch) % bucket


def bucket_starts(since: datetime, until: datetime, bucket: timedelta) -> list[datetime]:
    """Return the aligned starts of every bucket that overlaps ``[since, until]``, oldest first."""
    if until < since:
        raise WindowError(f"the range ends ({until.isoformat()}) before it starts ({since.isoformat()})")
    first = floor_time(since, bucket)
    count = (floor_time(until, bucket) - first) // bucket + 1
    if count > MAX_BUCKETS:
        raise WindowError(
            f"{count} buckets of {_describe(bucket)} is more than the {MAX_BUCKETS} allowed: "
            "use a larger bucket or a shorter window"
        )
    return [first + bucket * index for index in range(count)]
