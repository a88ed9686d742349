"""The live stream's hub: execution state changes and warnings, fanned out to this node's subscribers.

On PostgreSQL every change is sent as a ``NOTIFY`` on the stream channel (batched, several events per
notification) and delivered from the listener, so every node sees every node's changes, in the same order, and
the ids a client saw on one node mean the same on another; a process that knows it is alone on its database
(``redrive.node.presence``) delivers its changes at once instead. On SQLite the processes of one ``redrive up
--processes N`` send them to each other the same way over datagram sockets (``redrive.node.peers``); a lone process
delivers its changes at once.

Each node keeps the last ``BACKLOG`` events so a client reconnecting with ``Last-Event-ID`` gets what it missed;
when the id is older than the backlog the client is told to ``reset`` (reload its view) instead of being given a
silent gap. Ids sort by time: ``<microseconds since the epoch>-<node>-<sequence>``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

log = structlog.get_logger("redrive.stream")

STREAM_CHANNEL = "redrive_stream"
BACKLOG = 5000
SUBSCRIBER_QUEUE = 1000
MAX_NOTIFY_BYTES = 7000  # PostgreSQL refuses payloads of 8000 bytes or more


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One server-sent event."""

    id: str
    kind: str  # execution | warning | breaker
    data: dict[str, Any]

    def encode(self) -> bytes:
        """The event in the ``text/event-stream`` format."""
        return b"id: %s\nevent: %s\ndata: %s\n\n" % (self.id.encode(), self.kind.encode(), orjson.dumps(self.data))


def batches(events: list[StreamEvent], limit: int = MAX_NOTIFY_BYTES) -> tuple[list[str], int]:
    """JSON arrays of events, each under ``limit`` bytes, and how many events they hold (an event too large on its
    own is dropped and logged)."""
    out: list[str] = []
    current: list[bytes] = []
    size, held = 2, 0
    for event in events:
        encoded = orjson.dumps({"id": event.id, "kind": event.kind, "data": event.data})
        if len(encoded) + 2 > limit:
            log.warning("stream_event_too_large", id=event.id, kind=event.kind, size=len(encoded))
            continue
        held += 1
        if current and size + len(encoded) + 1 > limit:
            out.append("[" + b",".join(current).decode() + "]")
            current, size = [], 2
        current.append(encoded)
        size += len(encoded) + 1
    if current:
        out.append("[" + b",".join(current).decode() + "]")
    return out, held


def _keep_newest(events: list[StreamEvent]) -> None:
    """Keep the last ``BACKLOG`` of ``events`` (the database is away): resuming clients get a reset, not a gap."""
    if len(events) > BACKLOG:
        del events[: len(events) - BACKLOG]


class StreamHub:
    """Publishes changes and delivers them to subscribers.

    ``poke`` is the cross-node path (None for a lone SQLite process): it tells the notifier that ``drain`` has
    payloads to send. ``shared`` says whether anyone else listens now (None: assume so); while not, changes are
    delivered here at once. A change must not overtake an earlier one of the same execution (a dashboard would show
    "running" after "succeeded"), so while this node's changes are still on their way out or back, the changes
    published after it found itself alone wait here behind them, and are delivered when the last one is back.
    """

    def __init__(
        self, node: str, *, poke: Callable[[], None] | None = None, shared: Callable[[], bool] | None = None
    ) -> None:
        self._node = node
        self._poke = poke
        self._shared = shared
        self._sequence = itertools.count(1)
        self._backlog: deque[StreamEvent] = deque(maxlen=BACKLOG)
        self._subscribers: set[asyncio.Queue[StreamEvent | None]] = set()
        self._outbox: list[StreamEvent] = []
        self._in_flight = 0  # this node's changes sent and not heard back yet
        self._behind: list[StreamEvent] = []  # alone, behind this node's changes still on their way

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Announce a change (non-blocking)."""
        event = StreamEvent(f"{time.time_ns() // 1000:016d}-{self._node}-{next(self._sequence)}", kind, data)
        if self._poke is None:
            self._deliver([event])
        elif self._shared is not None and not self._shared():
            if self._outbox or self._in_flight:
                self._behind.append(event)
                _keep_newest(self._behind)
            else:
                self._deliver([event])
        else:  # through NOTIFY, after whatever waited here
            if self._behind:
                self._outbox += self._behind
                self._behind = []
            self._outbox.append(event)
            _keep_newest(self._outbox)
            self._poke()

    def drain(self) -> list[str]:
        """The events waiting to be sent, as notification payloads (called by the notifier)."""
        events, self._outbox = self._outbox, []
        payloads, sent = batches(events)
        self._in_flight += sent
        self._release()  # none of them sent (too large): nothing to wait for
        return payloads

    def lost(self) -> None:
        """The listener reconnected: what was on its way back while it was away will not come."""
        self._in_flight = 0
        self._release()

    def _release(self) -> None:
        """Deliver what waited behind this node's changes once none is on its way any more."""
        if self._behind and not self._in_flight and not self._outbox:
            behind, self._behind = self._behind, []
            self._deliver(behind)

    def receive(self, payload: str) -> None:
        """A notification from the stream channel (any node, this one included)."""
        try:
            raw = orjson.loads(payload)
            events = [StreamEvent(str(item["id"]), str(item["kind"]), dict(item["data"])) for item in raw]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("stream_payload_invalid", size=len(payload))
            return
        mine = sum(1 for event in events if event.id.split("-", 2)[1:2] == [self._node])
        self._in_flight = max(0, self._in_flight - mine)
        self._deliver(events)
        self._release()

    def _deliver(self, events: list[StreamEvent]) -> None:
        self._backlog.extend(events)
        for queue in list(self._subscribers):
            if queue.qsize() + len(events) > SUBSCRIBER_QUEUE:  # too slow to keep up: cut off, it resumes by id
                self._subscribers.discard(queue)
                queue.put_nowait(None)
                continue
            for event in events:
                queue.put_nowait(event)

    def subscribe(self) -> asyncio.Queue[StreamEvent | None]:
        """A queue of events from now on; ``None`` means the subscription was dropped."""
        queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()  # bounded by _deliver, so None always fits
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[StreamEvent | None]) -> None:
        self._subscribers.discard(queue)

    def close(self) -> None:
        """End every subscription (the service is stopping)."""
        for queue in list(self._subscribers):
            self._subscribers.discard(queue)
            queue.put_nowait(None)

    def since(self, last_id: str) -> list[StreamEvent] | None:
        """Events after ``last_id``, or None when it is older than the backlog (the client must reset)."""
        events = list(self._backlog)
        for index, event in enumerate(events):
            if event.id == last_id:
                return events[index + 1 :]
        if not events or last_id < events[0].id:
            return None
        return [event for event in events if event.id > last_id]
