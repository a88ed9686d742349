"""``redrive up --processes N``: a supervisor that binds the port once and forks N children sharing it and the work.

Why one socket bound by the parent rather than ``SO_REUSEPORT`` per child: a second ``redrive up`` on the same port
fails with "address in use" as it always did, instead of silently joining the group; each connection goes to
whichever child accepts it first, so a busy child takes fewer; and the connections waiting in the backlog of a child
that dies are accepted by the others, where with ``SO_REUSEPORT`` they would be reset with its socket. uvicorn serves
an inherited socket as it does under gunicorn (``Server.run(sockets=...)``).

Why fork: the parent has imported everything, migrated the database and created the first admin token once; the
children start from that state in milliseconds and share its (frozen) pages copy-on-write. The parent is kept fit to
fork: one thread, no event loop, no database connection, logging written synchronously. Each child configures its
own logging thread, builds its app (and its engines, writer thread and event loop) and runs uvicorn.

Each child is a node of its own (``redrive.node.process``): its row in ``nodes``, its pid, its worker and leases.
On SQLite they share the file (WAL, ``BEGIN IMMEDIATE``, busy timeout), the maintenance leader is whoever holds the
lock file's ``flock`` (``redrive.node.leader``), and wake-ups and the live stream cross between them through datagram
socket pairs the parent makes before forking (``redrive.node.peers``); on PostgreSQL all of that goes through the
database as between any nodes.

Signals: children run in process groups of their own, so a terminal's Ctrl-C reaches only the parent, which sends
each child one SIGTERM (uvicorn treats a second signal as "force quit", which would skip releasing leases). A child
that dies while the parent is not stopping is started again in its slot (``evt=process_restarted``), after a delay
that doubles while children die young. A child whose first start fails (the app's startup raised) stops the group:
the same start would fail in every slot. If the parent itself is killed (SIGKILL), its children notice the closed
pipe it held and exit at once, as a single process would have died: their leases are recovered by the next leader.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from redrive.node.heartbeats import new_node_id
from redrive.node.peers import Peers, socket_pairs
from redrive.node.process import Seat

log = structlog.get_logger("redrive.processes")

STARTUP_FAILURE = 3  # uvicorn's exit status when the app's startup fails
YOUNG = 10.0  # seconds: a child that dies sooner is restarted after a growing delay
FIRST_DELAY, MAX_DELAY = 0.5, 30.0
STOP_MARGIN = 15.0  # seconds past the shutdown grace before children still running are killed
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)

ChildMain = Callable[[Seat], int]

stop_asked = threading.Event()
"""Set in a child when SIGTERM came before its server took the signal over (``stop_on_signal``)."""


class Stoppable(Protocol):
    """A server that stops once ``should_exit`` is set (``uvicorn.Server``)."""

    should_exit: bool


def stop_on_signal(server: Stoppable) -> None:
    """Let a SIGTERM stop ``server`` whenever it comes, and never kill the process.

    uvicorn takes SIGTERM over only once it runs; a SIGTERM before that (while the app was being built: the
    supervisor stopping a group it has just started) is kept by ``stop_asked`` and stops the server as soon as it
    runs; one after uvicorn has let go (it raises the signal again once its graceful stop is done) sets the flag of a
    server that is done, and the process exits 0.
    """

    def stop(*_: object) -> None:
        server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    if stop_asked.is_set():
        server.should_exit = True


def default_count() -> int:
    """One process per CPU core this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def bind(host: str, port: int) -> socket.socket:
    """The listening socket the children share (IPv6 when ``host`` is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart despite TIME_WAIT
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def describe_status(status: int) -> str:
    """A wait status in words: ``exit 1`` or ``signal SIGKILL``."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(number).name}"
        return f"signal {number}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


@dataclass
class Slot:
    """One child's place in the group: who runs in it now and how its restarts go."""

    index: int
    pid: int | None = None
    started: float = 0.0
    launches: int = 0
    delay: float = FIRST_DELAY
    due: float = 0.0  # when to start it again (monotonic)
    node_id: str | None = None  # the node id of the child running in it, or of the last one


@dataclass
class Supervisor:
    """Forks ``count`` children running ``child_main`` and keeps them running until told to stop."""

    count: int
    child_main: ChildMain
    sqlite: bool
    grace: float
    slots: list[Slot] = field(init=False)
    stopping: bool = field(default=False, init=False)
    failed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.slots = [Slot(index) for index in range(self.count)]
        self._pairs = socket_pairs(self.count) if self.sqlite else []
        self._death_read, self._death_write = os.pipe()  # closed by the kernel when the parent dies: children see EOF
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._deadline: float | None = None

    def run(self) -> int:
        """Supervise until every child has stopped; the exit status for ``redrive up``."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}
        old_wakeup = signal.set_wakeup_fd(self._wake_write)
        try:
            log.info("processes_starting", count=self.count, pid=os.getpid())
            while True:
                self._reap()
                if self.stopping and all(slot.pid is None for slot in self.slots):
                    break
                self._launch_due()
                self._wait(self._timeout())
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._close()
        log.info("processes_stopped", count=self.count)
        return 1 if self.failed else 0

    def _close(self) -> None:
        """Close the group's sockets and pipes (its children are gone, or go with the closed pipe)."""
        for pair in self._pairs:
            for end in pair:
                end.close()
        for descriptor in (self._death_read, self._death_write, self._wake_read, self._wake_write):
            os.close(descriptor)

    def _on_signal(self, number: int, frame: object) -> None:
        if number != signal.SIGCHLD and not self.stopping:
            self.stop()

    def stop(self) -> None:
        """Ask every child to stop gracefully (one SIGTERM each); kill those still running past the grace."""
        self.stopping = True
        self._deadline = time.monotonic() + self.grace + STOP_MARGIN
        self._signal_children(signal.SIGTERM)

    def _signal_children(self, sig: signal.Signals) -> None:
        for slot in self.slots:
            if slot.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, sig)

    def _timeout(self) -> float:
        now = time.monotonic()
        if self.stopping:
            assert self._deadline is not None
            return max(0.0, self._deadline - now)
        waiting = [slot.due - now for slot in self.slots if slot.pid is None]
        return max(0.0, min(waiting)) if waiting else 60.0

    def _wait(self, timeout: float) -> None:
        select.select([self._wake_read], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 512):
                pass
        if self.stopping and self._deadline is not None and time.monotonic() >= self._deadline:
            log.warning("processes_killed", reason="still running after the shutdown grace")
            self._signal_children(signal.SIGKILL)
            self._deadline = time.monotonic() + 5.0

    def _reap(self) -> None:
        for slot in self.slots:
            if slot.pid is None:
                continue
            pid, status = os.waitpid(slot.pid, os.WNOHANG)
            if pid == 0:
                continue
            self._exited(slot, status)

    def _exited(self, slot: Slot, status: int) -> None:
        pid, slot.pid = slot.pid, None
        lived = time.monotonic() - slot.started
        if self.stopping:
            log.info("process_stopped", slot=slot.index, pid=pid, status=describe_status(status))
            return
        code = os.waitstatus_to_exitcode(status)
        if slot.launches == 1 and code == STARTUP_FAILURE:
            log.error("process_start_failed", slot=slot.index, pid=pid, status=describe_status(status))
            self.failed = True
            self.stop()
            return
        slot.delay = FIRST_DELAY if lived >= YOUNG else min(slot.delay * 2, MAX_DELAY)
        slot.due = time.monotonic() + (0.0 if lived >= YOUNG else slot.delay)
        log.warning("process_died", slot=slot.index, pid=pid, status=describe_status(status), lived_s=round(lived, 1))

    def _launch_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.pid is None and slot.due <= now and not self.stopping:
                self._launch(slot)

    def _launch(self, slot: Slot) -> None:
        predecessor, slot.node_id = slot.node_id, new_node_id()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # the child resets handlers before any runs
        try:
            pid = os.fork()
            if pid == 0:
                self._become_child(slot, predecessor, blocked)  # never returns
            with contextlib.suppress(OSError):
                os.setpgid(pid, pid)  # also done by the child: whichever runs first
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        slot.pid = pid
        slot.started = time.monotonic()
        slot.launches += 1
        if slot.launches > 1:
            log.warning("process_restarted", slot=slot.index, pid=pid, node_id=slot.node_id, replaces=predecessor)
        else:
            log.info("process_started", slot=slot.index, pid=pid, node_id=slot.node_id)

    def _become_child(self, slot: Slot, predecessor: str | None, mask: set[int | signal.Signals]) -> None:
        code = 1
        try:
            assert slot.node_id is not None
            signal.set_wakeup_fd(-1)
            for sig in SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            # A SIGTERM before the server runs is kept for it (``stop_on_signal``), not lost; SIGINT is the
            # parent's (a terminal's Ctrl-C): it stops the children with SIGTERM.
            signal.signal(signal.SIGTERM, lambda *_: stop_asked.set())
            signal.signal(signal.SIGINT, lambda *_: None)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            with contextlib.suppress(OSError):
                os.setpgid(0, 0)
            for descriptor in (self._wake_read, self._wake_write, self._death_write):
                os.close(descriptor)
            _exit_with_parent(self._death_read)
            code = self.child_main(Seat(slot.node_id, predecessor, self._peers(slot.index)))
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _peers(self, index: int) -> Peers | None:
        if not self._pairs:
            return None
        for other, (inbox, _) in enumerate(self._pairs):
            if other != index:
                inbox.close()  # only the slot's own inbox is read here
        return Peers(index, self._pairs[index][0], tuple(outbox for _, outbox in self._pairs))


def _exit_with_parent(death_read: int) -> None:
    """Exit at once when the parent is gone (its end of the pipe closes): as a single process killed outright."""

    def watch() -> None:
        while True:
            try:
                if not os.read(death_read, 1):
                    break
            except InterruptedError:
                continue
        os._exit(1)

    threading.Thread(target=watch, name="redrive-parent-watch", daemon=True).start()
