"""Unit tests for the pure half of redrive.ingest.prepare: key extraction, payload parsing and ``prepare``."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redrive.errors import InvalidJson, InvalidOrderingKey, InvalidRequest
from redrive.ingest.prepare import MAX_KEY_LENGTH, extract_key, parse_payload, prepare
from redrive.observe.redaction import REDACTED, Redactor
from redrive.triggers.config import DEFAULT_KEY_SOURCES, TriggerConfig, parse_config

RECEIVED = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)
SOURCES = ["header:Idempotency-Key", "body:data.key.id"]


def trigger(source: str = "{}", action: str = "{kind: http, url: 'http://127.0.0.1:9/x'}") -> TriggerConfig:
    config = parse_config(f"triggers:\n  - name: t\n    source: {source}\n    action: {action}\n", env={})
    return config.triggers[0]


# --- extract_key -----------------------------------------------------------------------------------------------------


def test_the_first_present_source_wins() -> None:
    payload = {"data": {"key": {"id": "from-body"}}}
    assert extract_key(SOURCES, {"idempotency-key": "from-header"}, payload) == "from-header"
    assert extract_key(SOURCES, {}, payload) == "from-body"
    assert extract_key(SOURCES, {"other": "x"}, {"data": {}}) is None
    assert extract_key([], {"idempotency-key": "k"}, payload) is None


def test_header_names_are_looked_up_lower_cased() -> None:
    # Callers pass lower-case header dicts, whatever the case in the trigger file.
    assert extract_key(["header:X-GitHub-Delivery"], {"x-github-delivery": "d-1"}, {}) == "d-1"
    assert extract_key(["header:x-github-delivery"], {"x-github-delivery": "d-1"}, {}) == "d-1"
    assert extract_key(["header:X-GitHub-Delivery"], {"X-GitHub-Delivery": "d-1"}, {}) is None


@pytest.mark.parametrize(
    ("path", "payload", "expected"),
    [
        ("body:id", {"id": "a"}, "a"),
        ("body:data.key.id", {"data": {"key": {"id": "b"}}}, "b"),
        ("body:items.0.id", {"items": [{"id": "c"}, {"id": "d"}]}, "c"),
        ("body:items.1.id", {"items": [{"id": "c"}, {"id": "d"}]}, "d"),
        ("body:items.2.id", {"items": [{"id": "c"}]}, None),
        ("body:items.-1.id", {"items": [{"id": "c"}]}, None),
        ("body:items.x", {"items": [{"id": "c"}]}, None),
        ("body:0.id", [{"id": "e"}], "e"),
        ("body:map.0", {"map": {"0": "f"}}, "f"),
        ("body:a.b", {"a": "not a mapping"}, None),
        ("body:a.b", {"a": None}, None),
        ("body:id", "a string payload", None),
        ("body:id", None, None),
        ("body:$id", {"$id": "g"}, "g"),
    ],
)
def test_body_paths(path: str, payload: Any, expected: str | None) -> None:
    assert extract_key([path], {}, payload) == expected


@pytest.mark.parametrize(("value", "expected"), [(42, "42"), (0, "0"), (-7, "-7"), (1.5, "1.5"), (10**20, str(10**20))])
def test_numbers_become_strings(value: Any, expected: str) -> None:
    assert extract_key(["body:id"], {}, {"id": value}) == expected


@pytest.mark.parametrize("value", [True, False, None, {}, {"a": 1}, [], ["a"], ""])
def test_unusable_values_are_skipped_for_the_next_source(value: Any) -> None:
    assert extract_key(["body:id", "body:fallback"], {}, {"id": value, "fallback": "fb"}) == "fb"
    assert extract_key(["body:id"], {}, {"id": value}) is None


def test_an_empty_header_is_skipped() -> None:
    assert extract_key(["header:Idempotency-Key", "body:id"], {"idempotency-key": ""}, {"id": "b"}) == "b"


@pytest.mark.parametrize("source", ["body:id", "header:Idempotency-Key"])
def test_a_key_over_255_characters_is_refused(source: str) -> None:
    long_key = "k" * (MAX_KEY_LENGTH + 1)
    with pytest.raises(InvalidRequest) as caught:
        extract_key([source, "body:fallback"], {"idempotency-key": long_key}, {"id": long_key, "fallback": "f"})
    assert caught.value.code == "invalid_idempotency_key"
    assert caught.value.status == 422
    assert source in caught.value.message
    assert "256" in caught.value.message


def test_a_key_of_exactly_255_characters_is_kept() -> None:
    assert extract_key(["body:id"], {}, {"id": "k" * MAX_KEY_LENGTH}) == "k" * MAX_KEY_LENGTH


def test_the_default_sources() -> None:
    assert extract_key(list(DEFAULT_KEY_SOURCES), {"webhook-id": "msg_1"}, {"messageId": "m"}) == "msg_1"
    assert extract_key(list(DEFAULT_KEY_SOURCES), {}, {"data": {"messageId": "nested"}}) == "nested"
    assert extract_key(list(DEFAULT_KEY_SOURCES), {}, {"idempotency_key": "ik", "messageId": "m"}) == "ik"


@settings(database=None)
@given(st.text(min_size=1, max_size=MAX_KEY_LENGTH))
def test_any_short_non_empty_string_is_its_own_key(key: str) -> None:
    assert extract_key(["header:Idempotency-Key"], {"idempotency-key": key}, None) == key
    assert extract_key(["body:a.0.b"], {}, {"a": [{"b": key}]}) == key


# --- parse_payload ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"garbage", b"{", b'{"a": 1,}', b"\xff\xfe", b"NaN", b"{'a': 1}"])
def test_garbage_is_invalid_json(body: bytes) -> None:
    with pytest.raises(InvalidJson) as caught:
        parse_payload(body)
    assert caught.value.code == "invalid_json"
    assert caught.value.status == 400
    assert caught.value.message.startswith("the body is not valid JSON")


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b"{}", {}),
        (b"[1, 2]", [1, 2]),
        (b'"text"', "text"),
        (b"42", 42),
        (b"1.5", 1.5),
        (b"null", None),
        (b"true", True),
    ],
)
def test_any_json_value_is_accepted(body: bytes, value: Any) -> None:
    assert parse_payload(body) == value


@settings(database=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    )
)
def test_parse_payload_round_trips(value: Any) -> None:
    assert parse_payload(orjson.dumps(value)) == value


# --- prepare ---------------------------------------------------------------------------------------------------------


def run_prepare(trig: TriggerConfig, payload: Any, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    body = orjson.dumps(payload)
    return prepare(
        trig,
        7,
        body=body,
        headers=headers or {},
        received_at=RECEIVED,
        redactor=Redactor(["s3cr3t-value"]),
        **kwargs,
    )


def test_prepare_builds_the_event() -> None:
    trig = trigger("{idempotency_key: ['header:Idempotency-Key', 'body:data.key.id']}")
    payload = {"event": "messages.upsert", "data": {"key": {"id": "ABC"}}}
    body = orjson.dumps(payload)
    event = prepare(
        trig, 7, body=body, headers={"content-type": "application/json"}, received_at=RECEIVED, redactor=Redactor()
    )
    assert event.trigger_id == 7
    assert event.action_kind == "http"
    assert event.idempotency_key == "ABC"
    assert event.body_sha256 == hashlib.sha256(body).hexdigest()
    assert event.headers == {"content-type": "application/json"}
    assert event.payload == payload
    assert event.filtered is False
    assert event.received_at is RECEIVED
    assert event.accept_key_conflicts is False


def test_prepare_hashes_the_body_as_received() -> None:
    trig = trigger()
    body = b'{ "a" :  1 }\n'
    event = prepare(trig, 1, body=body, headers={}, received_at=RECEIVED, redactor=Redactor())
    assert event.body_sha256 == hashlib.sha256(body).hexdigest()
    assert event.payload == {"a": 1}


def test_prepare_redacts_the_stored_headers() -> None:
    headers = {
        "authorization": "Bearer abc",
        "apikey": "k",
        "x-hub-signature-256": "sha256=ff",
        "x-callback": "https://u:pw@h/x?token=t",
        "x-note": "contains s3cr3t-value",
        "idempotency-key": "ik-1",
    }
    event = run_prepare(trigger(), {"a": 1}, headers)
    assert event.headers == {
        "authorization": REDACTED,
        "apikey": REDACTED,
        "x-hub-signature-256": REDACTED,
        "x-callback": f"https://u:{REDACTED}@h/x?token={REDACTED}",
        "x-note": f"contains {REDACTED}",
        "idempotency-key": "ik-1",
    }
    assert event.idempotency_key == "ik-1"
    assert headers["authorization"] == "Bearer abc", "the caller's dict is not changed"


def test_the_key_comes_from_unredacted_headers() -> None:
    trig = trigger("{idempotency_key: ['header:X-Api-Key']}")
    event = run_prepare(trig, {}, {"x-api-key": "key-123"})
    assert event.idempotency_key == "key-123"
    assert event.headers == {"x-api-key": REDACTED}


@pytest.mark.parametrize(
    ("event_name", "filtered"), [("messages.upsert", False), ("connection.update", True), ("", True)]
)
def test_the_filter_decides_filtered(event_name: str, filtered: bool) -> None:
    trig = trigger("{filter: \"payload.event == 'messages.upsert'\"}")
    assert run_prepare(trig, {"event": event_name}).filtered is filtered


def test_the_filter_sees_the_headers() -> None:
    trig = trigger("{filter: \"headers['x-github-event'] == 'push'\"}")
    assert run_prepare(trig, {}, {"x-github-event": "push"}).filtered is False
    assert run_prepare(trig, {}, {"x-github-event": "ping"}).filtered is True


@pytest.mark.parametrize("payload", [{}, [1, 2], "text", {"event": {"nested": 1}, "n": 0}])
def test_a_filter_error_is_an_invalid_request(payload: Any) -> None:
    trig = trigger("{filter: \"payload.event.name == 'x' or payload.n / 0\"}")
    with pytest.raises(InvalidRequest) as caught:
        run_prepare(trig, payload)
    assert caught.value.code == "filter_error"
    assert caught.value.status == 422
    assert "payload.event.name" in caught.value.message


def test_prepare_uses_a_given_payload_and_key() -> None:
    trig = trigger("{idempotency_key: ['body:id']}")
    event = prepare(
        trig,
        3,
        body=b"not json at all",
        headers={},
        received_at=RECEIVED,
        redactor=Redactor(),
        payload={"id": "ignored"},
        key="given",
    )
    assert event.payload == {"id": "ignored"}
    assert event.idempotency_key == "given"
    assert event.body_sha256 == hashlib.sha256(b"not json at all").hexdigest()


def test_prepare_refuses_an_invalid_body() -> None:
    with pytest.raises(InvalidJson):
        prepare(trigger(), 1, body=b"{oops", headers={}, received_at=RECEIVED, redactor=Redactor())


def test_prepare_refuses_an_oversized_key() -> None:
    with pytest.raises(InvalidRequest) as caught:
        run_prepare(trigger("{idempotency_key: ['body:id']}"), {"id": "x" * 300})
    assert caught.value.code == "invalid_idempotency_key"


@pytest.mark.parametrize(("policy", "accept"), [("reject", False), ("accept", True)])
def test_the_key_conflict_policy_is_carried(policy: str, accept: bool) -> None:
    assert run_prepare(trigger(f"{{on_key_conflict: {policy}}}"), {}).accept_key_conflicts is accept


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ("{kind: command, argv: [echo, hi]}", "command"),
        ("{kind: email, smtp: {host: h}, from: a@b, to: c@d, subject: s, text: t}", "email"),
    ],
)
def test_the_action_kind_is_carried(action: str, kind: str) -> None:
    assert run_prepare(trigger(action=action), {}).action_kind == kind


# --- ordering keys ---------------------------------------------------------------------------------------------------


def ordered(key: str = "{{ payload.customer.id }}", source: str = "{}") -> TriggerConfig:
    text = (
        f"triggers:\n  - name: orders\n    source: {source}\n    action: {{kind: http, url: 'http://127.0.0.1:9/x'}}\n"
        f"    ordering: {{key: '{key}'}}\n"
    )
    return parse_config(text, env={}).triggers[0]


def prepared(config: TriggerConfig, payload: Any, headers: dict[str, str] | None = None) -> Any:
    return prepare(
        config, 1, body=orjson.dumps(payload), headers=headers or {}, received_at=RECEIVED, redactor=Redactor()
    )


def test_the_ordering_key_is_rendered_once_from_payload_and_headers() -> None:
    assert prepared(ordered(), {"customer": {"id": 42}}).ordering_key == "42"
    by_header = ordered('{{ headers["x-tenant"] }}-{{ trigger.name }}')
    assert prepared(by_header, {}, {"x-tenant": "acme"}).ordering_key == "acme-orders"
    assert prepared(trigger(), {"customer": {"id": 42}}).ordering_key is None  # an unordered trigger


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({}, "lacks"),
        ({"customer": {"id": ""}}, "empty"),
        ({"customer": {"id": "x" * (MAX_KEY_LENGTH + 1)}}, "at most"),
    ],
)
def test_an_event_without_a_usable_ordering_key_is_refused_naming_the_trigger(payload: Any, fragment: str) -> None:
    with pytest.raises(InvalidOrderingKey) as caught:
        prepared(ordered(), payload)
    assert caught.value.code == "invalid_ordering_key"
    assert caught.value.status == 422
    assert "'orders'" in caught.value.message
    assert fragment in caught.value.message


def test_a_filtered_event_needs_no_ordering_key() -> None:
    filtered = prepared(ordered(source="{filter: 'payload.keep'}"), {"keep": False})
    assert filtered.filtered
    assert filtered.ordering_key is None
