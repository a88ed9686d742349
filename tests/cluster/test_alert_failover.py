"""Leader failover while an alert fires (PostgreSQL, two ``redrive up`` processes): the leader fires and notifies,
is killed, and the other node takes over from the stored state: it does not notify the firing again, and it delivers
the resolution once the dead letters are replayed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest
from cluster_support import Cluster, Process

from alert_support import Receiver, receiver
from redrive.db.database import Database
from redrive.tokens import create_token
from support import query, wait_until

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True), pytest.mark.xdist_group("cluster")]
FAST = {"REDRIVE_ALERT_INTERVAL": "0.2", "REDRIVE_SWEEP_INTERVAL": "0.5", "REDRIVE_HEARTBEAT_INTERVAL": "0.5"}


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as running:
        running.default["/target"] = 503
        yield running


@pytest.fixture
def cluster(tmp_path: Path, db_url: str, hooks: Receiver) -> Iterator[Cluster]:
    config = tmp_path / "redrive.yaml"
    document = {
        "triggers": [
            {
                "name": "orders",
                "action": {"kind": "http", "url": f"{hooks.url}/target", "allow": ["127.0.0.1"], "timeout": "5s"},
                "retry": {"max_attempts": 1},
            }
        ],
        "alerts": [{"name": "orders-dead", "when": {"dlq_size": ">= 3"}, "notify": ["slack"]}],
        "channels": [{"name": "slack", "kind": "slack", "url": f"{hooks.url}/slack", "allow": ["127.0.0.1"]}],
    }
    config.write_text(json.dumps(document), encoding="utf-8")
    running = Cluster(tmp_path, db_url, config, env=FAST)
    try:
        yield running
    finally:
        running.close()


def leader(cluster: Cluster, db_url: str) -> Process | None:
    """The process whose node row says it holds the maintenance lock."""
    pids = {row.pid for row in query(db_url, "SELECT pid FROM nodes WHERE leader AND dead_at IS NULL")}
    return next((p for p in cluster.processes if p.process.pid in pids and p.process.poll() is None), None)


def slack_titles(hooks: Receiver) -> list[str]:
    return [r.json["text"].split(":")[0] for r in hooks.at("/slack")]


def test_a_failover_while_firing_neither_repeats_the_firing_nor_loses_the_resolution(
    cluster: Cluster, db_url: str, hooks: Receiver
) -> None:
    # One process per `up`: the test kills the leading node, and a supervisor would restart it.
    first, second = cluster.start("up", "a", REDRIVE_PROCESSES="1"), cluster.start("up", "b", REDRIVE_PROCESSES="1")
    old = wait_until(lambda: leader(cluster, db_url), timeout=30, what="a leader", context=cluster.logs)
    survivor = second if old is first else first
    for n in range(3):
        assert httpx2.post(f"{survivor.url}/hooks/orders", json={"n": n}, timeout=10).status_code == 202
    wait_until(lambda: len(hooks.at("/slack")) == 1, timeout=30, what="the firing notification", context=cluster.logs)
    wait_until(
        lambda: query(db_url, "SELECT status FROM alert_notifications")[0].status == "delivered",
        what="the firing delivery recorded",
    )

    old.kill()  # no goodbye: its advisory lock goes with its connection
    wait_until(lambda: leader(cluster, db_url) is survivor, timeout=30, what="the survivor leads", context=cluster.logs)
    hooks.default["/target"] = 200
    database = Database(db_url)
    try:
        token = database.write_sync(create_token("ops", "operator", datetime.now(UTC), actor="test"))
    finally:
        database.close()
    replay = httpx2.post(
        f"{survivor.url}/api/v1/replays",
        json={"filter": {"trigger": "orders"}, "rate": 100},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert replay.status_code in (200, 202), replay.text
    wait_until(lambda: len(hooks.at("/slack")) == 2, timeout=30, what="the resolution", context=cluster.logs)
    wait_until(
        lambda: {r.status for r in query(db_url, "SELECT status FROM alert_notifications")} == {"delivered"},
        what="the resolution's delivery recorded",
    )

    assert slack_titles(hooks) == ["[FIRING] orders-dead", "[RESOLVED] orders-dead"]
    transitions = query(db_url, "SELECT key FROM alert_transitions ORDER BY id")
    assert [t.key for t in transitions] == ["orders-dead:1:firing", "orders-dead:2:resolved"]
