"""Ingest over real HTTP on both databases: durable accept, duplicates, conflicts, limits, races."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
import httpx2
import pytest

from support import query, run, run_service, scalar

CONFIG = """
triggers:
  - name: orders
    action: {kind: command, argv: ["true"]}
  - name: lenient
    source: {on_key_conflict: accept, max_body_bytes: 64}
    action: {kind: command, argv: ["true"]}
  - name: messages
    source:
      idempotency_key: ["header:Idempotency-Key", "body:data.key.id"]
      filter: "payload.event == 'messages.upsert'"
    action: {kind: command, argv: ["true"]}
"""


@pytest.fixture
def service(db_url: str):
    # No worker: these tests are about what ingest stores.
    with run_service(db_url, CONFIG, worker_concurrency=0) as running:
        yield running


def post(service, path: str, body: bytes | str, **headers: str) -> httpx2.Response:
    return httpx2.post(service.url + path, content=body, headers=headers, timeout=10)


def test_new_event_is_stored_before_the_202(service, db_url: str) -> None:
    response = post(service, "/hooks/orders", b'{"messageId": "m-1", "total": 5}')
    assert response.status_code == 202
    body = response.json()
    assert body == {"event_id": body["event_id"], "execution_id": body["execution_id"], "duplicate": False}
    event = query(db_url, "SELECT idempotency_key, body_sha256 FROM events WHERE id = :id", id=body["event_id"])
    assert event == [("m-1", hashlib.sha256(b'{"messageId": "m-1", "total": 5}').hexdigest())]
    status = scalar(db_url, "SELECT status FROM executions WHERE id = :id", id=body["execution_id"])
    assert status == "pending"


def test_same_key_same_body_is_a_counted_duplicate_naming_the_original(service, db_url: str) -> None:
    first = post(service, "/hooks/orders", b'{"x": 1}', **{"Idempotency-Key": "k-1"})
    again = post(service, "/hooks/orders", b'{"x": 1}', **{"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {**first.json(), "duplicate": True}
    assert scalar(db_url, "SELECT count(*) FROM events") == 1
    assert scalar(db_url, "SELECT count(*) FROM executions") == 1
    assert scalar(db_url, "SELECT value FROM daily_counters WHERE name = 'duplicates'") == 1


def test_same_key_different_body_is_rejected_and_counted(service, db_url: str) -> None:
    post(service, "/hooks/orders", b'{"x": 1}', **{"Idempotency-Key": "k-2"})
    conflict = post(service, "/hooks/orders", b'{"x": 2}', **{"Idempotency-Key": "k-2"})
    assert conflict.status_code == 422
    assert conflict.json()["error"]["code"] == "idempotency_key_reused"
    assert scalar(db_url, "SELECT count(*) FROM events") == 1
    assert scalar(db_url, "SELECT value FROM daily_counters WHERE name = 'key_conflicts'") == 1


def test_on_key_conflict_accept_treats_a_conflict_as_a_duplicate(service, db_url: str) -> None:
    first = post(service, "/hooks/lenient", b'{"messageId": "k-3", "v": 1}')
    second = post(service, "/hooks/lenient", b'{"messageId": "k-3", "v": 2}')
    assert second.status_code == 200
    assert second.json() == {**first.json(), "duplicate": True}
    assert scalar(db_url, "SELECT value FROM daily_counters WHERE name = 'key_conflicts'") == 1


def test_events_without_a_key_are_each_stored(service, db_url: str) -> None:
    assert post(service, "/hooks/orders", b'{"same": true}').status_code == 202
    assert post(service, "/hooks/orders", b'{"same": true}').status_code == 202
    assert scalar(db_url, "SELECT count(*) FROM events WHERE idempotency_key IS NULL") == 2


def test_key_sources_are_tried_in_order(service, db_url: str) -> None:
    body = b'{"event": "messages.upsert", "data": {"key": {"id": "WA-1"}}}'
    post(service, "/hooks/messages", body)
    post(service, "/hooks/messages", body, **{"Idempotency-Key": "from-header"})
    keys = {row[0] for row in query(db_url, "SELECT idempotency_key FROM events")}
    assert keys == {"WA-1", "from-header"}


def test_filtered_event_is_stored_without_an_execution(service, db_url: str) -> None:
    response = post(service, "/hooks/messages", b'{"event": "connection.update", "data": {"key": {"id": "c1"}}}')
    assert response.status_code == 202
    assert response.json()["filtered"] is True
    assert response.json()["execution_id"] is None
    assert scalar(db_url, "SELECT count(*) FROM events WHERE filtered") == 1
    assert scalar(db_url, "SELECT count(*) FROM executions") == 0


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/hooks/nope", b"{}", 404, "unknown_trigger"),
        ("/hooks/orders", b"{not json", 400, "invalid_json"),
        ("/hooks/lenient", b'{"padding": "' + b"x" * 100 + b'"}', 413, "payload_too_large"),
    ],
)
def test_bad_requests_get_a_coded_error_and_store_nothing(service, db_url, path, body, status, code) -> None:
    response = post(service, path, body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert scalar(db_url, "SELECT count(*) FROM events") == 0


def test_chunked_body_over_the_limit_is_refused_while_reading(service, db_url: str) -> None:
    def chunks():
        for _ in range(10):
            yield b"x" * 16

    response = httpx2.post(service.url + "/hooks/lenient", content=chunks(), timeout=10)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert scalar(db_url, "SELECT count(*) FROM events") == 0


def test_secret_headers_are_stored_redacted(service, db_url: str) -> None:
    post(service, "/hooks/orders", b"{}", Authorization="Bearer s3cr3t-value", apikey="k3y-value", **{"X-Ok": "1"})
    headers = scalar(db_url, "SELECT headers FROM events")
    text = str(headers)
    assert "s3cr3t-value" not in text
    assert "k3y-value" not in text
    assert "x-ok" in text


def test_fifty_concurrent_identical_requests_make_one_event(service, db_url: str) -> None:
    async def burst() -> list[tuple[int, dict]]:
        async with aiohttp.ClientSession() as session:

            async def one() -> tuple[int, dict]:
                async with session.post(
                    service.url + "/hooks/orders", data=b'{"n": 1}', headers={"Idempotency-Key": "race"}
                ) as response:
                    return response.status, await response.json()

            return await asyncio.gather(*(one() for _ in range(50)))

    results = run(burst())
    assert sorted(status for status, _ in results) == [200] * 49 + [202]
    ids = {(body["event_id"], body["execution_id"]) for _, body in results}
    assert len(ids) == 1
    assert scalar(db_url, "SELECT count(*) FROM events") == 1
    assert scalar(db_url, "SELECT count(*) FROM executions") == 1
    assert scalar(db_url, "SELECT value FROM daily_counters WHERE name = 'duplicates'") == 49


def test_an_integrity_failure_other_than_the_key_is_a_500_not_a_silent_200(service, db_url: str) -> None:
    # Break a foreign key under the running service: the insert fails for a reason that is not the idempotency index.
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.execute(text("PRAGMA foreign_keys=ON"))
        connection.execute(text("DELETE FROM triggers WHERE name = 'orders'"))
    engine.dispose()
    response = post(service, "/hooks/orders", b"{}", **{"Idempotency-Key": "fk"})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert scalar(db_url, "SELECT count(*) FROM events") == 0


def test_events_api_follows_the_same_contract(service, db_url: str) -> None:
    body = {"trigger": "orders", "payload": {"b": 2, "a": 1}, "idempotency_key": "api-1"}
    auth = service.auth("operator")
    assert httpx2.post(service.url + "/api/v1/events", json=body, timeout=10).status_code == 401
    assert httpx2.post(service.url + "/api/v1/events", json=body, headers=service.auth("viewer")).status_code == 403
    first = httpx2.post(service.url + "/api/v1/events", json=body, headers=auth, timeout=10)
    reordered = {"trigger": "orders", "payload": {"a": 1, "b": 2}, "idempotency_key": "api-1"}
    again = httpx2.post(service.url + "/api/v1/events", json=reordered, headers=auth, timeout=10)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["event_id"] == first.json()["event_id"]
    unknown = httpx2.post(service.url + "/api/v1/events", json={"trigger": "nope", "payload": {}}, headers=auth)
    assert unknown.status_code == 404
    invalid = httpx2.post(service.url + "/api/v1/events", json={"payload": {}}, headers=auth, timeout=10)
    assert invalid.status_code == 422
    assert invalid.json()["error"]["code"] == "invalid_request"
