"""The built-in alert channels, registered through ``redrive_alert_channels`` like any plugin's: ``slack`` (an
incoming-webhook URL, Block Kit), ``webhook`` (a JSON POST, signed with Standard Webhooks), ``email`` (SMTP, through
the email action's sender) and ``trigger`` (the alert becomes an event of a redrive trigger).

A channel only formats and sends: the dispatcher (``redrive.alerts.dispatch``) decides when, retries with backoff,
and records every delivery. Outbound HTTP goes through the egress guard (``allow_private`` / ``allow`` as on the
http action), so an alert cannot be pointed at the cloud metadata service either.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import Field, field_validator

from redrive.actions.egress import TargetPolicy, parse_allow_entry
from redrive.actions.email import EmailAction, EmailSender, SmtpConfig
from redrive.alerts.rules import ChannelConfig
from redrive.extensions import AlertChannel, AlertChannelKind, AlertNotification, ChannelContext
from redrive.hookspecs import hookimpl
from redrive.outbound_signing import standard_webhooks_headers
from redrive.triggers.fields import StrictModel

JSON_HEADERS = {"Content-Type": "application/json"}


class ChannelFailed(Exception):
    """A delivery the channel's receiver refused (the message is recorded as the delivery's last error)."""


class HttpChannelConfig(ChannelConfig):
    """A channel that POSTs to a URL: the http action's egress rules apply."""

    url: str = Field(min_length=1)
    allow_private: bool = False
    allow: list[str] = Field(default_factory=list)

    @field_validator("allow")
    @classmethod
    def _allow_entries(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            parse_allow_entry(entry)  # raises ValueError naming the entry
        return entries

    @property
    def policy(self) -> TargetPolicy:
        """Where this channel may connect (public addresses, plus what it allows)."""
        return TargetPolicy.build(self.allow_private, self.allow)


async def _post(context: ChannelContext, config: HttpChannelConfig, body: bytes, headers: dict[str, str]) -> None:
    status = await context.http_post(config.url, body, headers, config.policy)
    if not 200 <= status <= 299:
        raise ChannelFailed(f"the receiver answered {status}")


class SlackConfig(HttpChannelConfig):
    kind: Literal["slack"]


def slack_escape(text: str) -> str:
    """Text as Slack's mrkdwn shows it literally: ``&``, ``<`` and ``>`` escaped (``<ip>`` would be a link)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(notification: AlertNotification) -> dict[str, Any]:
    """A Block Kit message: the title as header, the text as one section (``text`` is the notification fallback)."""
    link = notification.detail.get("link")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": notification.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(notification.text)[:3000]}},
    ]
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open in redrive>"}]})
    return {"text": notification.title, "blocks": blocks}


class SlackChannel(AlertChannel):
    """Posts Block Kit JSON to a Slack incoming webhook (or anything that speaks it)."""

    def __init__(self, config: SlackConfig, context: ChannelContext) -> None:
        self._config = config
        self._context = context

    async def send(self, notification: AlertNotification) -> None:
        """POST the message; anything but a 2xx is a failure."""
        await _post(self._context, self._config, orjson.dumps(slack_message(notification)), dict(JSON_HEADERS))


class SigningConfig(StrictModel):
    scheme: Literal["standard-webhooks"]
    secret: str | None = None
    secrets: list[str] = Field(default_factory=list)
    """Several secrets sign at once (rotation): newest first."""

    @property
    def all_secrets(self) -> list[str]:
        """``secret`` then ``secrets``."""
        return ([self.secret] if self.secret else []) + self.secrets


class WebhookConfig(HttpChannelConfig):
    kind: Literal["webhook"]
    sign: SigningConfig | None = None


def alert_payload(notification: AlertNotification) -> dict[str, Any]:
    """The JSON a webhook receives (and a ``trigger`` channel's event carries)."""
    return {
        "type": f"alert.{notification.kind}",
        "key": notification.key,
        "rule": notification.rule,
        "kind": notification.kind,
        "at": notification.at.isoformat(),
        "title": notification.title,
        "text": notification.text,
        "detail": dict(notification.detail),
    }


class WebhookChannel(AlertChannel):
    """POSTs the alert as JSON, signed with Standard Webhooks (``webhook-id`` is the transition's key)."""

    def __init__(self, config: WebhookConfig, context: ChannelContext) -> None:
        self._config = config
        self._context = context

    async def send(self, notification: AlertNotification) -> None:
        """POST the payload with signature headers when configured."""
        body = orjson.dumps(alert_payload(notification))
        headers = dict(JSON_HEADERS)
        sign = self._config.sign
        if sign is not None:
            at = self._context.clock()
            headers |= standard_webhooks_headers(sign.all_secrets, notification.key, at, body.decode())
        await _post(self._context, self._config, body, headers)


class EmailChannelConfig(ChannelConfig):
    kind: Literal["email"]
    smtp: SmtpConfig
    sender: str = Field(alias="from", default="redrive@localhost")
    to: list[str] = Field(min_length=1)


class EmailChannel(AlertChannel):
    """Sends the alert as a plain-text mail through the email action's sender (same SMTP handling and errors)."""

    def __init__(self, config: EmailChannelConfig, context: ChannelContext) -> None:
        action = {"kind": "email", "smtp": config.smtp, "from": config.sender, "to": config.to, "subject": "-"}
        self._sender = EmailSender(EmailAction.model_validate({**action, "text": "-"}))
        self._config = config

    async def send(self, notification: AlertNotification) -> None:
        """Send one message; a refused or failed send raises with the server's reply."""
        config = self._config
        rendered = {
            "from": config.sender,
            "to": config.to,
            "subject": notification.title,
            "text": notification.text,
            "smtp": {"host": config.smtp.host, "port": config.smtp.port},
        }
        outcome = await self._sender.execute(rendered, {})
        if outcome.failure is not None:
            raise ChannelFailed(f"{outcome.failure.code}: {outcome.failure.message}")


class TriggerChannelConfig(ChannelConfig):
    kind: Literal["trigger"]
    trigger: str


class TriggerChannel(AlertChannel):
    """Accepts the alert as an event of a redrive trigger, keyed by the transition: stored, deduplicated, retried
    and dead-lettered like any event."""

    def __init__(self, config: TriggerChannelConfig, context: ChannelContext) -> None:
        self._config = config
        self._context = context

    async def send(self, notification: AlertNotification) -> None:
        """Submit the event (a second delivery of the same transition is a duplicate, answered 200)."""
        await self._context.submit_event(self._config.trigger, alert_payload(notification), notification.key)


@hookimpl
def redrive_alert_channels() -> list[AlertChannelKind]:
    """The ``slack``, ``webhook``, ``email`` and ``trigger`` alert channels."""
    return [
        AlertChannelKind("slack", SlackConfig, SlackChannel, secret_fields=("url",)),
        AlertChannelKind("webhook", WebhookConfig, WebhookChannel, secret_fields=("sign",)),
        AlertChannelKind("email", EmailChannelConfig, EmailChannel),
        AlertChannelKind("trigger", TriggerChannelConfig, TriggerChannel),
    ]
