"""One redrive process's background machinery: worker, heartbeat, leadership, maintenance, cross-process wake-ups.

``Node`` is what ``redrive up``/``serve``/``worker`` run besides (or instead of) the HTTP routes. Roles: ``all``
(API and worker), ``api`` (no worker), ``worker`` (no ingest or API routes). Every role beats, campaigns for the
maintenance lock, and listens for wake-ups and stream changes and sends them: on PostgreSQL through ``LISTEN/NOTIFY``
while another process listens (``presence``: alone, it keeps them in process), on SQLite through the datagram
sockets of its ``redrive up --processes N`` group (``peers``; a lone process has none and needs none). Each process
of a group is a node of its own: its own row in ``nodes``, pid, worker and leases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import structlog

from redrive.clock import Clock, utcnow
from redrive.db.database import Database
from redrive.lifecycle import Lifecycle
from redrive.node.heartbeats import NodeInfo, beat, bury, leave, this_node
from redrive.node.leader import Leadership
from redrive.node.maintenance import Maintenance
from redrive.node.peers import PeerListener, PeerNotifier, Peers
from redrive.node.periodic import Periodic
from redrive.node.presence import PRESENCE_CHANNEL, Presence
from redrive.node.retention import RetentionChore
from redrive.observe.backfill import BackfillChore
from redrive.observe.history import HistorySampler
from redrive.observe.metrics import Metrics
from redrive.observe.redaction import Redactor
from redrive.observe.stream import STREAM_CHANNEL, StreamHub
from redrive.observe.system import resident_bytes
from redrive.observe.telemetry import Tracing
from redrive.queue import parking
from redrive.queue.notify import QUEUE_CHANNEL, Handler, Listener, Notifier, Wakeup
from redrive.queue.worker import Worker
from redrive.settings import Settings
from redrive.triggers.runtime import TriggerSet

log = structlog.get_logger("redrive.node")
Role = Literal["all", "api", "worker"]
PRESENCE_BEATS = 3  # another process counts as present until it missed this many heartbeats' hellos


@dataclass(frozen=True, slots=True)
class Seat:
    """What the supervisor of ``redrive up --processes N`` tells the child it starts in one of its slots."""

    node_id: str  # chosen by the supervisor, so it knows whose leases a dead child held
    predecessor: str | None  # the node id of the child that ran in this slot before and exited
    peers: Peers | None  # the group's datagram sockets (SQLite only)


class Node:
    """Starts and stops everything a process runs in the background."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        triggers: TriggerSet,
        *,
        role: Role,
        redactor: Redactor,
        wakeup: Wakeup,
        clock: Clock = utcnow,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        lifecycle: Lifecycle | None = None,
        seat: Seat | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.role = role
        self.wakeup = wakeup
        self.clock = clock
        self.seat = seat
        self.info: NodeInfo = this_node(role, clock(), None if seat is None else seat.node_id)
        peers = None if seat is None else seat.peers
        self.notifier: Notifier | PeerNotifier | None = None
        self.presence: Presence | None = None  # PostgreSQL: whether anyone else listens
        if not db.is_sqlite:
            self.notifier = Notifier(db.url)
            self.presence = Presence(self.info.id, ttl=PRESENCE_BEATS * settings.heartbeat_interval)
            self.presence.poke = self.notifier.poke
            self.notifier.add_source(PRESENCE_CHANNEL, self.presence.drain)
        elif peers is not None:
            self.notifier = PeerNotifier(peers)
        self.stream = StreamHub(
            self.info.id,
            poke=None if self.notifier is None else self.notifier.poke,
            shared=None if self.presence is None else self.presence.shared,
        )
        if self.notifier is not None:
            self.notifier.add_source(STREAM_CHANNEL, self.stream.drain)
        self.worker: Worker | None = None
        if role != "api" and settings.worker_concurrency > 0:
            self.worker = Worker(
                db,
                triggers,
                settings,
                redactor=redactor,
                wakeup=wakeup,
                clock=clock,
                node_id=self.info.id,
                metrics=metrics,
                stream=self.stream,
                tracing=tracing,
                lifecycle=lifecycle,
            )
        self.leadership = Leadership(db.url, settings.sweep_interval, node_id=self.info.id)
        self.retention = RetentionChore(db, triggers, settings.retention_interval, clock)
        self.history = HistorySampler(db, clock)
        self.backfill = BackfillChore(db)
        ordered = [t.id for t in triggers if t.config.ordering is not None]
        self.parking = parking.Repair(db.write, ordered, triggers.blocking, clock, wakeup.work_due)
        self.maintenance = Maintenance(
            db,
            self.leadership,
            interval=settings.sweep_interval,
            heartbeat_interval=settings.heartbeat_interval,
            clock=clock,
            wake=wakeup.work_due,
            warn=lambda data: self.stream.publish("warning", data),
            extra=[
                self.retention.run_when_due,
                self.history.run_when_due,
                self.backfill.run_when_due,
                self.parking.run,
            ],
        )
        handlers: dict[str, Handler] = {QUEUE_CHANNEL: self._woken, STREAM_CHANNEL: self.stream.receive}
        self.listener: Listener | PeerListener | None = None
        if self.presence is not None:
            handlers[PRESENCE_CHANNEL] = self.presence.heard
            self.listener = Listener(db.url, handlers, on_connect=self._listening)
        elif peers is not None:
            self.listener = PeerListener(peers, handlers, on_connect=wakeup.set)
        self._beats = Periodic(
            "heartbeat", self._beat, settings.heartbeat_interval, failed_evt="heartbeat_failed", delay_first=True
        )

    def _woken(self, payload: str) -> None:
        self.wakeup.set()

    def _listening(self) -> None:
        """The listener (re)connected: look for work sent while it was away, and ask who else listens."""
        self.wakeup.set()
        self.stream.lost()
        if self.presence is not None:
            self.presence.connected()

    def _announce(self) -> None:
        """Work became due: tell the other processes, if there may be any (this one's worker is awake)."""
        if self.notifier is not None and (self.presence is None or self.presence.shared()):
            self.notifier.wake()

    async def start(self) -> None:
        """Record the first beat, then start the loops."""
        self.leadership.start()  # on SQLite the lock is tried at once: the first beat says who leads
        leader = self.leadership.is_leader
        await self.db.write(beat(self.info, 0, self.clock(), leader=leader, rss_bytes=resident_bytes()))
        if self.seat is not None and self.seat.predecessor is not None:
            await self._bury(self.seat.predecessor)
        if self.notifier is not None and self.listener is not None:
            self.notifier.start()
            self.wakeup.announce = self._announce
            self.listener.start()
        self.maintenance.start()
        if self.worker is not None:
            await self.worker.start()
        self._beats.start()
        log.info("node_started", node_id=self.info.id, role=self.role, host=self.info.host, pid=self.info.pid)

    async def _bury(self, node_id: str) -> None:
        """The process this one replaces has exited: its leases go back to the queue now, not after its missed beats."""
        swept = await self.db.write(bury(node_id, self.clock()))
        log.warning("node_dead", node_id=node_id, reason="process_exited", leases_swept=len(swept))
        self.stream.publish("warning", {"code": "node_dead", "node_id": node_id, "leases_swept": len(swept)})
        if swept:
            self.wakeup.work_due()

    async def stop(self) -> None:
        """Finish or release in-flight work, step down, stop listening, remove this node's row."""
        await self._beats.stop()
        if self.worker is not None:
            await self.worker.stop()
        await self.maintenance.stop()
        await self.leadership.stop()
        self.wakeup.announce = None
        self.stream.close()
        for part in (self.listener, self.notifier):
            if part is not None:
                await part.stop()
        try:
            await self.db.write(leave(self.info.id))
        except Exception:
            log.warning("node_leave_failed", node_id=self.info.id)

    async def _beat(self) -> None:
        if self.presence is not None:
            self.presence.beat()
        in_flight = self.worker.in_flight if self.worker is not None else 0
        try:
            leader = self.leadership.is_leader
            await self.db.write(beat(self.info, in_flight, self.clock(), leader=leader, rss_bytes=resident_bytes()))
        except Exception as exc:  # expected while the database is away: one line, no traceback
            log.warning("heartbeat_failed", node_id=self.info.id, error=str(exc))
