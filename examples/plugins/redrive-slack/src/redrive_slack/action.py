"""The ``slack`` action: post a Block Kit message to an incoming-webhook URL.

In the trigger file::

    action:
      kind: slack
      webhook_url: ${SLACK_WEBHOOK_URL}
      text: "Order {{ payload.order }} paid"        # the notification text (and the whole message without blocks)
      blocks:                                      # optional Block Kit blocks, templated like text
        - {type: section, text: {type: mrkdwn, text: "*{{ payload.order }}* paid {{ payload.amount }}"}}

``webhook_url`` is not a template: the URL (which is the credential) comes from the trigger file, never from a
payload, so an event cannot choose where redrive posts. It must be ``https`` unless ``allow_http`` is set (a local
Slack-compatible server in tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field, ValidationInfo, field_validator
from redrive.actions.base import Outcome
from redrive.extensions import ResourceContext
from redrive.triggers.fields import Duration, StrictModel, TemplateStr, TemplateTree
from redrive.triggers.templating import render_tree

from redrive_slack.answers import classify_answer, unreachable

KIND = "slack"
ANSWER_LIMIT = 1024
"""Most characters of Slack's answer kept (its answers are a word; a proxy's error page is not)."""


class SlackAction(StrictModel):
    """The ``action`` block of a ``slack`` trigger."""

    kind: Literal["slack"]
    allow_http: bool = False
    webhook_url: str
    text: TemplateStr
    blocks: TemplateTree = None
    timeout: Duration = Field(10.0, gt=0)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, url: str, info: ValidationInfo) -> str:
        parts = urlsplit(url)
        allowed = ("https", "http") if info.data.get("allow_http") else ("https",)
        if parts.scheme not in allowed or not parts.hostname:
            raise ValueError("must be an https:// URL (allow_http: true admits http, for a local test server)")
        return url

    @field_validator("blocks", mode="before")
    @classmethod
    def _blocks(cls, blocks: Any) -> Any:
        if blocks is not None and not isinstance(blocks, list):
            raise ValueError("must be a list of Block Kit blocks")
        return blocks


class SlackPoster:
    """Renders the message for one event and posts it."""

    kind: ClassVar[str] = KIND

    def __init__(self, config: SlackAction) -> None:
        self.config = config

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The message as Slack will receive it (the URL stays out: it is the credential)."""
        message: dict[str, Any] = {"text": self.config.text.render(context)}
        if self.config.blocks is not None:
            message["blocks"] = render_tree(self.config.blocks, context)
        return message

    async def execute(self, rendered: Mapping[str, Any], resources: Mapping[str, Any]) -> Outcome:
        """Post the message; Slack's answer (or the lack of one) becomes the outcome, never an exception."""
        session: aiohttp.ClientSession = resources[KIND]
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        try:
            async with session.post(self.config.webhook_url, json=dict(rendered), timeout=timeout) as response:
                answer = (await response.text(errors="replace"))[:ANSWER_LIMIT]
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Outcome(unreachable(exc), {})
        failure = classify_answer(status, answer, retry_after)
        return Outcome(failure, {"status": status, "answer": answer}, excerpt=answer or None)


def summary(rendered: Mapping[str, Any]) -> str:
    """One line for previews and stats."""
    text = str(rendered.get("text", ""))
    return f"Slack message: {text[:60]}" if text else "Slack message"


@asynccontextmanager
async def session(context: ResourceContext) -> AsyncIterator[aiohttp.ClientSession]:
    """One pooled session per worker, sized to its concurrency, closed when the worker stops."""
    connector = aiohttp.TCPConnector(limit=max(10, context.concurrency))
    async with aiohttp.ClientSession(connector=connector, trace_configs=list(context.trace_configs)) as opened:
        yield opened
