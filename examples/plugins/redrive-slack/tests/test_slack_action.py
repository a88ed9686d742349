"""The ``slack`` action against a Slack-compatible webhook on loopback: config, rendering, delivery, refusals."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from pydantic import ValidationError
from pytest_httpserver import HTTPServer
from redrive.actions.base import Outcome
from redrive.extensions import ResourceContext

from redrive_slack.action import SlackAction, SlackPoster, session, summary
from redrive_slack.testing import FakeSlack

EVENT = {"payload": {"order": "A-1", "amount": "12 EUR"}}


def config(url: str, **extra: Any) -> SlackAction:
    return SlackAction.model_validate(
        {"kind": "slack", "webhook_url": url, "allow_http": True, "text": "Order {{ payload.order }} paid", **extra}
    )


def post(action: SlackPoster) -> Outcome:
    async def go() -> Outcome:
        async with session(ResourceContext(concurrency=2)) as opened:
            return await action.execute(action.render(EVENT), {"slack": opened})

    return asyncio.run(go())


def test_the_webhook_url_must_be_https_unless_allowed() -> None:
    with pytest.raises(ValidationError, match="https"):
        SlackAction.model_validate({"kind": "slack", "webhook_url": "http://hooks.example/x", "text": "hi"})
    assert SlackAction.model_validate(
        {"kind": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/X", "text": "hi"}
    )


def test_blocks_must_be_a_list_and_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="blocks"):
        config("http://127.0.0.1/x", blocks={"type": "section"})
    with pytest.raises(ValidationError, match="channel"):
        config("http://127.0.0.1/x", channel="#general")


def test_a_block_kit_message_is_rendered_and_delivered(httpserver: HTTPServer) -> None:
    slack = FakeSlack()
    slack.install(httpserver)
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*{{ payload.order }}* paid {{ payload.amount }}"}}
    ]
    action = SlackPoster(config(httpserver.url_for(slack.path), blocks=blocks))
    rendered = action.render(EVENT)
    assert "url" not in rendered  # the URL is the credential: it stays out of what redrive records
    assert summary(rendered) == "Slack message: Order A-1 paid"
    outcome = post(action)
    assert outcome.failure is None
    assert outcome.detail == {"status": 200, "answer": "ok"}
    assert slack.received == [
        {
            "text": "Order A-1 paid",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*A-1* paid 12 EUR"}}],
        }
    ]


def test_a_revoked_webhook_is_a_permanent_failure(httpserver: HTTPServer) -> None:
    slack = FakeSlack()
    slack.install(httpserver)
    outcome = post(SlackPoster(config(httpserver.url_for(slack.path[:-3] + "bad"))))
    assert outcome.failure is not None
    assert (outcome.failure.category, outcome.failure.code) == ("permanent", "slack_invalid_token")
    assert outcome.detail == {"status": 403, "answer": "invalid_token"}
    assert slack.received == []


def test_a_rate_limit_is_transient_with_retry_after(httpserver: HTTPServer) -> None:
    slack = FakeSlack()
    slack.install(httpserver)
    slack.fail_next("rate_limited", retry_after=7)
    outcome = post(SlackPoster(config(httpserver.url_for(slack.path))))
    assert outcome.failure is not None
    assert (outcome.failure.category, outcome.failure.code, outcome.failure.retry_after) == (
        "transient",
        "slack_rate_limited",
        7.0,
    )


def test_an_empty_message_is_refused_as_slack_refuses_it(httpserver: HTTPServer) -> None:
    slack = FakeSlack()
    slack.install(httpserver)
    outcome = post(SlackPoster(config(httpserver.url_for(slack.path), text="{{ payload.missing | default('') }}")))
    assert outcome.failure is not None
    assert outcome.failure.code == "slack_no_text"


def test_nobody_listening_is_transient() -> None:
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        outcome = post(SlackPoster(config(f"http://127.0.0.1:{port}/services/T/B/X")))
    assert outcome.failure is not None
    assert (outcome.failure.category, outcome.failure.code) == ("transient", "slack_unreachable")
