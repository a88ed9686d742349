"""A sliding-window count of failed authentications per client address (per process, in memory)."""

from __future__ import annotations

import time
from collections import defaultdict, deque

from redrive.errors import RedriveError

FAILURE_LIMIT = 10
FAILURE_WINDOW = 60.0


class TooManyFailures(RedriveError):
    code = "too_many_failures"
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed authentications from this address; retry in {retry_after} s")
        self.headers = {"Retry-After": str(retry_after)}


class FailureLimiter:
    """Counts failed authentications per client address in a sliding window."""

    def __init__(self, limit: int = FAILURE_LIMIT, window: float = FAILURE_WINDOW) -> None:
        self._limit = limit
        self._window = window
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures[address]
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        return failures

    def check(self, address: str) -> None:
        """Raise TooManyFailures while ``address`` is over the limit."""
        now = time.monotonic()
        failures = self._recent(address, now)
        if len(failures) >= self._limit:
            raise TooManyFailures(max(1, int(failures[0] + self._window - now) + 1))

    def fail(self, address: str) -> None:
        """Record one failure for ``address``."""
        self._recent(address, time.monotonic()).append(time.monotonic())
