"""What Slack's incoming webhooks answer, and what each answer means for redrive: pure values, no I/O.

An incoming webhook answers ``200 ok``, or an HTTP error status whose body is one short error string
(``403 invalid_token``, ``404 channel_not_found``, ``429 rate_limited`` with ``Retry-After``...), per Slack's
"Handling errors" for incoming webhooks. Rate limits and Slack's own outages are transient (redrive retries,
honouring ``Retry-After``); every other refusal is permanent: retrying the same message cannot help, so the
execution is dead-lettered at once with a code (``slack_<error>``) and a hint saying what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from redrive.failures.classify import Failure, permanent, transient
from redrive.failures.hints import Hint

_ERROR = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RETRY_AFTER_CAP = 3600.0
"""Longest ``Retry-After`` believed (seconds); Slack asks for about a minute."""

TRANSIENT_ERRORS = frozenset({"rate_limited", "rollup_error", "internal_error", "fatal_error", "service_unavailable"})
"""Error strings a later attempt may not meet (a rate limit, an outage on Slack's side)."""

HINTS: Mapping[str, Hint] = {
    "slack_rate_limited": Hint(
        "Slack rate limit",
        "Slack accepts about one message per second per webhook; redrive waits as long as Retry-After asks and "
        "tries again. Replay the group if retries ran out.",
        "replay_group",
    ),
    "slack_invalid_token": Hint(
        "Webhook URL revoked or mistyped",
        "Slack does not recognise this webhook's token: create a new incoming webhook, put its URL in the "
        "trigger's webhook_url (better: in ${SLACK_WEBHOOK_URL}), then replay.",
        "fix_config",
    ),
    "slack_channel_not_found": Hint(
        "Channel gone",
        "The webhook's channel was deleted, or renamed past what the webhook knows: point a new webhook at an "
        "existing channel, then replay.",
        "fix_config",
    ),
    "slack_channel_is_archived": Hint(
        "Channel archived", "Unarchive the channel or use a webhook for another one, then replay.", "fix_config"
    ),
    "slack_no_service": Hint(
        "Webhook removed",
        "The incoming webhook was disabled or its app uninstalled: create a new one and update webhook_url.",
        "fix_config",
    ),
    "slack_action_prohibited": Hint(
        "Posting restricted",
        "A workspace admin restricts posting in this channel: ask for access or use another channel.",
        "fix_config",
    ),
    "slack_invalid_payload": Hint(
        "Message Slack cannot read",
        "Check the action's text and blocks against Block Kit (the Block Kit Builder validates them), then replay.",
        "fix_config",
    ),
    "slack_no_text": Hint(
        "Empty message", "Give the action a non-empty text (the notification fallback), then replay.", "fix_config"
    ),
    "slack_unreachable": Hint(
        "Slack unreachable",
        "The webhook URL could not be reached (DNS, network or TLS); redrive retries. Check egress from this host.",
        "replay_group",
    ),
    "slack_timeout": Hint(
        "Slack slow to answer",
        "Slack took longer than the action's timeout; redrive retries. Raise the timeout if it keeps happening.",
        "raise_timeout",
    ),
    "slack_server_error": Hint(
        "Slack outage",
        "Slack answered with a server error; redrive retries. Replay the group once Slack is back.",
        "replay_group",
    ),
}
"""Hints for every code this plugin's failures carry, registered through ``redrive_hints``."""


def classify_answer(status: int, body: str, retry_after: str | None = None) -> Failure | None:
    """What a webhook's answer means: None for ``200 ok``, else a transient or permanent ``slack_*`` failure."""
    error = body.strip()
    if 200 <= status < 300 and error in {"ok", ""}:
        return None
    if not _ERROR.match(error):  # not one of Slack's error strings (a proxy's page, say): judge by status
        error = "server_error" if status >= 500 else f"http_{status}"
    message = f"Slack answered {status} {error}"
    if status == 429 or error in TRANSIENT_ERRORS or status >= 500:
        failure = transient(f"slack_{error}", message)
        return Failure(failure.category, failure.code, message, retry_after=_seconds(retry_after))
    return permanent(f"slack_{error}", message)


def unreachable(exc: BaseException) -> Failure:
    """A request that got no answer (refused, reset, timed out): transient."""
    if isinstance(exc, TimeoutError):
        return transient("slack_timeout", "Slack did not answer in time")
    return transient("slack_unreachable", f"{type(exc).__name__}: {exc}".strip().rstrip(":"))


def _seconds(value: str | None) -> float | None:
    # Slack sends delta-seconds; an HTTP date or garbage is ignored (redrive's own backoff then applies).
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), RETRY_AFTER_CAP)
