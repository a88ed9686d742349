"""Only work that is due now is announced to the other processes: an ingested event sends a NOTIFY on the queue
channel; a retry scheduled for later wakes no one else (their claims would find nothing due)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx2
import psycopg
import pytest

from redrive.queue.notify import QUEUE_CHANNEL, libpq_url
from support import query, run_service, wait_until

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]
CONFIG = """
triggers:
  - name: flaky
    action: {kind: command, argv: ["sh", "-c", "exit 75"]}
    retry: {max_attempts: 5, base: 1h}
  - name: fine
    action: {kind: command, argv: ["true"]}
"""


@pytest.fixture
def queue_notifications(db_url: str) -> Iterator[list[str]]:
    """Every NOTIFY on the queue channel, from any process, as seen by a listener of the test's own."""
    seen: list[str] = []
    listening, done = threading.Event(), threading.Event()

    def listen() -> None:
        with psycopg.connect(libpq_url(db_url), autocommit=True) as connection:
            connection.execute(f'LISTEN "{QUEUE_CHANNEL}"')
            listening.set()
            while not done.is_set():
                for notice in connection.notifies(timeout=0.1):
                    seen.append(notice.payload)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert listening.wait(10)
    try:
        yield seen
    finally:
        done.set()
        thread.join(10)


def test_a_scheduled_retry_is_not_announced_but_new_work_is(db_url: str, queue_notifications: list[str]) -> None:
    with run_service(db_url, CONFIG) as service:
        assert httpx2.post(f"{service.url}/hooks/flaky", json={}, timeout=10).status_code == 202
        wait_until(
            lambda: query(db_url, "SELECT status, attempts FROM executions") == [("pending", 1)],
            what="the first attempt to fail and its retry to be scheduled an hour later",
        )
        assert httpx2.post(f"{service.url}/hooks/fine", json={}, timeout=10).status_code == 202
        wait_until(lambda: len(queue_notifications) >= 2, what="the second event's announcement")
    # One announcement per ingested event; the retry (between them) made none.
    assert len(queue_notifications) == 2
