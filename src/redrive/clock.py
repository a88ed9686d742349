"""The one clock: services read the time through an injected ``Clock``, so tests can drive it.

A ``Clock`` returns the current time, aware and in UTC (what is stored and compared). Durations that must not jump
with the wall clock (pacing, sleeps) use the event loop's monotonic time, which asyncio already owns.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current time, aware and in UTC. ``utcnow`` is the real one; tests pass their own."""


def utcnow() -> datetime:
    """The current time, aware and in UTC."""
    return datetime.now(UTC)
