"""Wake-ups across processes: PostgreSQL ``LISTEN/NOTIFY`` on one channel per purpose.

A process that makes work due (ingest, replay, resume) sets its ``Wakeup``: the local worker wakes at once, and a
``Notifier`` sends one ``NOTIFY`` on the queue channel after the commit, coalescing bursts (many events committed
while a ``NOTIFY`` is on the wire cost one more ``NOTIFY``, not one each). Every process runs a ``Listener`` that
turns notifications into local wake-ups. Nothing here is needed for correctness: the worker's slow poll still
finds everything; NOTIFY only makes an idle worker start at once. On SQLite (one process) none of this runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import psycopg
import structlog
from sqlalchemy.engine import make_url

log = structlog.get_logger("redrive.notify")

QUEUE_CHANNEL = "redrive_queue"
RECONNECT_DELAY = 1.0
CONNECT_TIMEOUT = 5


def libpq_url(url: str) -> str:
    """The libpq form of an SQLAlchemy PostgreSQL URL (``postgresql+psycopg://`` becomes ``postgresql://``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Wakeup(asyncio.Event):
    """An ``asyncio.Event`` whose ``set`` also announces the wake-up to other processes, when one is wired."""

    def __init__(self) -> None:
        super().__init__()
        self.announce: Callable[[], None] | None = None

    def set(self) -> None:
        """Wake this process's waiters and tell the other processes."""
        super().set()
        if self.announce is not None:
            self.announce()

    def set_local(self) -> None:
        """Wake this process's waiters only (a notification from elsewhere)."""
        super().set()


class Notifier:
    """Sends ``NOTIFY`` on a channel from its own connection; requests made while one is sent are coalesced."""

    def __init__(self, url: str) -> None:
        self._url = libpq_url(url)
        self._wake = False
        self._messages: list[tuple[str, str]] = []
        self._requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the sending task."""
        self._task = asyncio.create_task(self._run(), name="redrive-notifier")

    def wake(self) -> None:
        """Ask for one ``NOTIFY`` on the queue channel (non-blocking; requests waiting to be sent are merged)."""
        self._wake = True
        self._requested.set()

    def publish(self, channel: str, payload: str) -> None:
        """Queue one message on ``channel`` (each is sent, in order)."""
        self._messages.append((channel, payload))
        self._requested.set()

    async def stop(self) -> None:
        """Stop sending (pending wake-ups are dropped: the poll covers them)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                ) as connection:
                    while True:
                        await self._requested.wait()
                        self._requested.clear()
                        wake, self._wake = self._wake, False
                        messages, self._messages = self._messages, []
                        if wake:
                            messages.insert(0, (QUEUE_CHANNEL, ""))
                        for channel, payload in messages:
                            await connection.execute("SELECT pg_notify(%s, %s)", (channel, payload))
            except psycopg.Error as exc:
                log.warning("notifier_disconnected", error=str(exc).strip())
                await asyncio.sleep(RECONNECT_DELAY)


Handler = Callable[[str], None]


class Listener:
    """Listens on channels from its own connection and calls each channel's handler with the payload."""

    def __init__(self, url: str, handlers: dict[str, Handler], *, on_connect: Callable[[], None] | None = None) -> None:
        self._url = libpq_url(url)
        self._handlers = handlers
        self._on_connect = on_connect
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        """Start listening."""
        self._task = asyncio.create_task(self._run(), name="redrive-listener")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                ) as connection:
                    for channel in self._handlers:
                        await connection.execute(f'LISTEN "{channel}"')
                    self.connected.set()
                    if self._on_connect is not None:
                        self._on_connect()  # anything sent while we were away: the poll would find it; look now
                    while True:
                        async for notice in connection.notifies(timeout=5.0):
                            self._handlers[notice.channel](notice.payload)
                        await connection.execute("SELECT 1")  # a quiet connection may be a dead one
            except psycopg.Error as exc:
                self.connected.clear()
                log.warning("listener_disconnected", error=str(exc).strip())
                await asyncio.sleep(RECONNECT_DELAY)
