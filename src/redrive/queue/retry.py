"""Decide what happens after an attempt: succeed, retry later, dead-letter, or fail for good.

The decision is a pure value: :func:`decide` takes the trigger's :class:`RetryPolicy`, the attempt number,
the classified :class:`~redrive.classify.Failure` (or ``None`` on success) and a random number the caller
draws, and returns a :class:`RetryDecision` that the worker applies. Backoff is exponential with optional full
jitter (AWS, "Exponential Backoff And Jitter"); a ``Retry-After`` from the target is a floor on the delay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from redrive.failures.classify import Failure

__all__ = ["RetryDecision", "RetryPolicy", "Verdict", "decide"]

Verdict = Literal["succeeded", "retry", "dead_letter", "failed"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with optional full jitter (AWS 'Exponential Backoff And Jitter')."""

    max_attempts: int = 8
    base: float = 2.0
    factor: float = 2.0
    max_delay: float = 600.0
    jitter: Literal["full", "none"] = "full"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base < 0 or self.max_delay < 0:
            raise ValueError("base and max_delay must not be negative")
        if self.factor < 1:
            raise ValueError(f"factor must be at least 1, got {self.factor}")
        if self.jitter not in ("full", "none"):
            raise ValueError(f"jitter must be 'full' or 'none', got {self.jitter!r}")

    def ceiling(self, attempt: int) -> float:
        """Return the un-jittered delay after failed attempt ``attempt`` (1-based), at most ``max_delay``."""
        exponent = max(attempt - 1, 0)
        try:
            raw = self.base * self.factor**exponent
        except OverflowError:  # float ** int overflows long before attempt counts get silly
            return self.max_delay
        return min(self.max_delay, raw)

    def backoff(self, attempt: int, rand: float) -> float:
        """Return the delay in seconds after failed attempt ``attempt``; ``rand`` is uniform in [0, 1)."""
        ceiling = self.ceiling(attempt)
        if self.jitter == "none":
            return ceiling
        return ceiling * min(max(rand, 0.0), 1.0)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What the worker should do with the execution after an attempt."""

    verdict: Verdict
    delay: float | None = None  # seconds until the next attempt, only for "retry"


def decide(policy: RetryPolicy, *, attempt: int, failure: Failure | None, rand: float) -> RetryDecision:
    """Turn the outcome of attempt ``attempt`` (1-based) into a decision under ``policy``."""
    if failure is None:
        return RetryDecision("succeeded")
    if failure.category == "permanent":
        return RetryDecision("failed")
    if attempt >= policy.max_attempts:
        return RetryDecision("dead_letter")
    delay = max(policy.backoff(attempt, rand), failure.retry_after or 0.0)
    return RetryDecision("retry", delay)
