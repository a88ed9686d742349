"""The states an execution goes through (DESIGN.md section 2), and a destination's breaker, named once.

pending ──claim──▶ running ──▶ succeeded
   ▲                 │ ├──▶ failed_retryable (the dead-letter queue) ──replay──▶ replayed
   └── retry, sweep ─┘ └──▶ failed (permanent)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class ExecutionStatus(StrEnum):
    """Where an execution is; the value is what the database stores and the API shows."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED_RETRYABLE = "failed_retryable"
    FAILED = "failed"
    REPLAYED = "replayed"


# Groups of states as plain strings: they end up as JSON keys, and orjson takes only exact str keys.
TERMINAL: frozenset[str] = frozenset(
    s.value for s in (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.FAILED_RETRYABLE)
)
"""States an attempt can end an execution in for good (a replay makes a new execution)."""

DEAD: tuple[str, ...] = tuple(
    s.value for s in (ExecutionStatus.FAILED_RETRYABLE, ExecutionStatus.FAILED, ExecutionStatus.REPLAYED)
)
"""Failed for good, whether or not it was replayed since (what dead-letter retention keeps and purges)."""

FAILING: tuple[str, ...] = (ExecutionStatus.FAILED_RETRYABLE.value, ExecutionStatus.FAILED.value)
"""Failing now: dead letters and permanent failures; a replayed execution handed its outcome to its replay."""

BreakerState = Literal["closed", "half_open", "open"]
"""A destination's breaker (``redrive.destinations.breaker``), as the API shows it and filters by it."""
