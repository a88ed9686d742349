"""Hostile requests against a real service on both databases: body limits (chunked too), compressed bodies, deep JSON,
template injection through payloads, CORS and security headers."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import httpx2
import pytest

from redrive.errors import ConfigError
from redrive.triggers.config import MIB, parse_config
from support import run_service, scalar, wait_until

CONFIG = """
triggers:
  - name: small
    action: {kind: command, argv: ["true"]}
  - name: big
    source: {max_body_bytes: 26214400}
    action: {kind: command, argv: ["true"]}
  - name: echo
    action: {kind: command, argv: ["printf", "%s|%s", "{{ payload.a }}", "{{ payload.b }}"]}
"""


@pytest.fixture
def service(db_url: str):
    with run_service(db_url, CONFIG, cors_origins="https://ops.example.com") as running:
        yield running


def json_of_size(size: int) -> bytes:
    """A JSON object exactly ``size`` bytes long."""
    return b'{"p":"' + b"x" * (size - 8) + b'"}'


def chunked(body: bytes, piece: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), piece):
        yield body[start : start + piece]


def post(service, trigger: str, content, **headers: str) -> httpx2.Response:
    return httpx2.post(f"{service.url}/hooks/{trigger}", content=content, headers=headers, timeout=60)


def events(db_url: str) -> int:
    return scalar(db_url, "SELECT count(*) FROM events")


# --- body limits, enforced while reading, chunked bodies too -------------------------------------------------------


@pytest.mark.parametrize(("trigger", "limit"), [("small", MIB), ("big", 25 * MIB)])
def test_a_body_at_the_limit_is_accepted_and_one_byte_more_is_refused(service, db_url, trigger, limit) -> None:
    assert post(service, trigger, chunked(json_of_size(limit))).status_code == 202
    over = post(service, trigger, chunked(json_of_size(limit + 1)))
    assert over.status_code == 413
    assert over.json()["error"]["code"] == "payload_too_large"
    declared = post(service, trigger, json_of_size(limit + 1))  # with Content-Length: refused before reading
    assert declared.status_code == 413
    assert events(db_url) == 1


def test_the_api_refuses_huge_bodies_before_authenticating(service, db_url) -> None:
    huge = b'{"trigger": "big", "payload": "' + b"x" * (26 * MIB) + b'"}'
    url = f"{service.url}/api/v1/events"
    for content in (huge, chunked(huge)):  # declared and chunked; no token at all
        response = httpx2.post(url, content=content, headers={"Content-Type": "application/json"}, timeout=60)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert response.headers["x-content-type-options"] == "nosniff"
    fine = b'{"trigger": "big", "payload": "' + b"x" * MIB + b'"}'
    operator = {**service.auth("operator"), "Content-Type": "application/json"}
    assert httpx2.post(url, content=chunked(fine), headers=operator, timeout=60).status_code == 202
    assert events(db_url) == 1


def test_a_trigger_limit_above_25_mib_is_a_config_error() -> None:
    text = "triggers:\n  - name: t\n    source: {max_body_bytes: 26214401}\n    action: {kind: command, argv: ['x']}\n"
    with pytest.raises(ConfigError, match="max_body_bytes"):
        parse_config(text, env={})


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP", "gzip, identity"])
def test_compressed_bodies_are_refused_unopened(service, db_url, encoding) -> None:
    bomb = gzip.compress(b"{" + b" " * (50 * MIB) + b"}")  # 50 MiB of JSON in ~50 KB
    response = post(service, "small", bomb, **{"Content-Encoding": encoding})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_encoding"
    assert events(db_url) == 0


# --- JSON nesting ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("depth", "status"), [(64, 202), (65, 400), (5000, 400), (200_000, 400)])
def test_json_nested_deeper_than_64_levels_is_a_400(service, db_url, depth, status) -> None:
    body = "[" * depth + "]" * depth
    response = post(service, "small", body)
    assert response.status_code == status
    api = httpx2.post(
        f"{service.url}/api/v1/events",
        content='{"trigger": "small", "payload": ' + body + "}",
        headers={**service.auth("operator"), "Content-Type": "application/json"},
        timeout=30,
    )
    assert api.status_code == status
    if status == 400:
        assert response.json()["error"]["code"] == api.json()["error"]["code"] == "invalid_json"
    assert events(db_url) == (2 if status == 202 else 0)


# --- payload values are data, never templates -------------------------------------------------------------------------


def test_template_syntax_in_a_payload_arrives_literally(service, db_url) -> None:
    payload = {"a": "{{ ''.__class__.__mro__ }}", "b": "{% for x in range(9) %}{{ x }}{% endfor %}"}
    response = httpx2.post(f"{service.url}/hooks/echo", json=payload, timeout=10)
    assert response.status_code == 202
    execution = response.json()["execution_id"]
    wait_until(
        lambda: scalar(db_url, "SELECT status FROM executions WHERE id = :id", id=execution) == "succeeded",
        what="the echo to run",
    )
    excerpt = scalar(db_url, "SELECT excerpt FROM attempts WHERE execution_id = :id", id=execution)
    assert excerpt == f"{payload['a']}|{payload['b']}"


def test_bodies_that_are_bare_json_values_are_delivered_and_do_not_stall_the_queue(service, db_url) -> None:
    """Any JSON document is a payload: bare numbers too. (On SQLite a stored ``42`` once came back as an integer the
    JSON decoder refused, and every claim that read it failed: the whole queue stopped behind one event.)"""
    bodies = [b"42", b"-7", b"2.5", b"1e3", b'"text"', b"true", b"null", b"[]", b'{"a": 1}']
    for body in bodies:
        response = post(service, "small", body, **{"content-type": "application/json"})
        assert response.status_code == 202, (body, response.text)
    succeeded = "SELECT count(*) FROM executions WHERE status = 'succeeded'"
    wait_until(lambda: scalar(db_url, succeeded) == len(bodies), what="every execution to run")


def test_an_integer_outside_64_bits_is_refused_not_rounded(service, db_url) -> None:
    """orjson reads such an integer as the nearest double: it was stored and delivered as another number (a 30-digit
    id came out as 1.2345678901234568e+29). Now the sender hears so; integers at the edges, and long digit runs in
    strings, go through exactly."""
    too_wide = (b'{"a": 123456789012345678901234567890, "b": 1}', b'{"a": 18446744073709551616, "b": 1}')
    for body in (*too_wide, b'{"a": [-9223372036854775809], "b": 1}'):
        refused = post(service, "echo", body, **{"content-type": "application/json"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "number_out_of_range"
        assert "send it as a string" in refused.json()["error"]["message"]
    assert events(db_url) == 0
    edges = b'{"a": 18446744073709551615, "b": -9223372036854775808, "c": "123456789012345678901234567890"}'
    accepted = post(service, "echo", edges, **{"content-type": "application/json"})
    assert accepted.status_code == 202, accepted.text
    execution = accepted.json()["execution_id"]
    wait_until(
        lambda: scalar(db_url, "SELECT status FROM executions WHERE id = :id", id=execution) == "succeeded",
        what="the echo to run",
    )
    excerpt = scalar(db_url, "SELECT excerpt FROM attempts WHERE execution_id = :id", id=execution)
    assert excerpt == "18446744073709551615|-9223372036854775808"


@pytest.mark.parametrize("number", ["123456789012345678901234567890", "1e400", "-1e999"])
def test_the_events_api_refuses_a_number_it_would_not_carry_exactly(service, db_url, number: str) -> None:
    """Its body is read by FastAPI's parser, which keeps any integer (orjson then failed to store it: a 500) and reads
    1e400 as infinity (stored as null)."""
    body = '{"trigger": "echo", "payload": {"a": NUMBER, "b": 1}}'.replace("NUMBER", number)
    headers = {**service.auth("operator"), "content-type": "application/json"}
    response = httpx2.post(f"{service.url}/api/v1/events", content=body, headers=headers, timeout=10)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "number_out_of_range"
    assert events(db_url) == 0


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ payload.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ x['__dict__'] }}",
    ],
)
def test_attribute_tricks_in_a_trigger_file_are_config_errors(template: str) -> None:
    text = f'triggers:\n  - name: t\n    action: {{kind: command, argv: ["echo", "{template}"]}}\n'
    with pytest.raises(ConfigError, match="private attribute"):
        parse_config(text, env={})


# --- CORS and security headers ----------------------------------------------------------------------------------------


def test_api_answers_carry_security_headers(service) -> None:
    for path in ("/api/v1/executions", "/api/v1/stats", "/healthz", "/api/v1/nope"):
        headers = httpx2.get(service.url + path, headers=service.auth("viewer"), timeout=10).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["referrer-policy"] == "no-referrer"
        if path.startswith("/api/"):
            assert headers["cache-control"] == "no-store"
            assert headers["content-security-policy"].startswith("default-src 'none'")
    hook = post(service, "small", b"{}")
    assert hook.headers["x-content-type-options"] == "nosniff"


def test_cors_answers_only_the_allowed_origin(service) -> None:
    evil = {"Origin": "https://evil.example", **service.auth("viewer")}
    response = httpx2.get(f"{service.url}/api/v1/executions", headers=evil, timeout=10)
    assert "access-control-allow-origin" not in response.headers
    preflight = httpx2.options(
        f"{service.url}/api/v1/executions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    assert "access-control-allow-origin" not in preflight.headers
    ops = {"Origin": "https://ops.example.com", **service.auth("viewer")}
    allowed = httpx2.get(f"{service.url}/api/v1/executions", headers=ops, timeout=10)
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example.com"


def test_cors_is_closed_by_default(db_url: str) -> None:
    with run_service(db_url, CONFIG, worker_concurrency=0) as service:
        headers = {"Origin": "https://ops.example.com", "Access-Control-Request-Method": "POST"}
        preflight = httpx2.options(f"{service.url}/api/v1/events", headers=headers, timeout=10)
        response = httpx2.get(
            f"{service.url}/api/v1/stats", headers={"Origin": "https://ops.example.com", **service.auth()}, timeout=10
        )
    assert preflight.status_code >= 400
    assert not any(name.startswith("access-control-") for name in preflight.headers)
    assert not any(name.startswith("access-control-") for name in response.headers)
    assert json.loads(response.text)["total"] == 0
