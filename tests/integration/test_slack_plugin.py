"""The example plugin ``examples/plugins/redrive-slack``, installed as a package and found through its entry point,
driven end to end against a Slack-compatible webhook on loopback (``FakeSlack``): config check, ``plugins ls``,
delivery, classification (rate limit retried after Retry-After, revoked webhook failed at once), the hint, the
dead-letter notice, and its signature scheme verifying what Slack signs. Nothing here registers the plugin by hand:
redrive loads it as it loads any installed plugin."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from plugin_support import serve
from pytest_httpserver import HTTPServer
from redrive_slack.plugin import NOTIFY_URL
from redrive_slack.signature import sign
from redrive_slack.testing import FakeSlack
from sqlalchemy import create_engine, select

from redrive.db.schema import attempts, executions
from redrive.plugins import load_plugins
from redrive.triggers.config import parse_config
from support import wait_until

REDRIVE = str(Path(sys.executable).with_name("redrive"))
BLOCKS = '[{type: section, text: {type: mrkdwn, text: "*{{ payload.order }}* paid {{ payload.amount }}"}}]'


def trigger(name: str, url: str, *, allow_http: str = "true") -> str:
    return f"""
  - name: {name}
    action:
      kind: slack
      webhook_url: "{url}"
      allow_http: {allow_http}
      text: "Order {{{{ payload.order }}}} paid"
      blocks: {BLOCKS}
    retry: {{max_attempts: 3, base: 10ms, jitter: none}}"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REDRIVE, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def test_config_check_validates_a_slack_action_like_a_built_in_one(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("triggers:" + trigger("to-slack", "https://hooks.slack.com/services/T/B/X", allow_http="false"))
    result = cli("config", "check", str(good))
    assert result.returncode == 0, result.stderr
    assert "no problems in 1 trigger(s) (to-slack)" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("triggers:" + trigger("to-slack", "http://hooks.example/services/T/B/X", allow_http="false"))
    result = cli("config", "check", str(bad))
    assert result.returncode == 2
    assert "triggers[0] (to-slack).action.webhook_url" in result.stderr
    assert "https" in result.stderr


def test_plugins_ls_shows_the_installed_plugin() -> None:
    result = cli("plugins", "ls", "--json")
    assert result.returncode == 0, result.stderr
    [slack] = [plugin for plugin in json.loads(result.stdout) if plugin["name"] == "slack"]
    assert (slack["version"], slack["builtin"]) == ("0.1.0", False)
    assert slack["hooks"] == [  # an action kind, a signature scheme and a failure hook, from an installed package
        "redrive_action_kinds",
        "redrive_execution_dead_lettered",
        "redrive_hints",
        "redrive_signature_schemes",
    ]


def rows(db_url: str) -> dict[int, dict[str, Any]]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            found = {row.id: {"status": row.status, "tries": []} for row in connection.execute(select(executions))}
            for row in connection.execute(select(attempts).order_by(attempts.c.number)):
                found[row.execution_id]["tries"].append(row)
            return found
    finally:
        engine.dispose()


def send(url: str, name: str, order: str) -> int:
    response = httpx2.post(f"{url}/hooks/{name}", json={"order": order, "amount": "12 EUR"}, timeout=10)
    assert response.status_code == 202, response.text
    return int(response.json()["execution_id"])


def test_delivery_classification_hint_and_dead_letter_notice(
    db_url: str, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, alerts = FakeSlack(), FakeSlack(service="B00000ALERT")
    # Both webhooks on one server: the alerts one (its own service path) first, then every other /services/ post.
    httpserver.expect_request(alerts.path, method="POST").respond_with_handler(alerts.answer)
    channel.install(httpserver)
    monkeypatch.setenv(NOTIFY_URL, httpserver.url_for(alerts.path))
    revoked = httpserver.url_for(channel.path[:-4] + "gone")
    yaml = "triggers:" + trigger("paid", httpserver.url_for(channel.path)) + trigger("revoked", revoked)
    plugins = load_plugins(None)  # what redrive loads by itself: the built-ins and the installed plugins
    assert "slack" in plugins.names()
    config = parse_config(yaml, registry=plugins.registry)
    channel.fail_next("rate_limited", retry_after=1)
    with serve(db_url, config, plugins=plugins) as service:
        limited = send(service.url, "paid", "A-1")  # refused once with Retry-After: 1, then delivered
        refused = send(service.url, "revoked", "A-2")  # 403 invalid_token: failed at once
        wait_until(lambda: {rows(db_url)[i]["status"] for i in (limited, refused)} == {"succeeded", "failed"})
        wait_until(lambda: alerts.received, what="the dead-letter notice")
        groups = httpx2.get(f"{service.url}/api/v1/error-groups", headers=service.auth("viewer"), timeout=10)
    found = rows(db_url)
    first, second = found[limited]["tries"]
    assert (first.outcome, first.error_code) == ("transient", "slack_rate_limited")
    assert (second.started_at - first.finished_at).total_seconds() >= 1.0  # Retry-After honoured, as recorded
    assert second.outcome == "succeeded"
    assert channel.received == [
        {
            "text": "Order A-1 paid",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*A-1* paid 12 EUR"}}],
        }
    ]
    assert found[refused]["status"] == "failed"
    [only] = found[refused]["tries"]
    assert (only.outcome, only.error_code) == ("permanent", "slack_invalid_token")
    hints = {group["code"]: group["hint"] for group in groups.json()["items"]}
    assert hints["slack_invalid_token"]["title"] == "Webhook URL revoked or mistyped"
    assert hints["slack_invalid_token"]["remedy"] == "fix_config"
    assert hints["slack_rate_limited"]["title"] == "Slack rate limit"
    [notice] = alerts.received
    assert notice["text"] == f"redrive: execution {refused} of revoked failed for good"
    assert "slack_invalid_token" in notice["blocks"][1]["text"]["text"]


def test_events_slack_signs_are_verified_by_the_installed_scheme(db_url: str) -> None:
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    yaml = f"""
triggers:
  - name: from-slack
    source: {{verify: {{scheme: slack, secrets: ["{secret}"]}}}}
    action: {{kind: command, argv: ["true"]}}
"""
    plugins = load_plugins(None)
    config = parse_config(yaml, registry=plugins.registry)
    assert config.triggers[0].source.idempotency_key[0] == "body:event_id"  # the scheme's key source comes first
    assert secret in config.secrets  # masked wherever redrive writes text down
    body = json.dumps({"type": "event_callback", "event_id": "Ev0PV52K25", "event": {"type": "app_mention"}}).encode()
    now = str(int(time.time()))

    def post(service_url: str, signature: str, timestamp: str = now) -> httpx2.Response:
        headers = {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": timestamp}
        return httpx2.post(f"{service_url}/hooks/from-slack", content=body, headers=headers, timeout=10)

    with serve(db_url, config, plugins=plugins) as service:
        accepted = post(service.url, sign(secret, now, body))
        retried = post(service.url, sign(secret, now, body))  # Slack's retry of the same event
        forged = post(service.url, sign("another-secret-entirely", now, body))
        stale = post(service.url, sign(secret, "1000000000", body), timestamp="1000000000")
    assert accepted.status_code == 202, accepted.text
    assert (retried.status_code, retried.json()["duplicate"]) == (200, True)
    for refused in (forged, stale):
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_signature"
