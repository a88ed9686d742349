"""Wake-ups across processes: PostgreSQL ``LISTEN/NOTIFY`` on one channel per purpose.

A process that makes work due (ingest, replay, resume) calls its ``Wakeup.work_due``: the local worker wakes at
once, and, when another process may be listening (``redrive.node.presence``), a ``Notifier`` sends one ``NOTIFY`` on
the queue channel after the commit, coalescing bursts (many events committed while a ``NOTIFY`` is on the wire cost
one more ``NOTIFY``, not one each). Every process runs a ``Listener``
that turns notifications into local wake-ups. Nothing here is needed for correctness: the worker's slow poll still
finds everything; NOTIFY only makes an idle worker start at once. On SQLite none of this runs: the processes of one
``redrive up --processes N`` use ``redrive.node.peers`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import psycopg
import structlog
from sqlalchemy.engine import make_url

from redrive.db.engine import CONNECT_TIMEOUT

log = structlog.get_logger("redrive.notify")

QUEUE_CHANNEL = "redrive_queue"
RECONNECT_DELAY = 1.0


def libpq_url(url: str) -> str:
    """The libpq form of an SQLAlchemy PostgreSQL URL (``postgresql+psycopg://`` becomes ``postgresql://``), speaking
    UTF-8 like the engines do."""
    libpq = make_url(url).set(drivername="postgresql").update_query_dict({"client_encoding": "UTF8"})
    return libpq.render_as_string(hide_password=False)


async def keep_connected(
    url: str,
    session: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]],
    on_lost: Callable[[psycopg.Error], None],
    *,
    retry_after: float = RECONNECT_DELAY,
) -> NoReturn:
    """Run ``session`` on an autocommit connection to ``url`` (libpq form) for as long as the process lives: when the
    connection fails, call ``on_lost`` and open another ``retry_after`` seconds later."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
            ) as connection:
                await session(connection)
        except psycopg.Error as exc:
            on_lost(exc)
        await asyncio.sleep(retry_after)


class Wakeup(asyncio.Event):
    """The local worker's wake-up (``set``, as any ``asyncio.Event``); ``work_due`` also tells the other processes,
    when a notifier is wired."""

    def __init__(self) -> None:
        super().__init__()
        self.announce: Callable[[], None] | None = None

    def work_due(self) -> None:
        """Work became due now (ingest, a replay, a resume, leases returned): wake this process's worker and every
        other process's. Waking only this one (a retry's later run_at, a stop) is plain ``set``."""
        self.set()
        if self.announce is not None:
            self.announce()


class Notifier:
    """Sends ``NOTIFY`` on a channel from its own connection; requests made while one is sent are coalesced."""

    def __init__(self, url: str) -> None:
        self._url = libpq_url(url)
        self._wake = False
        self._sources: list[tuple[str, Callable[[], list[str]]]] = []
        self._requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the sending task."""
        self._task = asyncio.create_task(self._run(), name="redrive-notifier")

    def wake(self) -> None:
        """Ask for one ``NOTIFY`` on the queue channel (non-blocking; requests waiting to be sent are merged)."""
        self._wake = True
        self._requested.set()

    def add_source(self, channel: str, drain: Callable[[], list[str]]) -> None:
        """Before each send, take ``drain()``'s payloads for ``channel``: whatever piled up while the previous
        notifications were on the wire goes out together, in as few payloads as fit."""
        self._sources.append((channel, drain))

    def poke(self) -> None:
        """A source has something to send."""
        self._requested.set()

    async def stop(self) -> None:
        """Stop sending (pending wake-ups are dropped: the poll covers them)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        unsent: list[tuple[str, str]] = []  # drained but not yet on the wire: sent first after a reconnect

        async def send(connection: psycopg.AsyncConnection[Any]) -> None:
            nonlocal unsent
            while True:
                if not unsent:
                    await self._requested.wait()
                self._requested.clear()
                wake, self._wake = self._wake, False
                unsent += [(QUEUE_CHANNEL, "")] if wake else []
                for channel, drain in self._sources:
                    unsent += [(channel, payload) for payload in drain()]
                if unsent:  # one round trip and one transaction: delivered together, in order
                    channels, payloads = [m[0] for m in unsent], [m[1] for m in unsent]
                    # A function scan yields the arrays' elements in order. Binary parameters (%b): the text
                    # format escapes every character of the JSON payloads with a regular expression, which cost
                    # about a tenth of the process's CPU under load; binary sends the strings as they are.
                    await connection.execute(
                        "SELECT pg_notify(c, p) FROM unnest(%b::text[], %b::text[]) AS m(c, p)",
                        (channels, payloads),
                    )
                    unsent = []

        await keep_connected(self._url, send, lambda exc: log.warning("notifier_disconnected", error=str(exc).strip()))


Handler = Callable[[str], None]


class Listener:
    """Listens on channels from its own connection and calls each channel's handler with the payload."""

    def __init__(self, url: str, handlers: dict[str, Handler], *, on_connect: Callable[[], None] | None = None) -> None:
        self._url = libpq_url(url)
        self._handlers = handlers
        self._on_connect = on_connect
        self._task: asyncio.Task[None] | None = None

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
        async def listen(connection: psycopg.AsyncConnection[Any]) -> None:
            for channel in self._handlers:
                await connection.execute(f'LISTEN "{channel}"')
            if self._on_connect is not None:
                self._on_connect()  # anything sent while we were away: the poll would find it; look now
            while True:
                async for notice in connection.notifies(timeout=5.0):
                    try:
                        self._handlers[notice.channel](notice.payload)
                    except Exception:
                        log.exception("notification_handler_failed", channel=notice.channel)
                await connection.execute("SELECT 1")  # a quiet connection may be a dead one

        await keep_connected(
            self._url, listen, lambda exc: log.warning("listener_disconnected", error=str(exc).strip())
        )
