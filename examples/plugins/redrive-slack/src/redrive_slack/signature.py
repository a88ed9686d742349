"""The ``slack`` signature scheme: Slack's own request signing, so Slack's Events API can post to a redrive trigger.

Slack signs each request with the app's signing secret: ``X-Slack-Signature: v0=<hex HMAC-SHA256 of
"v0:{X-Slack-Request-Timestamp}:{raw body}">``. A request older (or newer) than ``tolerance`` seconds is refused,
against replays. Slack retries an event it sent with the same ``event_id`` in the body: that is the idempotency key.
Several secrets may be listed, so a secret can be rotated without downtime.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from redrive.errors import InvalidSignature
from redrive.extensions import SignatureScheme

SCHEME = "slack"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=([0-9a-fA-F]{64})")


class SlackVerify(BaseModel):
    """``source.verify`` for ``scheme: slack``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Literal["slack"]
    secrets: list[str] = Field(min_length=1, description="Signing secrets (Basic Information page); any may sign.")
    tolerance: int = Field(300, ge=1, le=3600, description="Largest age, in seconds, of a request still accepted.")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value Slack sends for ``body`` at ``timestamp``."""
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(config: SlackVerify, body: bytes, headers: Mapping[str, str], now: float) -> None:
    """Refuse a delivery no configured secret signed, or one outside the tolerance (raises InvalidSignature)."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise InvalidSignature("the X-Slack-Request-Timestamp header is missing or not a number")
    if abs(now - int(timestamp)) > config.tolerance:
        raise InvalidSignature(f"the request is more than {config.tolerance} s away from now (a replay?)")
    given = _SIGNATURE.fullmatch(headers.get("x-slack-signature", ""))
    if given is None:
        raise InvalidSignature("the X-Slack-Signature header is missing or not 'v0=<64 hex digits>'")
    expected = [sign(secret, timestamp, body) for secret in config.secrets]
    if not any(hmac.compare_digest(f"v0={given.group(1).lower()}", candidate) for candidate in expected):
        raise InvalidSignature("no configured signing secret made this X-Slack-Signature")


SLACK_SCHEME = SignatureScheme(
    name=SCHEME, config=SlackVerify, verify=verify, key_header="body:event_id", secret_fields=("secrets",)
)
