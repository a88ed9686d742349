"""Ordered delivery across processes: two ``redrive up`` processes on one PostgreSQL (on SQLite, one ``redrive up``
of two processes sharing the file and the port) take 20 keys x 50 events (each key's events sent one after the
other, alternately to either process; on SQLite to the shared port), a sink fails the first attempt of some events;
every key's deliveries reach the sink one at a time in acceptance order. A 21st key whose head keeps failing holds
only itself: the 20 others complete while its head is still retrying, and it follows in order once released."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cluster_support import Cluster, LoopbackApp, write_config

from support import query, wait_until

pytestmark = pytest.mark.xdist_group("cluster")
KEYS = 20
EVENTS = 50
STUCK = "stuck"
FAST = {
    "REDRIVE_WORKER_CONCURRENCY": "8",
    "REDRIVE_POLL_INTERVAL": "0.2",
    "REDRIVE_LEASE_SECONDS": "10",
}


class OrderingSink(LoopbackApp):
    """Records each delivery (key, n, answered status) in arrival order. It answers 503 to the first attempt of every
    event whose n % 7 == 3, and to every attempt for the ``stuck`` key until released; it also records the most
    deliveries of one key it ever had in flight at once."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, int, int]] = []
        self.most_in_flight: dict[str, int] = defaultdict(int)
        self.released = False
        self._in_flight: dict[str, int] = defaultdict(int)
        self._seen: set[tuple[str, int]] = set()
        super().__init__("/deliver", self._deliver)

    def succeeded(self, key: str) -> list[int]:
        return [n for k, n, status in list(self.arrivals) if k == key and status == 200]

    async def _deliver(self, request: web.Request) -> web.Response:
        body = await request.json()
        key, n = body["key"], int(body["n"])
        self._in_flight[key] += 1
        self.most_in_flight[key] = max(self.most_in_flight[key], self._in_flight[key])
        try:
            await asyncio.sleep(0.002)  # a delivery takes a moment, so an overlapping one of its key would show
            first = (key, n) not in self._seen
            self._seen.add((key, n))
            failing = (key == STUCK and not self.released) or (first and n % 7 == 3)
            status = 503 if failing else 200
            self.arrivals.append((key, n, status))
            return web.Response(status=status, text="busy" if failing else "ok")
        finally:
            self._in_flight[key] -= 1


def in_acceptance_order(arrivals: list[tuple[str, int, int]], key: str) -> bool:
    """Whether ``key``'s deliveries came one event at a time in order: each arrival is the next event, or a retry of
    the last one that failed."""
    expected = 0
    for k, n, status in arrivals:
        if k != key:
            continue
        if n != expected:
            return False
        if status == 200:
            expected += 1
    return True


@pytest.fixture
def sink() -> Iterator[OrderingSink]:
    with OrderingSink() as running:
        yield running


@pytest.fixture
def cluster(tmp_path: Path, db_url: str, sink: OrderingSink) -> Iterator[Cluster]:
    trigger = {
        "name": "orders",
        "action": {
            "kind": "http",
            "url": sink.url,
            "json": {"key": "{{ payload.customer.id }}", "n": "{{ payload.n }}"},
            "timeout": "10s",
            "allow": ["127.0.0.1"],
        },
        "retry": {"max_attempts": 100, "base": "50ms", "factor": 1.5, "max_delay": "300ms", "jitter": "none"},
        "ordering": {"key": "{{ payload.customer.id }}"},
        # The stuck key's head fails every 300 ms. On a loaded machine the free keys can pause for the 3 s it takes
        # to fail ten times in a row, and then the destination's breaker opens and holds every key, its probe being
        # the stuck head (the oldest held row), which fails and doubles the cool-down. Ordering is what this test
        # is about; the breaker's own tests are test_destination_breaker.py and test_held_attempts.py.
        "breaker": {"enabled": False},
    }
    running = Cluster(tmp_path, db_url, write_config(tmp_path, [trigger]), env=FAST)
    try:
        yield running
    finally:
        running.close()


async def send_all(urls: list[str], keys: list[str]) -> None:
    """Each key's events in order (the next sent once the previous was accepted), alternating processes."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one_key(key: str) -> None:
            for n in range(EVENTS):
                payload = {"customer": {"id": key}, "n": n}
                async with session.post(f"{urls[n % 2]}/hooks/orders", json=payload) as response:
                    assert response.status == 202, await response.text()

        await asyncio.gather(*(one_key(key) for key in keys))


def test_each_key_is_delivered_in_acceptance_order_and_a_stuck_key_holds_only_itself(
    cluster: Cluster, sink: OrderingSink, db_url: str
) -> None:
    if db_url.startswith("sqlite"):  # one SQLite file is shared by the processes of one ``up``
        group = cluster.spawn("up", "group", REDRIVE_PROCESSES="2")
        cluster.ready(group)
        wait_until(lambda: len(query(db_url, "SELECT id FROM nodes WHERE dead_at IS NULL")) == 2, what="two nodes")
        urls = [group.url, group.url]
    else:
        first = cluster.spawn("up", "first")
        second = cluster.spawn("up", "second")
        cluster.ready(first, second)
        urls = [first.url, second.url]
    keys = [f"customer-{k}" for k in range(KEYS)]
    asyncio.run(send_all(urls, [STUCK, *keys]))

    wait_until(
        lambda: all(len(sink.succeeded(key)) == EVENTS for key in keys),
        timeout=180,
        what="every free key's 50 deliveries",
        context=cluster.logs,
    )
    arrivals = list(sink.arrivals)
    assert sink.succeeded(STUCK) == []  # its head is still failing...
    head = (
        "SELECT x.status, x.attempts FROM executions x JOIN events e ON e.id = x.event_id "
        "WHERE e.payload -> 'customer' ->> 'id' = :key ORDER BY x.id LIMIT 1"
    )
    stuck = query(db_url, head, key=STUCK)[0]
    assert stuck[0] in ("pending", "running")  # ...and still retrying, not dead-lettered
    assert stuck[1] >= 2
    assert {n for k, n, _ in arrivals if k == STUCK} == {0}  # nothing behind it ran
    for key in keys:
        assert in_acceptance_order(arrivals, key), [a for a in arrivals if a[0] == key]
        assert sink.succeeded(key) == list(range(EVENTS))
    assert any(status == 503 for k, _, status in arrivals if k != STUCK)  # some first attempts did fail

    sink.released = True
    wait_until(lambda: len(sink.succeeded(STUCK)) == EVENTS, timeout=120, what="the stuck key", context=cluster.logs)
    assert in_acceptance_order(list(sink.arrivals), STUCK)
    assert max(sink.most_in_flight.values()) == 1  # never two deliveries of one key at once, on either process
