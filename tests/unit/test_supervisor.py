"""The supervisor of ``redrive up --processes N`` with real forked children that run a stand-in for the service:
each child learns its node id and its predecessor's; a child that dies is started again in its slot; SIGTERM stops
them all and the supervisor exits 0; a child whose very first start fails stops the group with exit status 1."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from redrive.cli.processes import STARTUP_FAILURE, Supervisor, bind, describe_status, stop_on_signal
from redrive.node.process import Seat


def seats(path: Path) -> list[list[str]]:
    """Lines ``pid node_id predecessor`` the children wrote."""
    text = path.read_text() if path.exists() else ""
    return [line.split() for line in text.splitlines()]


def when(predicate: object, then: object, timeout: float = 20.0) -> threading.Thread:
    """In a thread: once ``predicate()`` holds, call ``then()`` (the supervisor holds the main thread)."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                then()  # type: ignore[operator]
                return
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)  # give up: stop the supervisor so the test ends and fails

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_dead_child_is_replaced_with_its_predecessor_named_and_sigterm_stops_all(tmp_path: Path) -> None:
    marker = tmp_path / "seats"

    def child(seat: Seat) -> int:
        with marker.open("a") as out:
            out.write(f"{os.getpid()} {seat.node_id} {seat.predecessor or '-'}\n")
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # the service stops gracefully on SIGTERM
        while True:
            signal.pause()

    def kill_one() -> None:
        os.kill(int(seats(marker)[0][0]), signal.SIGKILL)

    def stop() -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    supervisor = Supervisor(2, child, sqlite=True, grace=1.0)
    first = when(lambda: len(seats(marker)) == 2, kill_one)
    second = when(lambda: len(seats(marker)) == 3, stop)
    assert supervisor.run() == 0
    first.join()
    second.join()

    started = seats(marker)
    assert len(started) == 3
    killed, replacement = started[0], started[2]
    assert replacement[2] == killed[1]  # the new child knows whose leases to hand back
    assert started[1][2] == "-"  # a first start has no predecessor
    assert len({row[1] for row in started}) == 3  # every start is a node of its own
    assert all(slot.pid is None for slot in supervisor.slots)  # every child reaped
    assert [slot.launches for slot in supervisor.slots] in ([2, 1], [1, 2])


def test_a_sigterm_while_the_children_start_stops_them_once_they_serve(tmp_path: Path) -> None:
    """The group is stopped while its children still build their app: each child's server stops as soon as it
    runs, rather than serving on until the supervisor kills it (the SIGTERM used to be swallowed)."""
    marker = tmp_path / "children"
    go = tmp_path / "go"
    listener = bind("127.0.0.1", 0)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise AssertionError("no request is sent")

    def child(seat: Seat) -> int:
        with marker.open("a") as out:
            out.write(f"{os.getpid()} starting\n")
        while not go.exists():  # still building the app when the SIGTERM comes
            time.sleep(0.01)
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
        stop_on_signal(server)
        server.run(sockets=[listener])
        with marker.open("a") as out:
            out.write(f"{os.getpid()} stopped\n")
        return 0

    def stop() -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor passes it on to both children, still starting
        time.sleep(0.2)
        go.touch()

    supervisor = Supervisor(2, child, sqlite=False, grace=0.5)
    stopper = when(lambda: len(seats(marker)) == 2, stop)
    try:
        assert supervisor.run() == 0
    finally:
        listener.close()
    stopper.join()
    lines = seats(marker)
    assert sorted(pid for pid, what in lines if what == "stopped") == sorted(pid for pid, what in lines[:2]), lines


def test_a_child_whose_first_start_fails_stops_the_group(tmp_path: Path) -> None:
    def child(seat: Seat) -> int:
        raise SystemExit(STARTUP_FAILURE)  # as uvicorn does when the app's startup fails (the database refused, say)

    assert Supervisor(2, child, sqlite=False, grace=1.0).run() == 1


def test_a_wait_status_reads_as_words() -> None:
    assert describe_status(9) == "signal SIGKILL"
    assert describe_status(3 << 8) == "exit 3"
