"""Per-destination limits hold across processes: one API process and three worker processes on one PostgreSQL.

A destination limited to 5 concurrent requests never sees a sixth, though the three workers have 96 slots between
them and 150 executions are due; a destination limited to 20/s receives 20/s (within 15%) over 10 s. Both backlogs
are laned on the way (``redrive.destinations.store.lane``), by whichever worker's claim finds them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from cluster_support import Cluster, http_trigger, write_config

from support import TimedTarget, scalar, wait_until

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True), pytest.mark.xdist_group("cluster")]
ENV = {
    "REDRIVE_WORKER_CONCURRENCY": "32",
    "REDRIVE_POLL_INTERVAL": "1",
    "REDRIVE_HEARTBEAT_INTERVAL": "0.5",
    "REDRIVE_SHUTDOWN_GRACE": "2",
}
LIMITED, PACED = 150, 300
RATE = 20.0


@pytest.fixture
def target() -> Iterator[TimedTarget]:
    with TimedTarget({"limited": 0.1, "paced": 0.0}) as timed:
        yield timed


async def deliver(url: str, trigger: str, count: int) -> None:
    async with aiohttp.ClientSession() as session:

        async def one(n: int) -> None:
            async with session.post(f"{url}/hooks/{trigger}", json={"n": n}, headers={"X-Key": f"{trigger}-{n}"}) as r:
                assert r.status == 202, await r.text()

        await asyncio.gather(*(one(n) for n in range(count)))


def succeeded(db_url: str, trigger: str) -> int:
    sql = (
        "SELECT count(*) FROM executions e JOIN triggers t ON t.id = e.trigger_id "
        "WHERE t.name = :t AND status = 'succeeded'"
    )
    return int(scalar(db_url, sql, t=trigger))


def test_concurrency_and_rate_limits_hold_across_three_worker_processes(
    tmp_path: Path, db_url: str, target: TimedTarget
) -> None:
    config = write_config(
        tmp_path,
        [
            http_trigger("limited", target.url("limited"), destination="limited", limits={"concurrency": 5}),
            http_trigger("paced", target.url("paced"), destination="paced", limits={"rate": f"{RATE:g}/s"}),
        ],
    )
    cluster = Cluster(tmp_path, db_url, config, env=ENV)
    try:
        api = cluster.start("serve", "api")
        workers = [cluster.spawn("worker", f"worker-{n}") for n in range(3)]
        cluster.ready(*workers)
        asyncio.run(deliver(api.url, "limited", LIMITED))
        wait_until(lambda: succeeded(db_url, "limited") == LIMITED, timeout=60, what="every limited delivery")
        asyncio.run(deliver(api.url, "paced", PACED))
        wait_until(lambda: succeeded(db_url, "paced") == PACED, timeout=60, what="every paced delivery")
    finally:
        cluster.close()
    # Both backlogs were laned by the workers' claims (destinations.store.lane), and every laned row was leased.
    laned = "SELECT count(*) FROM destinations WHERE name IN ('limited', 'paced') AND laned_to IS NOT NULL"
    assert scalar(db_url, laned) == 2
    assert scalar(db_url, "SELECT count(*) FROM executions WHERE dest_waiting") == 0
    assert target.peak["limited"] == 5, target.peak  # the limit, reached (so the three workers did share it)
    arrivals = sorted(target.arrivals["paced"])
    window = [t for t in arrivals if t < arrivals[0] + 10.0]
    assert round(RATE * 10 * 0.85) <= len(window) <= round(RATE * 10 * 1.15), len(window)  # 170..230, not 229.99…
