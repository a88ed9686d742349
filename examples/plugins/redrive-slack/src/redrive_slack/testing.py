"""A Slack-compatible incoming webhook for tests: answers as Slack does, error bodies included.

Serve it with pytest-httpserver (the ``test`` extra)::

    slack = FakeSlack()
    slack.install(httpserver)
    url = httpserver.url_for(slack.path)          # a webhook URL that works
    slack.fail_next("rate_limited", retry_after=1)  # the next post is refused as Slack would refuse it

Like Slack it reads a JSON body, refuses what it cannot read (``400 invalid_payload``), a message without text or
blocks (``400 no_text``), a token it does not know (``403 invalid_token``) and a service it does not know
(``404 no_service``); otherwise it keeps the message and answers ``200 ok``, or the failure the test scripted.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

STATUS = {
    "invalid_payload": 400,
    "no_text": 400,
    "user_not_found": 400,
    "invalid_token": 403,
    "action_prohibited": 403,
    "channel_not_found": 404,
    "no_service": 404,
    "channel_is_archived": 410,
    "rate_limited": 429,
    "rollup_error": 500,
}
"""The HTTP status Slack answers each error string with."""


@dataclass
class FakeSlack:
    """One workspace's incoming webhook: ``/services/{team}/{service}/{token}``."""

    team: str = "T00000000"
    service: str = "B00000000"
    token: str = "XXXXXXXXXXXXXXXXXXXXXXXX"  # noqa: S105 - a made-up webhook token
    received: list[dict[str, Any]] = field(default_factory=list)
    _script: deque[tuple[str, dict[str, str]]] = field(default_factory=deque)

    @property
    def path(self) -> str:
        """The path of the webhook that works."""
        return f"/services/{self.team}/{self.service}/{self.token}"

    def install(self, server: HTTPServer) -> None:
        """Answer every ``/services/...`` post on ``server``."""
        server.expect_request(re.compile(r"^/services/"), method="POST").respond_with_handler(self.answer)

    def fail_next(self, error: str, *, retry_after: int | None = None) -> None:
        """Refuse the next accepted message with ``error`` (and its status); queue several for several posts."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._script.append((error, headers))

    def answer(self, request: Request) -> Response:
        """Answer one post as Slack would."""
        parts = request.path.split("/")
        if len(parts) != 5 or parts[2] != self.team or parts[3] != self.service:
            return _refuse("no_service")
        if parts[4] != self.token:
            return _refuse("invalid_token")
        try:
            message = json.loads(request.get_data())
        except ValueError:
            return _refuse("invalid_payload")
        if not isinstance(message, dict) or not isinstance(message.get("blocks", []), list):
            return _refuse("invalid_payload")
        if not message.get("text") and not message.get("blocks"):
            return _refuse("no_text")
        if self._script:
            error, headers = self._script.popleft()
            return _refuse(error, headers)
        self.received.append(message)
        return Response("ok", status=200, content_type="text/html")


def _refuse(error: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error, status=STATUS.get(error, 400), headers=headers or {}, content_type="text/html")
