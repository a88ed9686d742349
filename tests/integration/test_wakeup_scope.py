"""What a process tells the others on PostgreSQL, and when.

Only work that is due now is announced: an ingested event sends a NOTIFY on the queue channel; a retry scheduled for
later wakes no one else (their claims would find nothing due). And only while someone else listens: a process alone on
its database (``redrive.node.presence``) sends no wake-up and no stream change at all, and streams its changes to its
own clients directly; a process that says hello turns both back on, and one that stops saying it is forgotten.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx2
import psycopg
import pytest

from redrive.node.presence import PRESENCE_CHANNEL
from redrive.observe.stream import STREAM_CHANNEL
from redrive.queue.notify import QUEUE_CHANNEL, libpq_url
from support import Service, query, run_service, wait_until

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]
CONFIG = """
triggers:
  - name: flaky
    action: {kind: command, argv: ["sh", "-c", "exit 75"]}
    retry: {max_attempts: 5, base: 1h}
  - name: fine
    action: {kind: command, argv: ["true"]}
"""
MARK = "test-mark"  # the listener's own notification, sent to itself: what the database delivered before it came first


@dataclass
class Listening:
    """A connection of the test's own listening on the queue, stream and presence channels; a peer when ``hello``."""

    url: str
    hello: str | None  # this id said as a redrive process says it (answering asking hellos), or silent when None
    seen: list[tuple[str, str]] = field(default_factory=list)  # (channel, payload), in the order they came
    _say: list[str] = field(default_factory=list)
    _listening: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as connection:
            for channel in (QUEUE_CHANNEL, STREAM_CHANNEL, PRESENCE_CHANNEL):
                connection.execute(f'LISTEN "{channel}"')
            self._listening.set()
            while not self._done.is_set():
                while self._say:
                    connection.execute("SELECT pg_notify(%s, %s)", self._say.pop(0).split("\0"))
                for notice in connection.notifies(timeout=0.05):
                    self.seen.append((notice.channel, notice.payload))
                    if self.hello and notice.channel == PRESENCE_CHANNEL and notice.payload.endswith("?"):
                        self.say_hello()

    def say_hello(self) -> None:
        assert self.hello is not None
        self._say.append(f"{PRESENCE_CHANNEL}\0{self.hello}")

    def mark(self) -> None:
        """Notify this listener itself on every channel it watches after whatever the database holds for it now."""
        self._say.extend(f"{channel}\0{MARK}" for channel in (QUEUE_CHANNEL, STREAM_CHANNEL))

    def on(self, *channels: str) -> list[str]:
        return [payload for channel, payload in self.seen if channel in channels]


@pytest.fixture
def listening(db_url: str, request: pytest.FixtureRequest) -> Iterator[Listening]:
    """A listener of the test's own: a peer saying hello as ``listener-1`` or, with ``indirect`` param ``silent``, a
    bystander no redrive process knows of."""
    peer = Listening(libpq_url(db_url), None if getattr(request, "param", None) == "silent" else "listener-1")
    thread = threading.Thread(target=peer.run, daemon=True)
    thread.start()
    assert peer._listening.wait(10)
    try:
        yield peer
    finally:
        peer._done.set()
        thread.join(10)


@contextmanager
def streaming(service: Service) -> Iterator[list[tuple[int, str]]]:
    """The (execution, status) changes the process's live stream sends its client, read in a thread."""
    changes: list[tuple[int, str]] = []
    connected, done = threading.Event(), threading.Event()

    def read() -> None:
        url = f"{service.url}/api/v1/stream?tick=0.2"
        with httpx2.stream("GET", url, headers=service.auth("viewer"), timeout=30) as response:
            for line in response.iter_lines():
                connected.set()  # the first frame (stats) came: subscribed
                if done.is_set():
                    return
                if line.startswith("data: ") and "execution_id" in line:
                    data = json.loads(line.removeprefix("data: "))
                    changes.append((data["execution_id"], data["status"]))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert connected.wait(10)
    try:
        yield changes
    finally:
        done.set()
        thread.join(10)


def send(service: Service, trigger: str) -> int:
    response = httpx2.post(f"{service.url}/hooks/{trigger}", json={}, timeout=10)
    assert response.status_code == 202
    return int(response.json()["execution_id"])


def status(db_url: str, execution: int) -> str:
    return str(query(db_url, "SELECT status FROM executions WHERE id = :id", id=execution)[0].status)


def test_a_scheduled_retry_is_not_announced_but_new_work_is(db_url: str, listening: Listening) -> None:
    with run_service(db_url, CONFIG) as service:
        presence = service.state.node.presence if service.state.node else None
        assert presence is not None
        wait_until(lambda: "listener-1" in listening.on(PRESENCE_CHANNEL) and presence.shared(), what="the peer known")
        send(service, "flaky")
        wait_until(
            lambda: query(db_url, "SELECT status, attempts FROM executions") == [("pending", 1)],
            what="the first attempt to fail and its retry to be scheduled an hour later",
        )
        send(service, "fine")
        wait_until(lambda: len(listening.on(QUEUE_CHANNEL)) >= 2, what="the second event's announcement")
    # One announcement per ingested event; the retry (between them) made none.
    assert len(listening.on(QUEUE_CHANNEL)) == 2


@pytest.mark.parametrize("listening", ["silent"], indirect=True)
def test_a_process_alone_notifies_no_one_and_streams_its_changes_itself(db_url: str, listening: Listening) -> None:
    with run_service(db_url, CONFIG) as service:
        node = service.state.node
        assert node is not None
        assert node.presence is not None
        presence = node.presence
        hello = wait_until(lambda: listening.on(PRESENCE_CHANNEL), what="the process's asking hello")
        assert hello == [f"{node.info.id}?"]
        wait_until(lambda: not presence.shared(), what="the answers' grace to pass with no answer")

        with streaming(service) as changes:
            alone = send(service, "fine")
            wait_until(lambda: (alone, "succeeded") in changes, what="the event's changes on the process's stream")
        assert changes == [(alone, "pending"), (alone, "running"), (alone, "succeeded")]
        listening.mark()
        wait_until(lambda: listening.on(QUEUE_CHANNEL, STREAM_CHANNEL).count(MARK) == 2, what="the listener's marks")
        assert listening.on(QUEUE_CHANNEL, STREAM_CHANNEL) == [MARK, MARK], "a process alone sent a NOTIFY"

        # Someone says hello: the process answers, and announces and streams through NOTIFY again.
        listening.hello = "listener-1"
        listening.say_hello()
        wait_until(lambda: presence.shared(), what="the newcomer known")
        wait_until(lambda: listening.on(PRESENCE_CHANNEL)[-1] == node.info.id, what="the answer to the newcomer")
        shared = send(service, "fine")
        wait_until(lambda: status(db_url, shared) == "succeeded", what="the second event executed")
        wait_until(
            lambda: any(str(shared) in payload and "succeeded" in payload for payload in listening.on(STREAM_CHANNEL)),
            what="the second event's changes on the stream channel",
        )
        assert listening.on(QUEUE_CHANNEL)[1:] == [""], "the second event's announcement"


@pytest.mark.parametrize("listening", ["silent"], indirect=True)
def test_a_process_whose_only_peer_stopped_is_alone_three_heartbeats_later(db_url: str, listening: Listening) -> None:
    beats = {"heartbeat_interval": 0.2}
    with run_service(db_url, CONFIG, **beats) as first:
        node = first.state.node
        assert node is not None
        assert node.presence is not None
        presence = node.presence
        with run_service(db_url, CONFIG, tokens=first.tokens, **beats) as second:
            assert second.state.node is not None
            peer = second.state.node.info.id
            # The peer's hellos at its heartbeats keep it counted well past three heartbeats after it joined.
            wait_until(lambda: listening.on(PRESENCE_CHANNEL).count(peer) >= 6, what="six of the peer's hellos")
            assert presence.shared()
        stopped = len(listening.on(PRESENCE_CHANNEL))
        wait_until(lambda: not presence.shared(), what="the peer forgotten")
        assert peer not in listening.on(PRESENCE_CHANNEL)[stopped:]  # nothing from it since it stopped
