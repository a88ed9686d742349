"""Wake-ups and the live stream between the processes of one ``redrive up --processes N`` on SQLite.

PostgreSQL carries both on ``LISTEN/NOTIFY`` (``redrive.queue.notify``); SQLite has no such channel. The supervisor
(``redrive.cli.processes``) makes one Unix datagram socket pair per process slot before it forks: slot ``i`` reads
the first end of pair ``i`` (its inbox), and every process writes to the second end of every pair: stream changes to
its own too, as a ``NOTIFY`` reaches its sender (the hub delivers its own changes from there), wake-ups only to the
others (the sender's worker was woken directly). The pairs outlive the children, so a restarted child reads its
slot's inbox where its predecessor stopped. A datagram is one notification: the channel, a NUL, the payload. Sends
never block: a full inbox drops the datagram, which costs what a lost ``NOTIFY`` costs (the worker's poll finds the
work; a stream client resumes by id). No file, no port, nothing another user could write to.

``PeerNotifier`` and ``PeerListener`` have the methods ``Node`` uses of ``Notifier`` and ``Listener``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from redrive.queue.notify import QUEUE_CHANNEL, Handler

log = structlog.get_logger("redrive.peers")
READ_BURST = 256  # datagrams read per wake-up of the inbox before other callbacks get a turn


@dataclass(frozen=True, slots=True)
class Peers:
    """The sockets one child uses: its own inbox, and every slot's outbox (index = slot)."""

    slot: int
    inbox: socket.socket
    outboxes: tuple[socket.socket, ...]


def socket_pairs(count: int) -> list[tuple[socket.socket, socket.socket]]:
    """One non-blocking (inbox, outbox) datagram pair per slot, made by the supervisor before it forks."""
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(count)]
    for inbox, outbox in pairs:
        inbox.setblocking(False)
        outbox.setblocking(False)
    return pairs


def encode(channel: str, payload: str) -> bytes:
    """One notification as a datagram."""
    return channel.encode() + b"\0" + payload.encode()


def decode(datagram: bytes) -> tuple[str, str]:
    """(channel, payload) of a datagram made by ``encode``."""
    channel, _, payload = datagram.partition(b"\0")
    return channel.decode(), payload.decode()


class PeerNotifier:
    """Sends notifications to every slot; requests made in one turn of the event loop go out together."""

    def __init__(self, peers: Peers) -> None:
        self._peers = peers
        self._wake = False
        self._sources: list[tuple[str, Callable[[], list[str]]]] = []
        self._scheduled = False
        self._running = False

    def start(self) -> None:
        """Start sending."""
        self._running = True

    def wake(self) -> None:
        """Ask for one notification on the queue channel (non-blocking; merged with others of this turn)."""
        self._wake = True
        self.poke()

    def add_source(self, channel: str, drain: Callable[[], list[str]]) -> None:
        """Before each send, take ``drain()``'s payloads for ``channel``."""
        self._sources.append((channel, drain))

    def poke(self) -> None:
        """A source has something to send."""
        if self._running and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def stop(self) -> None:
        """Stop sending (what is pending is dropped, as on PostgreSQL)."""
        self._running = False

    def _flush(self) -> None:
        self._scheduled = False
        if not self._running:
            return
        wake, self._wake = self._wake, False
        datagrams = []
        for channel, drain in self._sources:
            datagrams += [encode(channel, payload) for payload in drain()]
        others = [encode(QUEUE_CHANNEL, ""), *datagrams] if wake else datagrams  # this worker is awake already
        dropped = 0
        for slot, outbox in enumerate(self._peers.outboxes):
            for datagram in datagrams if slot == self._peers.slot else others:
                try:
                    outbox.send(datagram)
                except OSError:  # that inbox is full (its process is stopped or slow): the poll covers it
                    dropped += 1
        if dropped:
            log.debug("peer_notifications_dropped", count=dropped)


class PeerListener:
    """Reads this slot's inbox on the event loop and calls each channel's handler with the payload."""

    def __init__(self, peers: Peers, handlers: dict[str, Handler], *, on_connect: Callable[[], None] | None = None):
        self._inbox = peers.inbox
        self._handlers = handlers
        self._on_connect = on_connect
        self._reading = False

    def start(self) -> None:
        """Start reading; like a (re)connected listener, look at the queue once (a predecessor's wake-ups are old)."""
        asyncio.get_running_loop().add_reader(self._inbox.fileno(), self._read)
        self._reading = True
        if self._on_connect is not None:
            self._on_connect()

    async def stop(self) -> None:
        """Stop reading (the inbox stays open: it belongs to the slot, not to this process)."""
        if self._reading:
            asyncio.get_running_loop().remove_reader(self._inbox.fileno())
            self._reading = False

    def _read(self) -> None:
        for _ in range(READ_BURST):
            try:
                datagram = self._inbox.recv(65536)
            except BlockingIOError:
                return
            channel, payload = decode(datagram)
            handler = self._handlers.get(channel)
            if handler is None:
                continue
            try:
                handler(payload)
            except Exception:
                log.exception("notification_handler_failed", channel=channel)
