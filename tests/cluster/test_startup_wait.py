"""A node started before its PostgreSQL (compose, systemd and orchestrators start them together) waits for it,
logging each retry, and serves once the database answers; a database that never answers ends the process with one
clear line and exit code 1 after ``REDRIVE_DATABASE_WAIT``, not a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from cluster_support import Cluster, CountingTarget, CuttableProxy, free_port, http_trigger, write_config
from sqlalchemy.engine import make_url

from support import wait_until

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True), pytest.mark.xdist_group("cluster")]


@pytest.fixture
def cluster(tmp_path: Path, db_url: str, target: CountingTarget) -> Iterator[Cluster]:
    config = write_config(tmp_path, [http_trigger("orders", target.url)])
    running = Cluster(tmp_path, db_url, config)
    try:
        yield running
    finally:
        running.close()


def test_a_node_started_before_its_database_waits_for_it(cluster: Cluster, db_url: str, target: CountingTarget) -> None:
    url = make_url(db_url)
    with CuttableProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxy.cut()  # the database is not there yet
        via_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
        node = cluster.spawn("up", "node", REDRIVE_DATABASE_URL=via_proxy, REDRIVE_DATABASE_WAIT="120")

        def retrying() -> bool:
            assert node.process.poll() is None, f"the node gave up instead of waiting\n{node.logs()}"
            return node.log.read_text(errors="replace").count("stamina.retry_scheduled") >= 2

        wait_until(retrying, timeout=60, what="the node to log that it is retrying", context=node.logs)

        proxy.restore()  # the database comes up
        cluster.ready(node)
        response = httpx2.post(f"{node.url}/hooks/orders", json={"n": 1}, headers={"Idempotency-Key": "k1"})
        assert response.status_code == 202, response.text
        wait_until(lambda: target.keys["k1"] == 1, timeout=60, what="the event to run", context=cluster.logs)
        assert node.stop() == 0


def test_a_database_that_never_answers_ends_the_node_with_one_clear_line(cluster: Cluster) -> None:
    nowhere = f"postgresql+psycopg://redrive@127.0.0.1:{free_port()}/redrive"
    node = cluster.spawn("serve", "node", REDRIVE_DATABASE_URL=nowhere, REDRIVE_DATABASE_WAIT="1")
    assert node.process.wait(60) == 1, node.logs()
    log = node.log.read_text(errors="replace")
    assert "error: cannot reach the postgresql+psycopg database (gave up after REDRIVE_DATABASE_WAIT=1s)" in log
    assert "Connection refused" in log
    assert "Traceback" not in log
