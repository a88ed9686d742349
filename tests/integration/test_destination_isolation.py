"""A hanging destination holds no more worker slots than its concurrency limit, so another destination sharing the
worker gets every other slot. Real HTTP on loopback; what is asserted is how many requests each target held at once,
not how long anything took. The fast target answers after a fixed delay, so its throughput is the slots it gets
over that delay: the issue's bound (at least 80% of its throughput alone) is asserted as slots beside the hanging
destination over slots alone, and measured in time by ``benchmarks/destination_isolation.py``.

The hanging target answers after a minute and its action gives up after 30 s, so its two slots stay held for the
whole test. The fast destination's executions are stored while its trigger is paused and released at once, so the
worker has more of them due than it has slots free.
"""

from __future__ import annotations

import httpx2

from support import Service, TimedTarget, query, run_service, scalar, wait_until

WORKER = 32
HANGING_LIMIT = 2
HANGING = 40  # more than the worker's slots: without the limit they would take every one
FAST = 150


def config(target: TimedTarget) -> str:
    return f"""
triggers:
  - name: fast
    action: {{kind: http, url: "{target.url("fast")}", allow_private: true}}
  - name: hanging
    action: {{kind: http, url: "{target.url("hang")}", allow_private: true, timeout: 30s}}
    destination: partner-that-hangs
    retry: {{max_attempts: 1}}
    breaker: {{enabled: false}}
destinations:
  partner-that-hangs:
    limits: {{concurrency: {HANGING_LIMIT}}}
"""


def post(service: Service, path: str) -> None:
    response = httpx2.post(f"{service.url}{path}", headers=service.auth("operator"), timeout=10)
    assert response.status_code < 300, response.text


def test_a_hanging_destination_holds_its_concurrency_and_another_gets_every_other_slot(db_url: str) -> None:
    with (
        TimedTarget({"fast": 0.5, "hang": 60.0}) as target,
        run_service(db_url, config(target), worker_concurrency=WORKER) as service,
        httpx2.Client(base_url=service.url, timeout=10) as client,  # one client: no TLS context per request
    ):
        drain(service, client, db_url, 0)
        alone, target.peak["fast"] = target.peak["fast"], 0  # nothing is in flight between drains
        for n in range(HANGING):
            assert client.post("/hooks/hanging", json={"n": n}).status_code == 202
        wait_until(
            lambda: target.peak["hang"] == HANGING_LIMIT,
            what="the hanging destination to hold its slots",
            context=lambda: f"{target.peak} {query(db_url, 'SELECT * FROM destinations')}",
        )
        drain(service, client, db_url, FAST)
        beside = target.peak["fast"]
        # 38 of the hanging destination's executions were due all along, and none of them took a slot.
        assert (len(target.arrivals["hang"]), target.peak["hang"]) == (HANGING_LIMIT, HANGING_LIMIT)
    assert (alone, beside) == (WORKER, WORKER - HANGING_LIMIT)
    assert beside / alone >= 0.8


def drain(service: Service, client: httpx2.Client, db_url: str, start: int) -> None:
    """Store ``FAST`` events for the paused fast trigger, resume it, and wait until the worker has delivered them."""
    post(service, "/api/v1/triggers/fast/pause")
    for n in range(start, start + FAST):
        assert client.post("/hooks/fast", json={"n": n}).status_code == 202
    post(service, "/api/v1/triggers/fast/resume")
    done = (
        "SELECT count(*) FROM executions WHERE status = 'succeeded' "
        "AND trigger_id = (SELECT id FROM triggers WHERE name = 'fast')"
    )
    wait_until(lambda: scalar(db_url, done) == start + FAST, timeout=60, what="the fast drain")
