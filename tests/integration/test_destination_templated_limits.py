"""A templated destination's limits hold from its very first execution, on both databases, over real HTTP.

Its row is made with the execution (``redrive.destinations.store.seed_rows``), restricted and naming its trigger,
so the first claim already plans for it: a burst sent to a destination with ``concurrency: 1`` reaches the target
one request at a time. Before, the row was made at the first completion, and without the limits (a claim knew a
templated destination only by its name), so the burst went out at the worker's concurrency.
"""

from __future__ import annotations

import httpx2

from support import TimedTarget, query, run_service, scalar, wait_until

BURST = 6


def config(target: TimedTarget) -> str:
    return f"""
triggers:
  - name: partners
    action: {{kind: http, url: "{target.url("slow")}", allow_private: true}}
    destination: "partner-{{{{ payload.partner }}}}"
    limits: {{concurrency: 1}}
    breaker: {{enabled: false}}
"""


def test_a_templated_destination_is_limited_from_its_first_execution(db_url: str) -> None:
    with TimedTarget({"slow": 0.2}) as target, run_service(db_url, config(target), worker_concurrency=8) as service:
        operator = service.auth("operator")
        assert httpx2.post(f"{service.url}/api/v1/triggers/partners/pause", headers=operator).status_code == 200
        for n in range(BURST):  # stored while paused, then released at once: a burst the first claim sees whole
            response = httpx2.post(f"{service.url}/hooks/partners", json={"partner": "acme", "n": n}, timeout=10)
            assert response.status_code == 202, response.text
        assert httpx2.post(f"{service.url}/api/v1/triggers/partners/resume", headers=operator).status_code == 200
        done = "SELECT count(*) FROM executions WHERE status = 'succeeded'"
        wait_until(lambda: scalar(db_url, done) == BURST, timeout=30, what="the burst delivered")
        rows = query(db_url, "SELECT name, trigger, concurrency FROM destinations")
    assert target.peak["slow"] == 1, target.peak  # one request at a time, from the first event on
    assert len(target.arrivals["slow"]) == BURST
    assert [tuple(row) for row in rows] == [("partner-acme", "partners", 1)]
