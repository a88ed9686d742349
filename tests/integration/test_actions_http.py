"""The http action against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web

from redrive.actions import Outcome
from redrive.actions.http import HttpAction, HttpRequester, HttpSessions
from redrive.clock import Clock, utcnow
from redrive.plugins import builtin_registry
from redrive.triggers.config import ConfigError, parse_config
from redrive.triggers.templating import RenderError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    base_url: str
    received: list[Received] = field(default_factory=list)


def http_action(url: str, **options: Any) -> HttpAction:
    """An action config for ``url``; loopback is allowed (the test servers live there) unless ``options`` say."""
    options.setdefault("allow", ["127.0.0.1"])
    doc = {"triggers": [{"name": "t", "action": {"kind": "http", "url": url, **options}}]}
    action = parse_config(yaml.safe_dump(doc), env={}).triggers[0].action
    assert isinstance(action, HttpAction)
    return action


@asynccontextmanager
async def serve(routes: dict[str, Handler]) -> AsyncIterator[Server]:
    """Run an aiohttp app on an ephemeral loopback port; every request is recorded before its handler runs."""
    server = Server("")

    def recording(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            server.received.append(Received(request.method, request.path, dict(request.headers), body))
            return await handler(request)

        return wrapped

    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, recording(handler))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield server
    finally:
        await runner.cleanup()


async def attempt(
    action: HttpAction, payload: dict[str, Any] | None = None, *, clock: Clock = utcnow
) -> tuple[dict[str, Any], Outcome]:
    runner = builtin_registry().build(action)
    rendered = runner.render({"payload": payload or {}, "headers": {}, "event": {}, "trigger": {}})
    resources = {"http": HttpSessions(clock=clock)}
    try:
        outcome = await runner.execute(rendered, resources)
    finally:
        await resources["http"].close()
    return rendered, outcome


def status_handler(status: int, headers: dict[str, str] | None = None, body: str = "") -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, headers=headers, text=body)

    return handler


def test_200_sends_the_rendered_json_and_succeeds() -> None:
    async def scenario() -> None:
        async with serve({"/hook": status_handler(200, {"X-Reply": "yes"}, "accepted")}) as server:
            action = http_action(
                f"{server.base_url}/hook",
                method="{{ payload.verb }}",
                headers={"X-Order": "{{ payload.id }}"},
                json={
                    "id": "{{ payload.id }}",
                    "fixed": 1,
                    "nested": {"items": ["{{ payload.name }}", True]},
                },
            )
            rendered, outcome = await attempt(action, {"verb": "put", "id": "o-1", "name": "{{ 7*7 }}"})

            assert rendered["method"] == "PUT"
            assert rendered["json"] == {"id": "o-1", "fixed": 1, "nested": {"items": ["{{ 7*7 }}", True]}}
            assert outcome.ok
            assert outcome.failure is None
            assert outcome.detail["status"] == 200
            assert outcome.detail["reason"] == "OK"
            assert outcome.detail["headers"]["X-Reply"] == "yes"
            assert outcome.excerpt == "accepted"
            assert orjson.loads(orjson.dumps(outcome.detail)) == outcome.detail  # JSON-safe, plain str keys
            assert orjson.loads(orjson.dumps(rendered)) == rendered
            [request] = server.received
            assert request.method == "PUT"
            assert request.headers["X-Order"] == "o-1"
            assert request.headers["Content-Type"].startswith("application/json")
            assert json.loads(request.body) == rendered["json"]

    asyncio.run(scenario())


def test_string_body_is_sent_verbatim_with_the_configured_content_type() -> None:
    async def scenario() -> None:
        async with serve({"/hook": status_handler(204)}) as server:
            action = http_action(
                f"{server.base_url}/hook",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                body="a={{ payload.a }}&b=2",
            )
            _, outcome = await attempt(action, {"a": "é"})
            assert outcome.ok
            assert outcome.excerpt is None
            [request] = server.received
            assert request.method == "POST"
            assert request.body == "a=é&b=2".encode()
            assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("status", "category", "pause"),
    [
        (503, "transient", False),
        (400, "permanent", False),
        (410, "permanent", True),
        (408, "transient", False),
    ],
)
def test_error_statuses_are_classified(status: int, category: str, pause: bool) -> None:
    async def scenario() -> None:
        async with serve({"/hook": status_handler(status, body="nope")}) as server:
            _, outcome = await attempt(http_action(f"{server.base_url}/hook"))
            assert not outcome.ok
            assert outcome.failure is not None
            assert outcome.failure.code == f"http_{status}"
            assert outcome.failure.category == category
            assert outcome.failure.pause_trigger is pause
            assert outcome.detail["status"] == status
            assert outcome.excerpt == "nope"

    asyncio.run(scenario())


def test_429_retry_after_is_honoured() -> None:
    async def scenario() -> None:
        async with serve({"/hook": status_handler(429, {"Retry-After": "2"})}) as server:
            _, outcome = await attempt(http_action(f"{server.base_url}/hook"))
            assert outcome.failure is not None
            assert outcome.failure.category == "transient"
            assert outcome.failure.code == "http_429"
            assert outcome.failure.retry_after == 2.0
            assert outcome.detail["headers"]["Retry-After"] == "2"

    asyncio.run(scenario())


def test_a_retry_after_date_is_read_against_the_injected_clock() -> None:
    # The worker's clock says 2030 and the target's date is 90 s after it: the delay is read against that clock.
    now = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=90), usegmt=True)

    async def scenario() -> None:
        async with serve({"/hook": status_handler(503, {"Retry-After": date})}) as server:
            _, outcome = await attempt(http_action(f"{server.base_url}/hook"), clock=lambda: now)
            assert outcome.failure is not None
            assert outcome.failure.retry_after == 90.0

    asyncio.run(scenario())


def test_redirect_is_a_failure_and_is_not_followed() -> None:
    async def scenario() -> None:
        routes = {"/hook": status_handler(302, {"Location": "/target"}), "/target": status_handler(200)}
        async with serve(routes) as server:
            _, outcome = await attempt(http_action(f"{server.base_url}/hook"))
            assert outcome.failure is not None
            assert outcome.failure.code == "http_302"
            assert [r.path for r in server.received] == ["/hook"]

    asyncio.run(scenario())


def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, outcome = asyncio.run(attempt(http_action(f"http://127.0.0.1:{port}/hook")))
    assert outcome.failure is not None
    assert outcome.failure.category == "transient"
    assert outcome.failure.code == "connection_refused"
    assert outcome.detail == {}


def test_total_timeout_is_transient() -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def slow(request: web.Request) -> web.Response:
            await asyncio.wait_for(release.wait(), 5)
            return web.Response(text="late")

        async with serve({"/hook": slow}) as server:
            started = asyncio.get_running_loop().time()
            _, outcome = await attempt(http_action(f"{server.base_url}/hook", timeout="200ms"))
            elapsed = asyncio.get_running_loop().time() - started
            release.set()
            assert outcome.failure is not None
            assert outcome.failure.category == "transient"
            assert outcome.failure.code == "timeout"
            assert elapsed < 2

    asyncio.run(scenario())


def test_response_body_excerpt_is_capped() -> None:
    async def scenario() -> None:
        async with serve({"/hook": status_handler(500, body="é" * (512 * 1024))}) as server:
            _, outcome = await attempt(http_action(f"{server.base_url}/hook"))
            assert outcome.failure is not None
            assert outcome.failure.code == "http_500"
            assert outcome.excerpt is not None
            assert len(outcome.excerpt.encode()) == 4096
            assert set(outcome.excerpt) == {"é"}

    asyncio.run(scenario())


def test_invalid_method_is_refused_without_sending() -> None:
    async def scenario() -> None:
        async with serve({"/hook": status_handler(200)}) as server:
            action = http_action(f"{server.base_url}/hook", method="{{ payload.verb }}")
            _, outcome = await attempt(action, {"verb": "GET /admin HTTP/1.1\r\nX:"})
            assert outcome.failure is not None
            assert outcome.failure.category == "permanent"
            assert outcome.failure.code == "invalid_method"
            assert server.received == []

    asyncio.run(scenario())


def test_header_value_with_line_break_is_refused() -> None:
    async def scenario() -> None:
        async with serve({"/hook": status_handler(200)}) as server:
            action = http_action(f"{server.base_url}/hook", headers={"X-Name": "{{ payload.name }}"})
            _, outcome = await attempt(action, {"name": "a\r\nX-Injected: 1"})
            assert outcome.failure is not None
            assert outcome.failure.code == "invalid_header"
            assert server.received == []

    asyncio.run(scenario())


@pytest.mark.parametrize("name", ["Content-Length", "transfer-encoding"])
def test_a_framing_header_in_the_trigger_file_is_refused_naming_the_trigger(name: str) -> None:
    # The client writes the body's framing; a second one would frame it two ways on the wire.
    doc = {"triggers": [{"name": "orders", "action": {"kind": "http", "url": "http://x/", "headers": {name: "5"}}}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(doc), source="t.yaml", env={})
    [problem] = caught.value.problems
    assert problem.path.startswith("triggers[0] (orders).action")
    assert f"the {name} header(s) are set from the body" in problem.message


def test_missing_payload_field_raises_render_error() -> None:
    runner = builtin_registry().build(http_action("http://127.0.0.1:9/{{ payload.missing }}"))
    with pytest.raises(RenderError, match="missing"):
        runner.render({"payload": {}, "headers": {}, "event": {}, "trigger": {}})


def test_the_registry_builds_the_kinds_it_knows_and_refuses_others() -> None:
    assert isinstance(builtin_registry().build(http_action("http://127.0.0.1:9/")), HttpRequester)

    class Unknown:
        kind = "carrier-pigeon"

    with pytest.raises(ValueError, match="carrier-pigeon"):
        builtin_registry().build(Unknown())  # type: ignore[arg-type]
