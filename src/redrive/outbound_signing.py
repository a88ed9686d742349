"""Signing what redrive sends: Standard Webhooks headers, so a receiver verifies redrive with its own library.

The http action's ``sign:`` block and the ``webhook`` alert channel both sign through :func:`standard_webhooks_headers`.
Several secrets sign at once (one ``v1,`` entry each, space-separated): a receiver that knows any one of them
verifies, which is how a secret is rotated without a window where deliveries fail.

:class:`StandardWebhooksSign` is the ``sign:`` block itself (``{scheme: standard-webhooks, secret: ...}`` or
``secrets: [...]``), validated like the inbound ``verify`` block: the same ``whsec_`` check, the same rules for
``secret``/``secrets``. Its secrets are masked by the redactor like every other configured secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import model_validator
from standardwebhooks.webhooks import Webhook

from redrive.ingest.signatures import SigningSecrets, check_standard_webhooks_secrets, secret_values

__all__ = ["SIGNATURE_HEADERS", "StandardWebhooksSign", "standard_webhooks_headers"]

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
"""The headers signing sets (lower-case): a configured header of the same name would be overwritten."""


class StandardWebhooksSign(SigningSecrets):
    """A ``sign:`` block: sign what is sent with Standard Webhooks, using every secret given (newest first)."""

    scheme: Literal["standard-webhooks"]

    @model_validator(mode="after")
    def _secrets_decode(self) -> StandardWebhooksSign:
        check_standard_webhooks_secrets(self.all_secrets)
        return self

    def headers(self, msg_id: str, at: datetime, body: str) -> dict[str, str]:
        """The signature headers for ``body`` sent at ``at`` as message ``msg_id``."""
        return standard_webhooks_headers(self.all_secrets, msg_id, at, body)

    def secret_values(self) -> set[str]:
        """Every text form of the secrets, for the redactor (with and without the ``whsec_`` prefix)."""
        return secret_values(self, ("secret", "secrets"))


def standard_webhooks_headers(secrets: Sequence[str], msg_id: str, at: datetime, body: str) -> dict[str, str]:
    """The ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers for ``body`` sent at ``at``.

    ``msg_id`` must stay the same across retries of one message (receivers deduplicate on it); ``secrets`` are
    ``whsec_`` secrets, newest first.
    """
    if not secrets:
        raise ValueError("standard-webhooks signing needs at least one secret")
    signature = " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature}
