"""A templated destination's row that names no trigger takes on the trigger's limits.

A claim applies the policy of the trigger a destination's row names, and reads only restricted rows. A templated
destination's row is made naming its trigger with its first execution, but a row can exist before that: an operator
forced or reset the destination before its first event, outcomes were counted while the trigger declared no limits,
or the row predates migration 0013. Such a row is adopted by the next ingest that goes there, and, for executions
already queued, when the worker starts. A replay makes (or adopts) its destination's row as an ingest does. Real
HTTP on loopback: the target records how many requests it held at once.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import httpx2

from redrive.db.database import Database
from redrive.destinations.store import force_job
from support import Service, TimedTarget, run_service, scalar, wait_until

EVENTS = 4


def config(target: TimedTarget | str, limits: str, breaker: str = "{enabled: false}") -> str:
    url = target if isinstance(target, str) else target.url("slow")
    return f"""
triggers:
  - name: tenants
    action: {{kind: http, url: "{url}", allow_private: true}}
    destination: "{{{{ payload.tenant }}}}"
    breaker: {breaker}
    retry: {{max_attempts: 1}}
{limits}"""


LIMITED = "    limits: {concurrency: 1}\n"


def reset_by_an_operator(db_url: str, name: str) -> None:
    """An operator's reset of a destination with no row yet: the row it makes names no trigger."""
    db = Database(db_url)
    try:
        db.write_sync(force_job(name, "reset", "ops", datetime.now(UTC)))
    finally:
        db.close()
    assert scalar(db_url, "SELECT count(*) FROM destinations WHERE name = 'acme' AND trigger IS NULL") == 1


def send(service: Service) -> None:
    with httpx2.Client(base_url=service.url, timeout=10) as client:
        for n in range(EVENTS):
            assert client.post("/hooks/tenants", json={"tenant": "acme", "n": n}).status_code == 202


def operate(service: Service, action: str) -> None:
    response = httpx2.post(f"{service.url}/api/v1/triggers/tenants/{action}", headers=service.auth("operator"))
    assert response.status_code < 300, response.text


def delivered(db_url: str) -> None:
    done = "SELECT count(*) FROM executions WHERE status = 'succeeded'"
    wait_until(lambda: scalar(db_url, done) == EVENTS, timeout=30, what="every delivery")


def test_an_ingest_adopts_a_row_an_operator_made_before_the_first_event(db_url: str) -> None:
    reset_by_an_operator(db_url, "acme")
    with TimedTarget({"slow": 0.3}) as target, run_service(db_url, config(target, LIMITED)) as service:
        send(service)
        delivered(db_url)
    assert target.peak["slow"] == 1
    assert scalar(db_url, "SELECT trigger FROM destinations WHERE name = 'acme'") == "tenants"


def test_the_worker_start_adopts_the_rows_of_a_backlog_queued_before_its_trigger_had_limits(db_url: str) -> None:
    reset_by_an_operator(db_url, "acme")
    with TimedTarget({"slow": 0.3}) as target:
        with run_service(db_url, config(target, "")) as service:
            operate(service, "pause")
            send(service)  # no limits declared: the ingest makes or adopts no row
            tokens = service.tokens
        assert scalar(db_url, "SELECT count(*) FROM destinations WHERE trigger IS NULL") == 1
        with run_service(db_url, config(target, LIMITED), tokens=tokens) as service:
            operate(service, "resume")
            delivered(db_url)
    assert target.peak["slow"] == 1


def test_a_bulk_replay_makes_the_row_of_a_destination_its_trigger_now_limits(db_url: str) -> None:
    with socket.socket() as closed:  # a port nothing listens on: every attempt is refused, a transient failure
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/slow"
    with run_service(db_url, config(refused, "")) as service:  # no limits, no breaker: no destination row
        send(service)
        dead = "SELECT count(*) FROM executions WHERE status = 'failed_retryable'"
        wait_until(lambda: scalar(db_url, dead) == EVENTS, timeout=30, what="the dead letters")
        tokens = service.tokens
    assert scalar(db_url, "SELECT count(*) FROM destinations") == 0
    with TimedTarget({"slow": 0.3}) as target, run_service(db_url, config(target, LIMITED), tokens=tokens) as service:
        body = {"filter": {"trigger": "tenants"}, "rate": 100}
        response = httpx2.post(f"{service.url}/api/v1/replays", json=body, headers=service.auth("operator"))
        assert response.status_code == 202, response.text
        delivered(db_url)
    assert target.peak["slow"] == 1
    assert scalar(db_url, "SELECT trigger FROM destinations WHERE name = 'acme'") == "tenants"


def test_the_worker_start_restricts_the_rows_of_a_trigger_that_gained_limits(db_url: str) -> None:
    """Its own breaker made the trigger's rows name it, unrestricted; limits added later (a restart's config) must
    restrict them, or the claims, which read only restricted rows, take their executions freely."""
    own = "{consecutive: 50}"
    with TimedTarget({"slow": 0.3}) as target:
        with run_service(db_url, config(target, "", own)) as service:
            send(service)
            delivered(db_url)
            tokens = service.tokens
        assert scalar(db_url, "SELECT trigger FROM destinations WHERE name = 'acme'") == "tenants"
        target.peak["slow"] = 0  # nothing is in flight between the runs
        with run_service(db_url, config(target, LIMITED, own), tokens=tokens) as service:
            send(service)
            wait_until(
                lambda: scalar(db_url, "SELECT count(*) FROM executions WHERE status = 'succeeded'") == 2 * EVENTS,
                timeout=30,
                what="every delivery",
            )
    assert target.peak["slow"] == 1
