"""Does a hanging destination starve another sharing the worker? A figure, not a test.

``uv run python benchmarks/destination_isolation.py [--rounds 3] [--events 400] [--only sqlite|postgresql] [--force]``

Per round and database: a fresh, migrated database and the service in this process (uvicorn on loopback, a worker
of 32 slots) with two http triggers: ``fast``, whose target answers after 20 ms, and ``hanging``, whose target
answers after a minute (its action gives up after 30 s), with ``limits: {concurrency: 2}`` on its destination.
``--events`` events of ``fast`` are stored while it is paused and timed from its resume until all have succeeded:
once alone, then once more after 40 events of ``hanging`` (more than the worker's slots) are due. Printed per
round: both drains in executions/s, their ratio (the issue's bound: beside >= 0.8 x alone; 30 of the 32 slots stay
free, so the slots alone allow 0.94) and this process's CPU seconds per event (the targets run in it too).
The behaviour (two slots held, the other thirty used) is asserted by
``tests/integration/test_destination_isolation.py``; this measures what it costs in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx2
import uvicorn
from aiohttp import web
from benchkit import fresh_url, guard_quiet
from sqlalchemy import text

from redrive.api.app import create_app
from redrive.db.database import Database
from redrive.db.engine import make_engine
from redrive.db.migrate import upgrade
from redrive.observe.logs import configure_logging
from redrive.plugins import load_plugins
from redrive.settings import Settings
from redrive.tokens import create_token
from redrive.triggers.config import parse_config

WORKER = 32
HANGING = 40
DELAYS = {"fast": 0.02, "hang": 60.0}


@contextmanager
def target() -> Iterator[int]:
    """An aiohttp endpoint in its own thread answering POST ``/{path}`` after ``DELAYS[path]``; yields its port."""
    loop = asyncio.new_event_loop()
    runner: list[web.AppRunner] = []
    started = threading.Event()

    async def hit(request: web.Request) -> web.Response:
        await asyncio.sleep(DELAYS[request.match_info["path"]])
        return web.Response(text="ok")

    def serve() -> None:
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_post("/{path}", hit)
        runner.append(web.AppRunner(app, access_log=None, shutdown_timeout=0.1, handler_cancellation=True))
        loop.run_until_complete(runner[0].setup())
        loop.run_until_complete(web.TCPSite(runner[0], "127.0.0.1", 0).start())
        started.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield runner[0].addresses[0][1]
    finally:
        asyncio.run_coroutine_threadsafe(runner[0].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def config(port: int) -> str:
    return f"""
triggers:
  - name: fast
    action: {{kind: http, url: "http://127.0.0.1:{port}/fast", allow_private: true}}
  - name: hanging
    action: {{kind: http, url: "http://127.0.0.1:{port}/hang", allow_private: true, timeout: 30s}}
    destination: partner-that-hangs
    retry: {{max_attempts: 1}}
    breaker: {{enabled: false}}
destinations:
  partner-that-hangs:
    limits: {{concurrency: 2}}
"""


@contextmanager
def service(url: str, port: int) -> Iterator[tuple[str, dict[str, str]]]:
    """The service on a free loopback port; yields its base URL and an operator's auth header."""
    upgrade(url)
    db = Database(url)
    try:
        token = db.write_sync(create_token("bench", "operator", datetime.now(UTC), actor="bench"))
    finally:
        db.close()
    settings = Settings(database_url=url, worker_concurrency=WORKER, poll_interval=0.2, shutdown_grace=0.5)
    plugins = load_plugins(settings.plugins, ())
    app = create_app(settings, parse_config(config(port), registry=plugins.registry), plugins=plugins)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the service did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", {"Authorization": f"Bearer {token}"}
    finally:
        server.should_exit = True
        thread.join(30)


def drain(client: httpx2.Client, auth: dict[str, str], url: str, start: int, count: int) -> tuple[float, float]:
    """Store ``count`` events of the paused ``fast``, resume it; seconds and CPU seconds until all have succeeded."""
    client.post("/api/v1/triggers/fast/pause", headers=auth).raise_for_status()
    for n in range(start, start + count):
        client.post("/hooks/fast", json={"n": n}).raise_for_status()
    engine = make_engine(url)
    done = text(
        "SELECT count(*) FROM executions WHERE status = 'succeeded' "
        "AND trigger_id = (SELECT id FROM triggers WHERE name = 'fast')"
    )
    began, cpu = time.monotonic(), time.process_time()
    client.post("/api/v1/triggers/fast/resume", headers=auth).raise_for_status()
    with engine.connect() as connection:
        while connection.execute(done).scalar_one() < start + count:
            connection.commit()  # a new snapshot per look
            time.sleep(0.005)
    seconds, cpu = time.monotonic() - began, time.process_time() - cpu
    engine.dispose()
    return seconds, cpu


def round_(kind: str, args: argparse.Namespace) -> tuple[float, float, float, float]:
    with (
        tempfile.TemporaryDirectory() as folder,
        fresh_url(kind, args.pg, "redrive_isolation", folder) as url,
        target() as port,
        service(url, port) as (base, auth),
        httpx2.Client(base_url=base, timeout=10) as c,
    ):
        drain(c, auth, url, 0, 100)  # warm up: connections, caches, statements
        alone = drain(c, auth, url, 100, args.events)
        for n in range(HANGING):
            c.post("/hooks/hanging", json={"n": n}).raise_for_status()
        time.sleep(1)  # the worker takes the two slots the limit allows
        beside = drain(c, auth, url, 100 + args.events, args.events)
    return args.events / alone[0], args.events / beside[0], alone[1] / args.events, beside[1] / args.events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument(
        "--pg", default=os.environ.get("REDRIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--force", action="store_true", help="measure even on a busy machine")
    args = parser.parse_args()
    guard_quiet(1.0, args.force)
    configure_logging("warning")  # a line per execution would be measured too
    for kind in ["sqlite", "postgresql"]:
        if args.only not in (None, kind):
            continue
        ratios = []
        for n in range(args.rounds):
            alone, beside, cpu_alone, cpu_beside = round_(kind, args)
            ratios.append(beside / alone)
            print(
                f"{kind:10} round {n + 1}: alone {alone:6.0f}/s ({cpu_alone * 1000:.2f} ms CPU/event), beside the "
                f"hanging destination {beside:6.0f}/s ({cpu_beside * 1000:.2f} ms CPU/event): {beside / alone:.2f}x",
                flush=True,
            )
        print(f"{kind:10} ratio median {statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
