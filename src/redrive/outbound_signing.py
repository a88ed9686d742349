"""Signing what redrive sends: Standard Webhooks headers, so a receiver verifies redrive with its own library.

The http action's ``sign:`` block and the ``webhook`` alert channel both sign through :func:`standard_webhooks_headers`.
Several secrets sign at once (one ``v1,`` entry each, space-separated): a receiver that knows any one of them
verifies, which is how a secret is rotated without a window where deliveries fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook

__all__ = ["standard_webhooks_headers"]


def standard_webhooks_headers(secrets: Sequence[str], msg_id: str, at: datetime, body: str) -> dict[str, str]:
    """The ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers for ``body`` sent at ``at``.

    ``msg_id`` must stay the same across retries of one message (receivers deduplicate on it); ``secrets`` are
    ``whsec_`` secrets, newest first.
    """
    if not secrets:
        raise ValueError("standard-webhooks signing needs at least one secret")
    signature = " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature}
