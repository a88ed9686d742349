"""Throttling of failed authentications per client address (a moving window from ``limits``, in memory, per process).

Only failures are counted, and only failures are refused: a request that bears a valid token is never throttled, so
a stranger sending bad tokens from an address cannot lock out the operators who share it (the dashboard's server, a
NAT, an office proxy). What the limiter slows down is guessing.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

FAILURE_LIMIT = 10
FAILURE_WINDOW = 60


class FailureLimiter:
    """Counts failed authentications per client address in a moving window of ``window`` seconds."""

    def __init__(self, limit: int = FAILURE_LIMIT, window: int = FAILURE_WINDOW) -> None:
        self._item = RateLimitItemPerSecond(limit, window)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def fail(self, address: str) -> int | None:
        """Record one failure for ``address``; None while under the limit, else the seconds until one is let again."""
        if self._limiter.hit(self._item, address):
            return None
        reset = self._limiter.get_window_stats(self._item, address).reset_time
        return max(1, math.ceil(reset - time.time()))
