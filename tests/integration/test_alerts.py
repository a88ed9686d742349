"""Alerts end to end, on both databases: a scripted failure burst against a real target fires the rule once, each
channel (a Slack-compatible receiver, a real SMTP server, a signed webhook, a trigger) gets exactly one firing
notification carrying the numbers, the hint, a sample and a link, and exactly one resolution after recovery.

The service runs on a clock the test moves; evaluation and delivery run in the service's own loops."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
from plugin_support import ManualClock
from replay_support import rows, write
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook
from test_actions_email import Recorder, smtp_server
from test_replay_cli import SERVER_LOG
from typer.testing import CliRunner

from alert_support import SECRET, Receiver, alerts_yaml, receiver
from redrive.api.app import create_app
from redrive.cli import app
from redrive.db.schema import alert_notifications, alert_transitions, audit_log, events
from redrive.plugins import load_plugins
from redrive.settings import Settings
from redrive.triggers.config import parse_config
from support import Service, make_tokens, serve_app, wait_until

PUBLIC_URL = "https://redrive.example.test"


@contextmanager
def alerting_service(db_url: str, config_yaml: str, clock: ManualClock) -> Iterator[Service]:
    """A service on ``clock`` evaluating alerts every 0.1 s of real time (the clock decides what is in a window)."""
    settings = Settings(
        database_url=db_url, poll_interval=0.1, shutdown_grace=2.0, alert_interval=0.1, public_url=PUBLIC_URL
    )
    loaded = load_plugins(settings.plugins)
    app = create_app(settings, parse_config(config_yaml, registry=loaded.registry), clock=clock, plugins=loaded)
    with serve_app(app, make_tokens(db_url)) as service:
        yield service


def burst(service: Service, hooks: Receiver, count: int, first: int) -> None:
    """Deliver ``count`` orders and wait until each has had its attempt."""
    for n in range(first, first + count):
        response = httpx2.post(
            f"{service.url}/hooks/orders", json={"order": n, "note": "rush", "api_key": "sk_live_1"}, timeout=10
        )
        assert response.status_code == 202, response.text
    wait_until(lambda: len(hooks.at("/target")) >= first + count - 1, what=f"{count} attempts at the target")


def settled(db_url: str, expected: int) -> bool:
    done = rows(db_url, alert_notifications, alert_notifications.c.status == "delivered")
    return len(done) >= expected


def slack_row(db_url: str) -> Any:
    """The Slack notification's row (None before there is one)."""
    found = rows(db_url, alert_notifications, alert_notifications.c.channel == "slack")
    assert len(found) <= 1
    return found[0] if found else None


def slack_error(db_url: str) -> str | None:
    row = slack_row(db_url)
    return None if row is None else row.last_error


def slack_texts(hooks: Receiver) -> list[str]:
    return [r.json["text"] for r in hooks.at("/slack")]


def mails(smtp: Recorder) -> list[Any]:
    return [email.message_from_bytes(m.content, policy=email.policy.default) for m in smtp.messages]


def test_a_failure_burst_fires_once_per_channel_and_resolves_once(db_url: str) -> None:
    clock = ManualClock(datetime.now(UTC))
    smtp = Recorder()
    with receiver() as hooks, smtp_server(smtp) as smtp_port:
        hooks.default["/target"] = 503
        with alerting_service(db_url, alerts_yaml(hooks.url, smtp_port), clock) as service:
            burst(service, hooks, 8, 1)
            wait_until(lambda: settled(db_url, 4), timeout=20, what="the firing notification on every channel")

            [signed] = hooks.at("/pager")
            payload = Webhook(SECRET).verify(signed.body, signed.headers)
            assert payload["type"] == "alert.firing"
            assert payload["key"] == "orders-failing:1:firing"
            numbers = payload["detail"]["numbers"]  # evaluation runs during the burst: it fires at 5 to 8 attempts
            n = numbers["attempts"]
            assert numbers == {"rate": 1.0, "failed": n, "attempts": n, "window": "1m"}
            assert 5 <= n <= 8
            assert payload["detail"]["group"]["hint"]["remedy"]
            assert payload["detail"]["sample"]["trigger"] == "orders"

            [firing] = hooks.at("/slack")
            slack = firing.json
            assert slack["text"].startswith(
                f"[FIRING] orders-failing: failure rate 100.0% ({n} of {n} attempts) over 1m"
            )
            section = slack["blocks"][1]["text"]["text"]
            assert "Top error group: " in section
            assert "fires at &gt;= 50.0%" in section  # mrkdwn: & < > escaped, as Slack wants them
            assert "http_503" in section
            assert "Hint: " in section
            assert "Remedy: " in section
            assert "Sample: execution " in section
            assert "trigger orders, error http_503" in section
            assert '"note":"rush"' in section
            assert '"api_key":"[redacted]"' in section
            assert "sk_live" not in section
            assert f"{PUBLIC_URL}/ui/dead-letters?fingerprint=" in section
            [mail] = mails(smtp)
            assert " ".join(mail["Subject"].split()) == slack["text"]  # a long subject is folded
            assert "Hint: " in mail.get_content()

            [incident] = rows(db_url, events, events.c.idempotency_key == "orders-failing:1:firing")
            assert incident.payload["rule"] == "orders-failing"

            # The leader dies between sending to the trigger channel and recording it: the next send is the same
            # event again, absorbed as a duplicate.
            write(
                db_url,
                update(alert_notifications)
                .where(alert_notifications.c.channel == "bot")
                .values(status="pending", next_at=clock()),
            )
            wait_until(lambda: settled(db_url, 4), timeout=20, what="the trigger channel's second delivery")
            assert len(rows(db_url, events, events.c.idempotency_key == "orders-failing:1:firing")) == 1

            hooks.default["/target"] = 200
            clock.advance(61)  # the failures leave the window
            burst(service, hooks, 6, 9)
            wait_until(lambda: settled(db_url, 8), timeout=20, what="the resolution on every channel")

    assert [t.kind for t in rows(db_url, alert_transitions)] == ["firing", "resolved"]
    texts = slack_texts(hooks)
    assert len(texts) == 2
    assert texts[1].startswith("[RESOLVED] orders-failing")
    resolved = hooks.at("/slack")[1].json["blocks"][1]["text"]["text"]
    assert "Resolved after firing for 1m 1s; 8 events failed meanwhile." in resolved
    assert [m["Subject"].split()[0] for m in mails(smtp)] == ["[FIRING]", "[RESOLVED]"]
    pager = [Webhook(SECRET).verify(r.body, r.headers)["kind"] for r in hooks.at("/pager")]
    assert pager == ["firing", "resolved"]
    keys = sorted(r.idempotency_key for r in rows(db_url, events, events.c.idempotency_key.like("orders-failing:%")))
    assert keys == ["orders-failing:1:firing", "orders-failing:2:resolved"]


def test_a_channel_answering_500_is_retried_while_the_others_are_delivered(db_url: str) -> None:
    clock = ManualClock(datetime.now(UTC))
    smtp = Recorder()
    with receiver({"/slack": [500, 500]}) as hooks, smtp_server(smtp) as smtp_port:
        hooks.default["/target"] = 503
        config = alerts_yaml(hooks.url, smtp_port, channels=("slack", "mail", "pager"))
        with alerting_service(db_url, config, clock) as service:
            burst(service, hooks, 6, 1)
            wait_until(lambda: settled(db_url, 2), timeout=20, what="mail and webhook delivered")
            wait_until(lambda: slack_error(db_url), what="the first Slack attempt recorded")
            assert len(hooks.at("/slack")) == 1
            slack = slack_row(db_url)
            assert slack.status == "pending"
            assert "answered 500" in slack.last_error
            assert len(mails(smtp)) == 1
            assert len(hooks.at("/pager")) == 1
            assert slack.next_at == clock() + timedelta(seconds=5)  # the first backoff
            clock.advance(5)
            wait_until(
                lambda: slack_row(db_url).next_at == clock() + timedelta(seconds=10),
                what="the second Slack attempt recorded, its retry scheduled after the second backoff",
            )
            assert len(hooks.at("/slack")) == 2
            clock.advance(10)
            wait_until(lambda: settled(db_url, 3), what="Slack delivered on its third attempt")
            metrics = httpx2.get(f"{service.url}/metrics", timeout=10).text
    slack = slack_row(db_url)
    assert slack.attempts == 3
    assert slack.status == "delivered"
    assert 'redrive_alert_notifications_total{channel="slack",outcome="retry"} 2.0' in metrics
    assert 'redrive_alert_notifications_total{channel="mail",outcome="delivered"} 1.0' in metrics
    assert len(mails(smtp)) == 1  # nobody was notified twice while Slack was retried


def test_the_api_and_the_cli_show_state_and_history_and_send_an_audited_test(db_url: str) -> None:
    clock = ManualClock(datetime.now(UTC))
    with receiver() as hooks, smtp_server(Recorder()) as smtp_port:
        hooks.default["/target"] = 503
        with alerting_service(db_url, alerts_yaml(hooks.url, smtp_port, channels=("slack",)), clock) as service:
            burst(service, hooks, 6, 1)
            wait_until(lambda: settled(db_url, 1), timeout=20, what="the firing notification")
            listed = httpx2.get(f"{service.url}/api/v1/alerts", headers=service.auth("viewer"), timeout=10).json()
            [rule] = listed["items"]
            assert (rule["name"], rule["state"], rule["condition"]) == ("orders-failing", "firing", "failure_rate")
            assert datetime.fromisoformat(rule["since"]) == clock()
            assert rule["summary"].startswith("failure rate 100.0%")
            assert listed["channels"] == [
                {"name": "slack", "kind": "slack", "pending": 0, "retrying": 0, "delivered": 1, "failed": 0}
            ]

            refused = httpx2.post(f"{service.url}/api/v1/alerts/nope/test", headers=service.auth("operator"))
            assert refused.status_code == 404
            assert refused.json()["error"]["code"] == "unknown_alert"
            sent = cli(service, "alerts", "test", "orders-failing", "--json")
            key = sent["key"]
            assert key.startswith("orders-failing:test:")
            wait_until(lambda: len(hooks.at("/slack")) == 2, what="the test notification")
            test_message = hooks.at("/slack")[1].json
            assert test_message["text"].startswith("[TEST] orders-failing")
            assert "This is a TEST notification sent by an operator: nothing fired." in str(test_message["blocks"])

            history = cli(service, "alerts", "history", "--json")
            assert [(t["kind"], t["key"]) for t in history] == [("test", key), ("firing", "orders-failing:1:firing")]
            wait_until(lambda: settled(db_url, 2), what="the test notification recorded as delivered")
            [firing_delivery] = cli(service, "alerts", "history", "--json")[1]["notifications"]
            assert (firing_delivery["channel"], firing_delivery["status"]) == ("slack", "delivered")
            table = CliRunner().invoke(app, ["alerts", "ls"], env=cli_env(service))
            assert "orders-failing" in table.stdout
            assert "firing" in table.stdout
    [audited] = rows(db_url, audit_log, audit_log.c.action == "alert.test")
    assert (audited.actor, audited.target, audited.detail["key"]) == ("operator", "orders-failing", key)


def cli_env(service: Service) -> dict[str, str]:
    return {"REDRIVE_URL": service.url, "REDRIVE_TOKEN": service.tokens["operator"], "COLUMNS": "200"}


def cli(service: Service, *args: str) -> Any:
    """Run ``redrive ARGS --json`` against the service; its JSON output (the server's log lines left out)."""
    result = CliRunner().invoke(app, list(args), env=cli_env(service))
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return json.loads("\n".join(line for line in result.stdout.splitlines() if not SERVER_LOG.match(line)))


def test_a_channel_is_held_to_the_egress_rules_of_the_http_action(db_url: str) -> None:
    clock = ManualClock(datetime.now(UTC))
    with receiver() as hooks, smtp_server(Recorder()) as smtp_port:
        hooks.default["/target"] = 503
        config = alerts_yaml(hooks.url, smtp_port, channels=("slack",)).replace(", allow_private: true}", "}")
        with alerting_service(db_url, config, clock) as service:
            burst(service, hooks, 6, 1)
            wait_until(lambda: slack_error(db_url), timeout=20, what="the refused delivery")
    error = slack_row(db_url).last_error
    assert error.startswith("PermissionError: The target 127.0.0.1 is a loopback address")
    assert hooks.at("/slack") == []
