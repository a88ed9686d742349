"""A database outage, made by cutting a TCP proxy between redrive and PostgreSQL: ingest answers 503
``storage_unavailable`` and stores nothing, readiness fails, a result finished during the outage is kept and written
once the database is back, and everything resumes on its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx2
import pytest
from cluster_support import CuttableProxy
from pytest_httpserver import HTTPServer
from sqlalchemy.engine import make_url
from stamina.instrumentation import RetryDetails, get_on_retry_hooks, set_on_retry_hooks
from werkzeug import Request, Response

from support import query, run_service, wait_until

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]


@pytest.fixture
def retries() -> Iterator[list[RetryDetails]]:
    """Every retry stamina schedules while the test runs (the worker's write of a held result is one)."""
    seen: list[RetryDetails] = []
    before = get_on_retry_hooks()
    set_on_retry_hooks([*before, seen.append])
    try:
        yield seen
    finally:
        set_on_retry_hooks(before)


@pytest.fixture
def proxy(db_url: str) -> Iterator[CuttableProxy]:
    url = make_url(db_url)
    with CuttableProxy((url.host or "127.0.0.1", url.port or 5432)) as cuttable:
        yield cuttable


def test_ingest_refuses_while_the_database_is_away_and_results_are_written_when_it_returns(
    db_url: str, proxy: CuttableProxy, httpserver: HTTPServer, retries: list[RetryDetails]
) -> None:
    release, arrived = threading.Event(), threading.Event()
    hits: list[str] = []

    def slow_target(request: Request) -> Response:
        hits.append(request.get_json()["n"])
        arrived.set()
        release.wait(30)
        return Response("done")

    httpserver.expect_request("/target").respond_with_handler(slow_target)
    config = f"""
triggers:
  - name: t
    action:
      {{kind: http, url: "{httpserver.url_for("/target")}", json: {{n: "{{{{ payload.n }}}}"}}, allow: [127.0.0.1]}}
"""
    via_proxy = make_url(db_url).set(port=proxy.port).render_as_string(hide_password=False)
    with run_service(via_proxy, config, lease_seconds=60) as service:
        first = httpx2.post(f"{service.url}/hooks/t", json={"n": 1}, timeout=10)
        assert first.status_code == 202
        assert arrived.wait(10)  # the action is running

        proxy.cut()
        refused = httpx2.post(f"{service.url}/hooks/t", json={"n": 2}, timeout=30)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "storage_unavailable"
        not_ready = httpx2.get(f"{service.url}/readyz", timeout=30)
        assert not_ready.status_code == 503
        assert not_ready.json()["error"]["code"] == "storage_unavailable"
        release.set()  # the action finishes while the database is away; its result must not be lost
        wait_until(lambda: retries, timeout=30, what="the worker to retry writing the result it holds")

        proxy.restore()
        wait_until(
            lambda: query(db_url, "SELECT status, attempts FROM executions") == [("succeeded", 1)],
            timeout=30,
            what="the result kept through the outage to be written",
        )
        wait_until(lambda: httpx2.get(f"{service.url}/readyz").status_code == 200, timeout=30, what="readiness")
        again = httpx2.post(f"{service.url}/hooks/t", json={"n": 3}, timeout=10)
        assert again.status_code == 202
        wait_until(lambda: hits == ["1", "3"], timeout=30, what="the next event to run")
    # Event 2 was refused and never stored; nothing ran twice.
    payloads = [row.payload["n"] for row in query(db_url, "SELECT payload FROM events ORDER BY id")]
    assert payloads == [1, 3]
    assert query(db_url, "SELECT count(*) FROM attempts")[0][0] == 2
