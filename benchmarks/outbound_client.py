"""What does an http action's request cost redrive's process, against aiohttp and against the least any client
could spend? A figure, not a test.

    python benchmarks/outbound_client.py [--requests 20000] [--concurrency 64] [--repeat 5]

Starts ``benchkit``'s sink (raw asyncio + httptools, keep-alive) and, in this process on uvloop, sends it POSTs of
``peers.py``'s attempt (a 1 KB JSON body, one header) from ``--concurrency`` tasks, three ways, interleaved round by
round (the order rotates):

- ``redrive``: ``HttpRequester.execute``, the worker's own call: the SSRF checks, the action's client
  (``redrive.actions.http_client``: pooled connections, the connect timeout) under the total timeout, the capped
  answer and the outcome's detail;
- ``aiohttp``: the same request as the action sent it through aiohttp before ``http_client``: one of
  ``new_http_session``'s guarded sessions, ``json=`` with the total and connect timeouts, the answer's body read up
  to the cap;
- ``floor``: the least a client can do for the same exchange, written here and nowhere else: one keep-alive
  connection per task, the request written as bytes, the answer parsed by httptools, under ``asyncio.timeout``. No
  SSRF check, no TLS, no pool, no error handling: what the parsing, the system calls and the event loop cost.

Printed per round: CPU microseconds per request of each (``time.process_time``: this process, every thread) and
each over ``floor``; the medians at the end. Compare the differences with ``peers.py``'s CPU per event to see the
client's share of an event. These machines' speed changes every few hundred milliseconds: the ratios within a
round are the figures, not any side alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import httptools
import orjson
import uvloop
from benchkit import Procs, event_body, start_sink

from redrive.actions.base import EXCERPT_BYTES
from redrive.actions.egress import TargetPolicy
from redrive.actions.http import HttpAction, HttpRequester, HttpSessions, new_http_session


def attempt(port: int) -> dict[str, Any]:
    """The rendered action of ``peers.py``'s trigger for one event, as ``HttpRequester.render`` hands it on."""
    payload = orjson.loads(event_body().replace(b"{key}", b"k-1"))
    return {
        "method": "POST",
        "url": f"http://127.0.0.1:{port}/sink",
        "headers": {"X-Key": "k-1"},
        "json": {"key": payload["key"], "type": payload["type"], "data": payload["data"]},
        "timeout": 30.0,
        "connect_timeout": 5.0,
    }


class _Exchange(asyncio.Protocol):
    """The floor's connection: one request at a time, its answer parsed by httptools."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.answered: asyncio.Future[int] | None = None
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not derive from asyncio's

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.answered is not None
        self.answered.set_result(self.parser.get_status_code())
        self.body = []


def floor_sender(rendered: dict[str, Any]) -> Callable[[], Awaitable[None]]:
    """A task's sender for the floor: its own connection, made on first use and kept."""
    port = int(rendered["url"].rsplit(":", 1)[1].split("/", 1)[0])
    head = f"POST /sink HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Key: {rendered['headers']['X-Key']}\r\n"
    connection: list[_Exchange] = []

    async def send() -> None:
        loop = asyncio.get_running_loop()
        if not connection:
            connection.append((await loop.create_connection(_Exchange, "127.0.0.1", port))[1])
        exchange = connection[0]
        body = orjson.dumps(rendered["json"])
        request = f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        exchange.answered = loop.create_future()
        assert exchange.transport is not None
        exchange.transport.write(request)
        async with asyncio.timeout(rendered["timeout"]):
            status = await exchange.answered
        if status != 200:
            raise RuntimeError(f"the sink answered {status}")

    return send


async def cpu_per_request(
    make_sender: Callable[[], Callable[[], Awaitable[None]]], requests: int, concurrency: int
) -> float:
    """CPU microseconds per request of ``requests`` sent by ``concurrency`` tasks, after 200 to warm up."""
    senders = [make_sender() for _ in range(concurrency)]
    for sender in senders[:1] * 200:
        await sender()
    numbers = iter(range(requests))

    async def task(send: Callable[[], Awaitable[None]]) -> None:
        for _ in numbers:
            await send()

    start = time.process_time()
    await asyncio.gather(*(task(send) for send in senders))
    return (time.process_time() - start) / requests * 1e6


async def rounds(port: int, args: argparse.Namespace) -> None:
    rendered = attempt(port)
    action = HttpAction.model_validate({"kind": "http", "url": rendered["url"], "allow": ["127.0.0.1"]})
    requester = HttpRequester(action)
    policy = TargetPolicy.build(action.allow_private, action.allow)
    timeout = aiohttp.ClientTimeout(total=rendered["timeout"], sock_connect=rendered["connect_timeout"])
    async with HttpSessions(limit=max(100, args.concurrency)) as sessions:
        resources = {"http": sessions}
        session = new_http_session(policy, limit=max(100, args.concurrency))

        def redrive_sender() -> Callable[[], Awaitable[None]]:
            async def send() -> None:
                outcome = await requester.execute(rendered, resources)
                if outcome.failure is not None:
                    raise RuntimeError(f"the attempt failed: {outcome.failure}")

            return send

        def aiohttp_sender() -> Callable[[], Awaitable[None]]:
            async def send() -> None:
                async with session.request(
                    "POST",
                    rendered["url"],
                    headers=rendered["headers"],
                    json=rendered["json"],
                    allow_redirects=False,
                    timeout=timeout,
                ) as response:
                    await response.content.read(EXCERPT_BYTES)
                if response.status != 200:
                    raise RuntimeError(f"the sink answered {response.status}")

            return send

        variants = {"redrive": redrive_sender, "aiohttp": aiohttp_sender, "floor": lambda: floor_sender(rendered)}
        figures: dict[str, list[float]] = {name: [] for name in variants}
        try:
            for n in range(args.repeat):
                names = list(variants)
                for name in names[n % 3 :] + names[: n % 3]:
                    figures[name].append(await cpu_per_request(variants[name], args.requests, args.concurrency))
                floor = figures["floor"][-1]
                print(
                    f"#{n + 1} "
                    + ", ".join(f"{name} {figures[name][-1]:.1f}" for name in variants)
                    + f" us/request; redrive / floor {figures['redrive'][-1] / floor:.2f}, "
                    f"aiohttp / floor {figures['aiohttp'][-1] / floor:.2f}, "
                    f"redrive / aiohttp {figures['redrive'][-1] / figures['aiohttp'][-1]:.2f}",
                    flush=True,
                )
        finally:
            await session.close()
    medians = {name: statistics.median(found) for name, found in figures.items()}
    ratios = [r / a for r, a in zip(figures["redrive"], figures["aiohttp"], strict=True)]
    print(
        "median: "
        + ", ".join(f"{name} {value:.1f}" for name, value in medians.items())
        + f" us/request; redrive / aiohttp per round: median {statistics.median(ratios):.2f}, "
        f"{min(ratios):.2f}-{max(ratios):.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per variant per round")
    parser.add_argument("--concurrency", type=int, default=64, help="tasks sending at once (default 64)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds, each timing both (default 5)")
    args = parser.parse_args()
    if min(args.requests, args.concurrency, args.repeat) < 1:
        parser.error("--requests, --concurrency and --repeat must be at least 1")
    with tempfile.TemporaryDirectory(prefix="redrive-outbound-") as workdir:
        procs = Procs(Path(workdir))
        try:
            port = start_sink(procs, "sink")
            uvloop.run(rounds(port, args))
        finally:
            procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
