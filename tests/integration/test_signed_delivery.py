"""Signed outbound webhooks end to end: a real aiohttp receiver on loopback verifies every delivery with the
``standardwebhooks`` library itself, under either of two rotated secrets, on both databases.

The service runs on a clock 90 s behind the wall clock: the ``webhook-timestamp`` then shows it is the attempt's
time from the injected clock (and still within the library's five-minute tolerance).
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from aiohttp import web
from plugin_support import serve
from replay_support import replay
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from redrive.actions import Outcome
from redrive.actions.http import HttpSessions
from redrive.plugins import builtin_registry
from redrive.triggers.config import parse_config
from support import query, scalar, wait_until

NEW = "whsec_" + base64.b64encode(b"new-outbound-secret-32-bytes-ok!").decode()
OLD = "whsec_" + base64.b64encode(b"old-outbound-secret-32-bytes-ok!").decode()
FOREIGN = "whsec_" + base64.b64encode(b"a-secret-redrive-does-not-know!!").decode()
SKEW = timedelta(seconds=90)


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    verified_by: list[str]


@dataclass
class Receiver:
    """Answers each order with its scripted statuses in turn (200 once they run out) and keeps every delivery."""

    script: dict[str, list[int]]
    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        verified = []
        for name, secret in (("new", NEW), ("old", OLD), ("foreign", FOREIGN)):
            try:
                Webhook(secret).verify(body, dict(request.headers))
            except WebhookVerificationError:
                continue
            verified.append(name)
        self.deliveries.append(Delivery(dict(request.headers), body, verified))
        statuses = self.script.get(request.headers.get("X-Order", ""), [])
        return web.Response(status=statuses.pop(0) if statuses else 200)


@contextmanager
def receiving(receiver: Receiver) -> Iterator[Receiver]:
    """Run ``receiver`` as an aiohttp app on a free loopback port, in its own thread and loop, until the block ends."""
    stop = threading.Event()

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hooks", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
        await asyncio.to_thread(stop.wait)
        await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    wait_until(lambda: receiver.url, what="the receiver to listen")
    try:
        yield receiver
    finally:
        stop.set()
        thread.join(timeout=10)


def config(url: str) -> str:
    return f"""
triggers:
  - name: orders
    action:
      kind: http
      url: "{url}"
      allow: [127.0.0.1]
      json: {{order: "{{{{ payload.order }}}}"}}
      headers: {{X-Order: "{{{{ payload.order }}}}"}}
      sign: {{scheme: standard-webhooks, secrets: ["${{SIGN_NEW}}", "${{SIGN_OLD}}"]}}
    retry: {{max_attempts: 2, base: 10ms, jitter: none}}
"""


def behind() -> datetime:
    return datetime.now(UTC) - SKEW


def settled(db_url: str, execution_id: int) -> str | None:
    status = str(scalar(db_url, "SELECT status FROM executions WHERE id = :id", id=execution_id))
    return status if status in {"succeeded", "failed", "failed_retryable"} else None


def test_signed_deliveries_verify_under_either_secret_and_keep_one_id_across_retries_and_replay(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGN_NEW", NEW)
    monkeypatch.setenv("SIGN_OLD", OLD)
    receiver = Receiver({"A-1": [503], "B-2": [503, 503]})  # A succeeds on its retry; B dead-letters, then replays
    with receiving(receiver), serve(db_url, config(receiver.url), plugins=[], clock=behind) as service:
        started = behind()
        ids = {}
        for order in ("A-1", "B-2"):
            sent = httpx2.post(f"{service.url}/hooks/orders", json={"order": order}, timeout=10).json()
            ids[order] = sent["execution_id"]
        assert wait_until(lambda: settled(db_url, ids["A-1"])) == "succeeded"
        assert wait_until(lambda: settled(db_url, ids["B-2"])) == "failed_retryable"
        assert replay(service, ids["B-2"]).status_code == 200
        wait_until(lambda: scalar(db_url, "SELECT count(*) FROM executions WHERE status = 'succeeded'") == 2)
        finished = behind()
        detail = httpx2.get(
            f"{service.url}/api/v1/executions/{ids['A-1']}", headers=service.auth("viewer"), timeout=10
        ).json()
        shown = httpx2.get(f"{service.url}/api/v1/triggers/orders", headers=service.auth("viewer"), timeout=10)
    assert shown.json()["config"]["action"]["sign"] == {
        "scheme": "standard-webhooks",
        "secret": None,
        "secrets": "[redacted]",
    }

    assert len(receiver.deliveries) == 5  # A twice; B twice, then its replay once
    for delivery in receiver.deliveries:
        assert delivery.verified_by == ["new", "old"]  # either secret verifies; a foreign one does not
        stamp = int(delivery.headers["webhook-timestamp"])
        assert int(started.timestamp()) <= stamp <= int(finished.timestamp()) + 1  # the injected clock's time
    by_order: dict[str, set[str]] = {}
    for delivery in receiver.deliveries:
        by_order.setdefault(delivery.headers["X-Order"], set()).add(delivery.headers["webhook-id"])
    events = dict(query(db_url, "SELECT id, event_id FROM executions WHERE replay_of IS NULL"))
    assert by_order == {  # one id per event: over the retries, and over the replay (a new execution row)
        "A-1": {f"redrive-event-{events[ids['A-1']]}"},
        "B-2": {f"redrive-event-{events[ids['B-2']]}"},
    }

    # What each attempt stored as sent: the id, the signature masked, no secret in any form.
    for attempt in detail["attempts"]:
        headers = attempt["request"]["headers"]
        assert headers["webhook-id"] == f"redrive-event-{events[ids['A-1']]}"
        assert headers["webhook-signature"] == "[redacted]"
    stored = str(query(db_url, "SELECT request, detail, excerpt FROM attempts"))
    for secret in (NEW, OLD):
        assert secret.removeprefix("whsec_") not in stored


NOTES = """
triggers:
  - name: notes
    action:
      kind: http
      url: URL
      allow: [127.0.0.1]
      body: '{"note":  "naïve café — {{ payload.n }}"}'
      headers: {Content-Type: application/json; charset=utf-8}
      sign: {scheme: standard-webhooks, secret: SECRET}
"""


def test_a_text_body_is_signed_as_the_exact_bytes_sent() -> None:
    at = datetime.now(UTC).replace(microsecond=0) - SKEW

    async def send(url: str) -> Outcome:
        config = parse_config(NOTES.replace("URL", url).replace("SECRET", OLD), env={})
        requester = builtin_registry().build(config.triggers[0].action)
        rendered = requester.render({"payload": {"n": 3}, "headers": {}, "event": {"id": 41}, "trigger": {}})
        async with HttpSessions(clock=lambda: at) as sessions:
            return await requester.execute(rendered, {"http": sessions})

    with receiving(Receiver({})) as receiver:
        outcome = asyncio.run(send(receiver.url))
    assert outcome.ok, outcome.failure
    [delivery] = receiver.deliveries
    assert delivery.body == '{"note":  "naïve café — 3"}'.encode()  # as written: two spaces, UTF-8
    assert delivery.verified_by == ["old"]
    assert delivery.headers["Content-Type"] == "application/json; charset=utf-8"  # the file's, not a default
    assert (delivery.headers["webhook-id"], delivery.headers["webhook-timestamp"]) == (
        "redrive-event-41",
        str(int(at.timestamp())),
    )
