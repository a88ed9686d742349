"""Helpers for the alert tests: a Slack-compatible (and webhook) receiver on loopback, an HTTP target whose answer
the test switches, and the trigger file that ties them to an alert rule."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """Records every request; answers ``status[path]`` (a list consumed one answer per request), then
    ``default[path]`` (200 unless set: a test switches a target between failing and recovered)."""

    status: dict[str, list[int]] = field(default_factory=dict)
    default: dict[str, int] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def at(self, path: str) -> list[Received]:
        """What arrived at ``path`` (answered 2xx or not)."""
        return [r for r in self.received if r.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(request.path, dict(request.headers), body))
        answers = self.status.get(request.path) or []
        status = answers.pop(0) if answers else self.default.get(request.path, 200)
        return web.Response(status=status, text="ok" if status < 300 else "nope")


@contextmanager
def receiver(status: dict[str, list[int]] | None = None) -> Iterator[Receiver]:
    """A Receiver served by aiohttp on 127.0.0.1 in a thread of its own until the block ends."""
    recorder = Receiver(status or {})
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner: list[web.AppRunner] = []

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", recorder.handle)
        runner.append(web.AppRunner(app))
        await runner[0].setup()
        site = web.TCPSite(runner[0], "127.0.0.1", 0)
        await site.start()
        port = runner[0].addresses[0][1]
        recorder.url = f"http://127.0.0.1:{port}"
        started.set()

    thread = threading.Thread(target=loop.run_forever, name="alert-receiver", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    started.wait(10)
    try:
        yield recorder
    finally:
        asyncio.run_coroutine_threadsafe(runner[0].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"


ALL_CHANNELS = ("slack", "mail", "pager", "bot")


def alerts_yaml(hooks: str, smtp_port: int, *, channels: tuple[str, ...] = ALL_CHANNELS) -> str:
    """Trigger ``orders`` (http to the receiver's ``/target``, one attempt), trigger ``incident`` (where alerts
    become events), a failure-rate rule, and the channels pointing at the receiver (``hooks``) and the SMTP server."""
    declared = {
        "slack": f'{{name: slack, kind: slack, url: "{hooks}/slack", allow_private: true}}',
        "mail": f"{{name: mail, kind: email, smtp: {{host: 127.0.0.1, port: {smtp_port}, timeout: 5s}}, "
        "from: redrive@example.test, to: [oncall@example.test]}",
        "pager": f'{{name: pager, kind: webhook, url: "{hooks}/pager", allow_private: true, '
        f"sign: {{scheme: standard-webhooks, secret: {SECRET}}}}}",
        "bot": "{name: bot, kind: trigger, trigger: incident}",
    }
    return f"""
triggers:
  - name: orders
    action:
      kind: http
      url: "{hooks}/target"
      allow_private: true
      json: {{order: "{{{{ payload.order }}}}"}}
    retry: {{max_attempts: 1}}
  - name: incident
    action: {{kind: command, argv: ["true"]}}
alerts:
  - name: orders-failing
    when: {{failure_rate: ">= 50%", window: 1m, min_attempts: 5, resolve_below: 10%}}
    triggers: [orders]
    notify: [{", ".join(channels)}]
channels:
""" + "".join(f"  - {declared[c]}\n" for c in channels)
