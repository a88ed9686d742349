"""The plugin redrive loads (entry point ``slack`` in the ``redrive`` group): the ``slack`` action kind, the
``slack`` signature scheme (Slack's request signing, for events Slack sends), hints for its error codes, and a
notice posted to Slack when an execution is dead-lettered.

The notice goes to ``REDRIVE_SLACK_NOTIFY_URL`` (an incoming-webhook URL), read when an execution is dead-lettered;
unset, nothing is posted. redrive runs the hook after the commit, bounded in time: a slow or failing Slack never
holds up redrive, and a failed notice is logged by redrive as ``plugin_hook_failed``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import aiohttp
from redrive.extensions import ActionKind, ExecutionDeadLettered, SignatureScheme
from redrive.failures.hints import Hint
from redrive.hookspecs import hookimpl

from redrive_slack.action import KIND, SlackAction, SlackPoster, session, summary
from redrive_slack.answers import HINTS, classify_answer
from redrive_slack.signature import SLACK_SCHEME

NOTIFY_URL = "REDRIVE_SLACK_NOTIFY_URL"
NOTIFY_TIMEOUT = 5.0


class NoticeRefused(Exception):
    """Slack refused the dead-letter notice (redrive logs it as ``plugin_hook_failed``)."""


@hookimpl
def redrive_action_kinds() -> list[ActionKind]:
    """The ``slack`` action kind."""
    return [ActionKind(name=KIND, config=SlackAction, build=SlackPoster, summary=summary, resources=session)]


@hookimpl
def redrive_signature_schemes() -> list[SignatureScheme]:
    """The ``slack`` signature scheme (``X-Slack-Signature``)."""
    return [SLACK_SCHEME]


@hookimpl
def redrive_hints() -> Mapping[str, Hint]:
    """What to do about each ``slack_*`` error code."""
    return HINTS


@hookimpl
async def redrive_execution_dead_lettered(execution: ExecutionDeadLettered) -> None:
    """Post a notice about a dead-lettered (or permanently failed) execution to ``REDRIVE_SLACK_NOTIFY_URL``."""
    url = os.environ.get(NOTIFY_URL)
    if not url:
        return
    timeout = aiohttp.ClientTimeout(total=NOTIFY_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as client, client.post(url, json=notice(execution)) as answer:
        body = await answer.text(errors="replace")
        failure = classify_answer(answer.status, body, answer.headers.get("Retry-After"))
    if failure is not None:
        raise NoticeRefused(failure.message)


def notice(execution: ExecutionDeadLettered) -> dict[str, Any]:
    """The Block Kit message announcing ``execution``'s failure."""
    where = "dead-lettered" if execution.status == "failed_retryable" else "failed for good"
    failure = execution.failure
    title = f"redrive: execution {execution.execution_id} of {execution.trigger} {where}"
    facts = (
        f"*Trigger* {execution.trigger} ({execution.kind})\n*Attempts* {execution.attempts}\n"
        f"*Error* `{failure.code}` ({failure.category}): {failure.message}"
    )
    return {
        "text": title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": facts[:3000]}},
        ],
    }
