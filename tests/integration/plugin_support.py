"""Helpers for the plugin tests: a plugin manager, plugins that record, raise or hang in every lifecycle hook, a clock
the test moves by hand, and a real service (uvicorn on loopback) built with them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from redrive.api.app import create_app
from redrive.extensions import AttemptRecorded, EventAccepted, ExecutionDeadLettered, ExecutionRecovered
from redrive.hookspecs import hookimpl
from redrive.settings import Settings
from redrive.triggers.config import RedriveConfig, parse_config
from support import Service, make_tokens, serve_app

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class ManualClock:
    """A clock that moves only when the test moves it (the service reads it from its own thread)."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def move_to(self, when: datetime) -> None:
        with self._lock:
            self._now = max(self._now, when)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


class Recorder:
    """Remembers every lifecycle report, in the order it arrived."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    @hookimpl
    async def redrive_event_accepted(self, event: EventAccepted) -> None:
        self.seen.append(("accepted", event))

    @hookimpl
    async def redrive_attempt_recorded(self, attempt: AttemptRecorded) -> None:
        self.seen.append(("attempt", attempt))

    @hookimpl
    async def redrive_execution_dead_lettered(self, execution: ExecutionDeadLettered) -> None:
        self.seen.append(("dead_lettered", execution))

    @hookimpl
    async def redrive_execution_recovered(self, execution: ExecutionRecovered) -> None:
        self.seen.append(("recovered", execution))


class Raises:
    """Raises in every lifecycle hook (async ones and a plain def)."""

    @hookimpl
    async def redrive_event_accepted(self, event: EventAccepted) -> None:
        raise RuntimeError("plugin bug")

    @hookimpl
    def redrive_attempt_recorded(self, attempt: AttemptRecorded) -> None:
        raise ValueError("plugin bug")

    @hookimpl
    async def redrive_execution_dead_lettered(self, execution: ExecutionDeadLettered) -> None:
        raise KeyError("plugin bug")

    @hookimpl
    async def redrive_execution_recovered(self, execution: ExecutionRecovered) -> None:
        raise RuntimeError("plugin bug")


class HangsAsync:
    """Never returns from any lifecycle hook (until cancelled)."""

    @hookimpl
    async def redrive_event_accepted(self, event: EventAccepted) -> None:
        await asyncio.Event().wait()

    @hookimpl
    async def redrive_attempt_recorded(self, attempt: AttemptRecorded) -> None:
        await asyncio.Event().wait()

    @hookimpl
    async def redrive_execution_dead_lettered(self, execution: ExecutionDeadLettered) -> None:
        await asyncio.Event().wait()

    @hookimpl
    async def redrive_execution_recovered(self, execution: ExecutionRecovered) -> None:
        await asyncio.Event().wait()


class HangsSync:
    """Blocks its thread in every lifecycle hook (plain defs) until the test releases it."""

    def __init__(self) -> None:
        self.release = threading.Event()

    @hookimpl
    def redrive_event_accepted(self, event: EventAccepted) -> None:
        self.release.wait()

    @hookimpl
    def redrive_attempt_recorded(self, attempt: AttemptRecorded) -> None:
        self.release.wait()

    @hookimpl
    def redrive_execution_dead_lettered(self, execution: ExecutionDeadLettered) -> None:
        self.release.wait()

    @hookimpl
    def redrive_execution_recovered(self, execution: ExecutionRecovered) -> None:
        self.release.wait()


@contextmanager
def serve(
    db_url: str, config: str | RedriveConfig, *, plugins: Any, clock: Any = None, **settings: Any
) -> Iterator[Service]:
    """Serve redrive with ``plugins`` (plugin objects, or a loaded plugin set) and ``clock`` on a free loopback port
    until the block ends; ``config`` is trigger-file YAML or a config already validated against the plugins."""
    options: dict[str, Any] = {"database_url": db_url, "poll_interval": 0.05, "shutdown_grace": 1.0}
    options.update(settings)
    extra = {"clock": clock} if clock is not None else {}
    parsed = parse_config(config) if isinstance(config, str) else config
    app = create_app(Settings(**options), parsed, plugins=plugins, **extra)
    with serve_app(app, make_tokens(db_url)) as service:
        yield service
