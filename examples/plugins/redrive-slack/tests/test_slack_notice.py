"""The dead-letter notice: what it says, that it is posted only when configured, that a refusal is raised."""

from __future__ import annotations

import asyncio

import pytest
from pytest_httpserver import HTTPServer
from redrive.extensions import ExecutionDeadLettered
from redrive.failures.classify import transient

from redrive_slack.plugin import NOTIFY_URL, NoticeRefused, notice, redrive_execution_dead_lettered
from redrive_slack.testing import FakeSlack

DEAD = ExecutionDeadLettered("orders", "http", 42, "failed_retryable", 8, transient("http_503", "Service Unavailable"))


def test_the_notice_names_the_execution_and_its_error() -> None:
    message = notice(DEAD)
    assert message["text"] == "redrive: execution 42 of orders dead-lettered"
    facts = message["blocks"][1]["text"]["text"]
    assert "*Attempts* 8" in facts
    assert "`http_503` (transient): Service Unavailable" in facts


def test_the_notice_is_posted_when_configured(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    slack = FakeSlack()
    slack.install(httpserver)
    monkeypatch.setenv(NOTIFY_URL, httpserver.url_for(slack.path))
    asyncio.run(redrive_execution_dead_lettered(DEAD))
    assert slack.received == [notice(DEAD)]


def test_nothing_is_posted_when_not_configured(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NOTIFY_URL, raising=False)
    asyncio.run(redrive_execution_dead_lettered(DEAD))
    assert httpserver.log == []


def test_a_refused_notice_is_raised_for_redrive_to_log(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    slack = FakeSlack()
    slack.install(httpserver)
    monkeypatch.setenv(NOTIFY_URL, httpserver.url_for("/services/T00000000/B00000000/revoked"))
    with pytest.raises(NoticeRefused, match="403 invalid_token"):
        asyncio.run(redrive_execution_dead_lettered(DEAD))
