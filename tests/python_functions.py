"""Functions the ``python`` action calls in the tests (imported by reference: ``python_functions:NAME``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import redrive

CALLS: list[dict[str, Any]] = []
"""Every successful call, in order: the tests read what each function was given."""


async def record(event: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    CALLS.append({"event": event, "args": list(args), "kwargs": kwargs})
    return {"stored": event["payload"]["order"]}


def record_in_a_thread(event: dict[str, Any], *args: Any, **kwargs: Any) -> str:
    CALLS.append({"event": event, "args": list(args), "kwargs": kwargs, "thread": threading.current_thread().name})
    return "done in a thread"


async def busy(event: dict[str, Any]) -> None:
    raise redrive.TransientError("the ledger is busy", code="ledger_busy", retry_after=0.2)


async def refuse(event: dict[str, Any]) -> None:
    raise redrive.PermanentError("order is cancelled", code="order_cancelled")


async def crash(event: dict[str, Any]) -> None:
    raise ValueError(f"bad order {event['payload']['order']}")


async def slow(event: dict[str, Any]) -> None:
    import asyncio

    await asyncio.sleep(30)


def slow_in_a_thread(event: dict[str, Any]) -> None:
    time.sleep(1.0)


NOT_CALLABLE = 42
