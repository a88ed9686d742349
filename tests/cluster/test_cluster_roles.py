"""`redrive serve` and `redrive worker` as separate processes on one PostgreSQL: an event ingested by the API process
is run by the worker process at once, woken by NOTIFY (the poll interval is far longer than the test may wait);
the worker process serves no API; both report their heartbeats."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import psycopg
import pytest
from cluster_support import Cluster, CountingTarget, Process, http_trigger, write_config

from redrive.db.migrate import head_revision
from redrive.queue.notify import libpq_url
from support import query, wait_until

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True), pytest.mark.xdist_group("cluster")]
LONG_POLL = "300"  # only a NOTIFY can explain a pickup sooner than this


@pytest.fixture
def cluster(tmp_path: Path, db_url: str, target: CountingTarget) -> Iterator[Cluster]:
    config = write_config(tmp_path, [http_trigger("orders", target.url)])
    running = Cluster(tmp_path, db_url, config, env={"REDRIVE_POLL_INTERVAL": LONG_POLL})
    try:
        yield running
    finally:
        running.close()


def attempts_made(process: Process) -> float:
    """The attempts ``process`` made, summed over its ``redrive_attempts_total`` series."""
    text = httpx2.get(f"{process.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("redrive_attempts_total{")
    )


def test_an_idle_worker_in_another_process_runs_an_event_at_once(
    cluster: Cluster, target: CountingTarget, db_url: str
) -> None:
    api = cluster.spawn("serve", "api")
    worker = cluster.spawn("worker", "worker")
    cluster.ready(api, worker)
    # The worker has made its first claim (empty) and now sleeps for the long poll interval.
    wait_until(
        lambda: len(query(db_url, "SELECT id FROM nodes")) == 2,
        timeout=30,
        what="both heartbeats",
        context=cluster.logs,
    )
    roles = sorted(row.role for row in query(db_url, "SELECT role FROM nodes"))
    assert roles == ["api", "worker"]

    for n in range(3):
        response = httpx2.post(f"{api.url}/hooks/orders", json={"n": n}, headers={"Idempotency-Key": f"k{n}"})
        assert response.status_code == 202, response.text
        wait_until(lambda n=n: target.keys[f"k{n}"] == 1, timeout=60, what=f"event {n} to run", context=cluster.logs)

    # The target has the request before the worker's completion commits: wait for the record, not the delivery.
    wait_until(
        lambda: [row.status for row in query(db_url, "SELECT status FROM executions ORDER BY id")] == ["succeeded"] * 3,
        timeout=30,
        what="the three executions recorded as succeeded",
        context=cluster.logs,
    )
    # Who ran them: the worker process; the API process runs none (metrics are per process).
    assert attempts_made(worker) == 3
    assert attempts_made(api) == 0
    assert httpx2.post(f"{worker.url}/hooks/orders", json={"n": 9}).status_code == 404
    assert cluster.processes[0].stop() == 0
    assert cluster.processes[1].stop() == 0
    assert query(db_url, "SELECT id FROM nodes") == []  # a graceful stop removes the node's row


def test_serve_answers_the_api_and_worker_only_health(cluster: Cluster, db_url: str) -> None:
    api = cluster.spawn("serve", "api")
    worker = cluster.spawn("worker", "worker")
    cluster.ready(api, worker)
    admin = (cluster.directory / "redrive-admin-token").read_text().strip()  # created by the API's first start
    headers = {"Authorization": f"Bearer {admin}"}
    assert httpx2.get(f"{api.url}/api/v1/stats", headers=headers).status_code == 200
    assert httpx2.get(f"{worker.url}/api/v1/stats", headers=headers).status_code == 404
    for process in (api, worker):
        assert httpx2.get(f"{process.url}/healthz").json() == {"status": "ok"}
        assert httpx2.get(f"{process.url}/readyz").json() == {"status": "ready"}


@pytest.fixture
def empty_database(db_url: str) -> str:
    """A PostgreSQL database with no schema at all, as on a first deployment."""
    with psycopg.connect(libpq_url(db_url), autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")
    return db_url


def test_nodes_starting_together_on_an_empty_database_migrate_once(
    tmp_path: Path, empty_database: str, target: CountingTarget
) -> None:
    config = write_config(tmp_path, [http_trigger("orders", target.url)])
    cluster = Cluster(tmp_path, empty_database, config)
    try:
        started = [cluster.spawn("serve", "api-1"), cluster.spawn("serve", "api-2"), cluster.spawn("worker", "w")]
        cluster.ready(*started)  # none failed on a half-created schema or a second admin token
        assert query(empty_database, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
        assert query(empty_database, "SELECT name FROM tokens") == [("admin",)]
    finally:
        cluster.close()
