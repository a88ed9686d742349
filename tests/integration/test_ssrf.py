"""The SSRF guard attacked with real loopback servers: a refused target never receives the request.

Names are made to resolve where an attack would point them through the resolver seam (``HttpSessions(lookup=...)``,
a real ``AbstractResolver`` answering from a table), not by patching; the guard and the action's client are the real
ones, so what is proven is that the connection goes only to checked addresses.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
import yaml
from aiohttp import web
from aiohttp.abc import AbstractResolver

from redrive.actions import Outcome
from redrive.actions.http import HttpSessions
from redrive.failures.hints import hint_for
from redrive.plugins import builtin_registry
from redrive.triggers.config import parse_config
from resolvers import TableResolver
from support import run_service, scalar, wait_until


@asynccontextmanager
async def loopback_server() -> AsyncIterator[tuple[int, list[str]]]:
    """A real HTTP server on 127.0.0.1; yields its port and the paths it received."""
    received: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        received.append(request.path_qs)
        if request.path == "/redirect":
            raise web.HTTPFound("/secret")
        return web.Response(text="reached")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1], received
    finally:
        await runner.cleanup()


async def attempt(url: str, lookup: AbstractResolver | None = None, **options: Any) -> Outcome:
    doc = {"triggers": [{"name": "t", "action": {"kind": "http", "url": url, **options}}]}
    action = builtin_registry().build(parse_config(yaml.safe_dump(doc), env={}).triggers[0].action)
    resources = {"http": HttpSessions(lookup=lookup)}
    try:
        return await action.execute(action.render({"payload": {}}), resources)
    finally:
        await resources["http"].close()


def forbidden(outcome: Outcome) -> str:
    assert outcome.failure is not None
    assert (outcome.failure.code, outcome.failure.category) == ("target_forbidden", "permanent"), outcome.failure
    return outcome.failure.message


LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "2130706433",
    "0177.0.0.1",
    "0x7f000001",
    "127.1",
    "x@127.0.0.1",
    "user:pw@127.0.0.1",
    "[::ffff:127.0.0.1]",
    "localhost",  # a name: the real system resolver answers 127.0.0.1 (and maybe ::1), the guard refuses
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_every_spelling_of_loopback_is_refused_and_never_reached(host: str) -> None:
    async def scenario() -> None:
        async with loopback_server() as (port, received):
            outcome = await attempt(f"http://{host}:{port}/admin")
            forbidden(outcome)
            assert received == []
            # The same server is reachable when the action allows it: the refusal above was the guard.
            allowed = await attempt(f"http://127.0.0.1:{port}/ok", allow=["127.0.0.1"])
            assert allowed.ok
            assert received == ["/ok"]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (["127.0.0.1"], "loopback"),
        (["169.254.169.254"], "link-local"),
        (["10.0.0.5"], "private"),
        (["100.64.1.1"], "carrier-grade NAT"),
        (["::ffff:127.0.0.1"], "IPv6 form of 127.0.0.1"),
        (["93.184.216.34", "127.0.0.1"], "loopback"),  # one bad address refuses the name
    ],
)
def test_a_name_resolving_inside_is_refused_whatever_it_is_called(answer: list[str], words: str) -> None:
    async def scenario() -> None:
        async with loopback_server() as (port, received):
            lookup = TableResolver({"innocent.example": answer})
            message = forbidden(await attempt(f"http://innocent.example:{port}/", lookup))
            assert words in message
            assert "innocent.example" in message
            assert received == []

    asyncio.run(scenario())


def test_the_connection_goes_to_the_checked_address_with_no_second_lookup() -> None:
    """DNS rebinding: the name answers an allowed address, then would answer another; only one lookup happens."""

    async def scenario() -> None:
        async with loopback_server() as (port, received):
            lookup = TableResolver({"rebind.example": [["127.0.0.1"], ["169.254.169.254"], ["10.0.0.1"]]})
            outcome = await attempt(f"http://rebind.example:{port}/x", lookup, allow=["127.0.0.1/32"])
            assert outcome.ok, outcome.failure
            assert lookup.lookups == ["rebind.example"]
            assert received == ["/x"]

    asyncio.run(scenario())


def test_a_rebound_answer_is_judged_again() -> None:
    async def scenario() -> None:
        lookup = TableResolver({"rebind.example": [["169.254.169.254"]]})
        forbidden(await attempt("http://rebind.example:80/latest/meta-data/", lookup))

    asyncio.run(scenario())


def test_allow_by_host_name_opens_that_name_only() -> None:
    async def scenario() -> None:
        async with loopback_server() as (port, received):
            lookup = TableResolver({"sink.internal": ["127.0.0.1"], "other.internal": ["127.0.0.1"]})
            assert (await attempt(f"http://sink.internal:{port}/a", lookup, allow=["sink.internal"])).ok
            forbidden(await attempt(f"http://other.internal:{port}/b", lookup, allow=["sink.internal"]))
            assert received == ["/a"]

    asyncio.run(scenario())


def test_allow_private_opens_private_targets() -> None:
    async def scenario() -> None:
        async with loopback_server() as (port, received):
            lookup = TableResolver({"anything.internal": ["127.0.0.1"]})
            assert (await attempt(f"http://anything.internal:{port}/p", lookup, allow_private=True)).ok
            assert received == ["/p"]

    asyncio.run(scenario())


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/", "gopher://127.0.0.1:70/", "ws://x/"])
def test_other_schemes_are_refused_even_when_private_is_allowed(url: str) -> None:
    message = forbidden(asyncio.run(attempt(url, allow_private=True)))
    assert "only http and https" in message


def test_redirects_are_not_followed() -> None:
    async def scenario() -> None:
        async with loopback_server() as (port, received):
            outcome = await attempt(f"http://127.0.0.1:{port}/redirect", allow=["127.0.0.1"])
            assert outcome.failure is not None
            assert outcome.failure.code == "http_302"
            assert received == ["/redirect"]

    asyncio.run(scenario())


def test_the_refusal_has_a_hint() -> None:
    hint = hint_for("target_forbidden")
    assert "allow_private" in hint.advice
    assert hint.remedy == "fix_config"


CONFIG = """
triggers:
  - name: internal
    action: {{kind: http, url: "http://127.0.0.1:{port}/internal"}}
    retry: {{max_attempts: 5}}
  - name: metadata
    action: {{kind: http, url: "http://169.254.169.254/latest/meta-data/{{{{ payload.path }}}}"}}
"""


def test_the_worker_fails_a_refused_target_permanently_on_the_first_attempt(db_url: str) -> None:
    async def server() -> None:
        async with loopback_server() as (port, received):
            ports.append(port)
            await asyncio.to_thread(done.wait)
            hits.extend(received)

    ports: list[int] = []
    hits: list[str] = []
    done = threading.Event()
    thread = threading.Thread(target=lambda: asyncio.run(server()), daemon=True)
    thread.start()
    wait_until(lambda: ports, what="the loopback server")
    try:
        with run_service(db_url, CONFIG.format(port=ports[0])) as service:
            for trigger in ("internal", "metadata"):
                response = httpx2.post(f"{service.url}/hooks/{trigger}", json={"path": "iam"}, timeout=10)
                assert response.status_code == 202
            wait_until(
                lambda: scalar(db_url, "SELECT count(*) FROM executions WHERE status = 'failed'") == 2,
                what="both executions to fail",
            )
            codes = scalar(db_url, "SELECT count(*) FROM attempts WHERE error_code = 'target_forbidden'")
            assert codes == 2
            assert scalar(db_url, "SELECT max(attempts) FROM executions") == 1
            groups = httpx2.get(f"{service.url}/api/v1/error-groups", headers=service.auth("viewer"), timeout=10)
            hints = [group["hint"] for group in groups.json()["items"]]
            assert hints
            assert all("allow_private" in str(hint) for hint in hints)
    finally:
        done.set()
        thread.join(timeout=10)
    assert hits == []
