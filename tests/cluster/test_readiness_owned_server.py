"""/readyz follows the database: 503 ``storage_unavailable`` while the PostgreSQL server is stopped, 200 again once
it is back, with no restart of redrive. The server is a throwaway cluster this test owns (initdb), not the shared
one; ingest refuses while it is down and accepts afterwards. Meanwhile the process stays alive: its event loop does
not stall, so ``/healthz`` keeps answering."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx2
import pytest
import structlog
from owned_postgres import owned_postgres

from redrive.db.migrate import upgrade
from support import Service, run_service, wait_until

pytestmark = pytest.mark.xdist_group("cluster")
CONFIG = "triggers: [{name: t, action: {kind: command, argv: ['true']}}]"
TICK = 0.01  # seconds between the probe's wake-ups
MAX_LAG = 2.0  # seconds; the stalls this guards against lasted 5 to 10, a busy machine adds up to a few hundred ms


def test_readyz_flips_with_the_database_server() -> None:
    with owned_postgres() as server:
        upgrade(server.url())
        with run_service(server.url(), CONFIG) as service:
            assert httpx2.get(f"{service.url}/readyz").status_code == 200

            server.stop()
            down = httpx2.get(f"{service.url}/readyz", timeout=30)
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "storage_unavailable"
            refused = httpx2.post(f"{service.url}/hooks/t", json={"n": 1}, timeout=30)
            assert refused.status_code == 503
            assert httpx2.get(f"{service.url}/healthz").status_code == 200  # alive, just not ready

            server.start()
            wait_until(
                lambda: httpx2.get(f"{service.url}/readyz", timeout=30).status_code == 200,
                timeout=30,
                what="readiness after the server came back",
            )
            assert httpx2.post(f"{service.url}/hooks/t", json={"n": 2}, timeout=30).status_code == 202


class LoopLag:
    """Runs on an event loop and keeps the longest delay past a ``TICK`` sleep's due time, in the loop's own time:
    how long the loop was kept from running anything else."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.ticks = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK
            await asyncio.sleep(TICK)
            self.worst = max(self.worst, loop.time() - due)
            self.ticks += 1


@pytest.fixture
def development_logs() -> Iterator[list[str]]:
    """structlog's development set-up (an unconfigured process's: rich tracebacks with locals, the slowest renderer
    there is), with the ``evt`` of every event logged collected in the yielded list."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    seen: list[str] = []

    def collect(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        seen.append(event_dict["event"])
        return event_dict

    structlog.configure(processors=[collect, *structlog.get_config()["processors"]])
    yield seen
    structlog.configure(**saved)


def service_loop(service: Service) -> asyncio.AbstractEventLoop:
    """The event loop the service runs on."""
    loop: asyncio.AbstractEventLoop = service.server.servers[0].get_loop()
    return loop


def test_the_event_loop_does_not_stall_while_the_database_server_is_down(development_logs: list[str]) -> None:
    with owned_postgres() as server:
        upgrade(server.url())
        with run_service(server.url(), CONFIG) as service:
            loop = service_loop(service)
            probe = LoopLag()
            running = asyncio.run_coroutine_threadsafe(probe.run(), loop)
            try:
                server.stop()
                # The worker claims every 0.2 s: each failed claim is a chance to block the loop (it did: a rich
                # traceback rendered per claim_failed, 5 to 10 s each here).
                wait_until(
                    lambda: development_logs.count("claim_failed") >= 5,
                    timeout=60,
                    what="the worker to fail five claims while the database is down",
                )
            finally:
                loop.call_soon_threadsafe(running.cancel)
            assert probe.ticks >= 10, "the probe hardly ran"
            assert probe.worst < MAX_LAG, f"the event loop stalled for {probe.worst:.2f}s"
            assert httpx2.get(f"{service.url}/healthz").status_code == 200  # still down: alive, not ready
