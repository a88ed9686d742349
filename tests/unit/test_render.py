"""Trigger.render: what runs, and what is stored as sent (redacted, capped), for each built-in action kind."""

from __future__ import annotations

from datetime import UTC, datetime

from redrive.plugins import builtin_registry
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import SENT_TEXT_CAP, StoredEvent, Trigger, build_trigger_set

SECRET = "hunter2-from-env"
EVENT = StoredEvent(7, {"to": "ops@example.com", "long": "z" * (SENT_TEXT_CAP + 10)}, {}, "k", datetime.now(UTC))


def trigger(action: str) -> Trigger:
    config = parse_config(f"triggers:\n  - name: t\n    action: {action}\n", env={"PASSWORD": SECRET})
    found = build_trigger_set(config, {"t": 1}, builtin_registry()).by_name("t")
    assert found is not None
    return found


def test_a_command_stores_argv_and_env_names_never_env_values() -> None:
    rendering = trigger(
        '{kind: command, argv: ["/bin/echo", "{{ payload.to }}", "${PASSWORD}"], env: {DB_PASSWORD: "${PASSWORD}"}}'
    ).render(EVENT)
    assert rendering.action["env"] == {"DB_PASSWORD": SECRET}  # what runs has the value
    assert rendering.sent == {
        "argv": ["/bin/echo", "ops@example.com", "[redacted]"],
        "env": ["DB_PASSWORD"],
        "cwd": None,
    }


def test_an_email_stores_its_envelope_and_subject_not_its_text() -> None:
    rendering = trigger(
        '{kind: email, from: "redrive@example.com", to: ["{{ payload.to }}"], subject: "hello {{ event.id }}", '
        'text: "the body", smtp: {host: "127.0.0.1", port: 2525, username: "u", password: "${PASSWORD}"}}'
    ).render(EVENT)
    assert rendering.sent["from"] == "redrive@example.com"
    assert rendering.sent["to"] == ["ops@example.com"]
    assert rendering.sent["subject"] == "hello 7"
    assert "text" not in rendering.sent
    assert SECRET not in str(rendering.sent)


def test_http_values_are_capped_and_a_text_body_is_redacted_like_an_excerpt() -> None:
    rendering = trigger(
        '{kind: http, url: "https://example.com/{{ payload.long }}", '
        'headers: {X-Api-Key: "abc123456", X-Plain: "${PASSWORD}"}, body: "password: {{ payload.to }}"}'
    ).render(EVENT)
    sent = rendering.sent
    assert len(sent["url"]) < SENT_TEXT_CAP + 20
    assert sent["url"].endswith("[truncated]")
    assert sent["headers"] == {"X-Api-Key": "[redacted]", "X-Plain": "[redacted]"}
    assert sent["body"] == "password: [redacted]"
    assert rendering.action["headers"]["X-Plain"] == SECRET
