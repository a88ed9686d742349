"""The http action's client (``redrive.actions.http_client``) against real servers on 127.0.0.1.

Wire-level cases use a raw ``asyncio.start_server`` server that reads each request and writes exactly the bytes the
test gives it, so the test controls the answer's framing and counts the connections the client opened. Names resolve
through the action's real :class:`GuardedResolver` over a table resolver (a real ``AbstractResolver``, no patching).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from redrive.actions.egress import TargetForbidden, TargetPolicy
from redrive.actions.http import GuardedResolver
from redrive.actions.http_client import (
    Answer,
    ConnectFailed,
    ConnectTimeout,
    Disconnected,
    DnsFailure,
    HttpClient,
    InvalidTarget,
    MalformedAnswer,
)
from redrive.actions.http_failures import classify_http_exception
from resolvers import TableResolver

LIMIT = 5.0  # seconds any await of a test may take
CAP = 4096
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

# What the server does with one request: the bytes to write, then whether to close the connection.
Respond = Callable[[bytes], Awaitable[tuple[bytes, bool]]]


def answer(data: bytes, *, close: bool = False) -> Respond:
    async def respond(request: bytes) -> tuple[bytes, bool]:
        return data, close

    return respond


def by_path(answers: dict[str, bytes], default: bytes = OK) -> Respond:
    """Answer by the request's path (an empty answer: write nothing and wait for the next request)."""

    async def respond(request: bytes) -> tuple[bytes, bool]:
        path = request.split(b" ", 2)[1].decode()
        return answers.get(path, default), False

    return respond


@dataclass
class RawServer:
    port: int = 0
    accepted: int = 0  # connections accepted
    requests: list[bytes] = field(default_factory=list)  # each request's bytes, head and body
    peer_closed: asyncio.Event = field(default_factory=asyncio.Event)  # the client closed a connection

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request's bytes (its body as long as its Content-Length), or None at the end of the stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return head + await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None


@asynccontextmanager
async def raw_server(respond: Respond) -> AsyncIterator[RawServer]:
    server = RawServer()
    handlers: dict[asyncio.Task[object], asyncio.StreamWriter] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers[task] = writer
        server.accepted += 1
        try:
            while (request := await read_request(reader)) is not None:
                server.requests.append(request)
                data, close = await respond(request)
                writer.write(data)
                await writer.drain()
                if close:
                    return
            server.peer_closed.set()
        except ConnectionError:
            server.peer_closed.set()  # closed with bytes unread: a reset
        finally:
            writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for writer in handlers.values():
            writer.close()  # its handler reads the end of the stream and returns
        if handlers:
            _, stuck = await asyncio.wait(handlers, timeout=LIMIT)
            for task in stuck:
                task.cancel()
        await listener.wait_closed()


@asynccontextmanager
async def open_client(
    table: dict[str, list[str]] | None = None, *, policy: TargetPolicy | None = None, limit: int = 100
) -> AsyncIterator[tuple[HttpClient, TableResolver]]:
    """A client resolving through the guard over ``table``; loopback is permitted unless ``policy`` says."""
    lookup = TableResolver(table or {})
    resolver = GuardedResolver(policy or TargetPolicy.build(True, []), lookup)
    client = HttpClient(resolver, limit=limit, user_agent="redrive-test")
    try:
        yield client, lookup
    finally:
        await client.close()
        await resolver.close()


async def fetch(
    client: HttpClient, url: str, method: str = "GET", body: bytes | None = None, *, cap: int = CAP
) -> Answer:
    request = client.request(method, url, {}, body, connect_timeout=LIMIT, cap=cap)
    return await asyncio.wait_for(request, LIMIT)


def parse(request: bytes) -> tuple[str, dict[str, str], bytes]:
    """The request line, the headers (names lower case; a repeated name fails) and the body."""
    head, _, body = request.partition(b"\r\n\r\n")
    line, *fields = head.decode("latin-1").split("\r\n")
    pairs = [(name.strip().lower(), value.strip()) for name, _, value in (f.partition(":") for f in fields)]
    headers = dict(pairs)
    assert len(headers) == len(pairs), f"a header is repeated: {pairs}"
    return line, headers, body


def test_request_line_headers_and_body_on_the_wire() -> None:
    async def scenario() -> None:
        async with raw_server(answer(OK)) as server, open_client() as (client, _):
            url = server.url("/a b/c?q=x y&r=1#frag")
            custom = {"X-Order": "o-1", "Content-Type": "text/plain"}
            request = client.request("POST", url, custom, b"hello", connect_timeout=LIMIT, cap=CAP)
            sent = await asyncio.wait_for(request, LIMIT)
        assert sent.status == 200
        line, headers, body = parse(server.requests[0])
        assert line == "POST /a%20b/c?q=x+y&r=1 HTTP/1.1"  # as yarl encodes them; the fragment is not sent
        assert headers == {
            "host": f"127.0.0.1:{server.port}",
            "x-order": "o-1",
            "content-type": "text/plain",
            "user-agent": "redrive-test",
            "accept": "*/*",
            "content-length": "5",
        }
        assert body == b"hello"

    asyncio.run(scenario())


@pytest.mark.parametrize(("method", "length"), [("POST", "0"), ("GET", None)])
def test_request_without_body_sends_content_length_zero_only_for_post(method: str, length: str | None) -> None:
    async def scenario() -> None:
        async with raw_server(answer(OK)) as server, open_client() as (client, _):
            await fetch(client, server.url("/hook"), method)
        line, headers, body = parse(server.requests[0])
        assert (line, headers.get("content-length"), body) == (f"{method} /hook HTTP/1.1", length, b"")

    asyncio.run(scenario())


def test_url_credentials_become_basic_authorization() -> None:
    async def scenario() -> None:
        async with raw_server(answer(OK)) as server, open_client() as (client, _):
            await fetch(client, f"http://user:pw@127.0.0.1:{server.port}/secret")
        line, headers, _ = parse(server.requests[0])
        assert line == "GET /secret HTTP/1.1"
        assert headers["authorization"] == "Basic dXNlcjpwdw=="
        assert headers["host"] == f"127.0.0.1:{server.port}"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("reply", "cap", "status", "body"),
    [(OK, CAP, 200, b"ok"), (b"HTTP/1.1 204 No Content\r\n\r\n", CAP, 204, b""), (OK, 2, 200, b"ok")],
    ids=["keep-alive", "204-without-body", "body-of-exactly-cap"],
)
def test_answer_read_whole_leaves_its_connection_reused(reply: bytes, cap: int, status: int, body: bytes) -> None:
    async def scenario() -> None:
        async with raw_server(answer(reply)) as server, open_client() as (client, _):
            first = await fetch(client, server.url("/1"), cap=cap)
            second = await fetch(client, server.url("/2"), cap=cap)
        assert (first.status, first.body, second.status, second.body) == (status, body, status, body)
        assert (server.accepted, len(server.requests)) == (1, 2)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["connection-close", "http-1.0"],
)
def test_answer_that_ends_the_connection_is_not_reused(reply: bytes) -> None:
    # The server keeps the connection open: only the client's reading of the answer can keep it from reuse.
    async def scenario() -> None:
        async with raw_server(answer(reply)) as server, open_client() as (client, _):
            first = await fetch(client, server.url("/1"))
            second = await fetch(client, server.url("/2"))
        assert (first.body, second.body) == (b"ok", b"ok")
        assert server.accepted == 2

    asyncio.run(scenario())


def test_chunked_body_is_returned_joined() -> None:
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"

    async def scenario() -> None:
        async with raw_server(answer(reply)) as server, open_client() as (client, _):
            got = await fetch(client, server.url())
        assert (got.status, got.body) == (200, b"hello world")

    asyncio.run(scenario())


def test_body_delimited_by_close_is_returned_whole() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nthe whole body"

    async def scenario() -> None:
        async with raw_server(answer(reply, close=True)) as server, open_client() as (client, _):
            got = await fetch(client, server.url())
        assert (got.status, got.reason, got.body) == (200, "OK", b"the whole body")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "reply", [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it", b""], ids=["mid-body", "no-answer"]
)
def test_connection_closed_before_answer_is_whole_raises_disconnected(reply: bytes) -> None:
    async def scenario() -> None:
        async with raw_server(answer(reply, close=True)) as server, open_client() as (client, _):
            with pytest.raises(Disconnected):
                await fetch(client, server.url())
        assert len(server.requests) == 1

    asyncio.run(scenario())


def test_garbage_instead_of_status_line_raises_malformed_answer() -> None:
    async def scenario() -> None:
        async with raw_server(answer(b"garbage, not HTTP\r\n\r\n")) as server, open_client() as (client, _):
            with pytest.raises(MalformedAnswer):
                await fetch(client, server.url())

    asyncio.run(scenario())


def test_interim_100_continue_is_skipped_for_the_final_answer() -> None:
    interim = b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"

    async def scenario() -> None:
        async with raw_server(answer(interim + OK)) as server, open_client() as (client, _):
            got = await fetch(client, server.url(), "POST", b"payload")
        assert (got.status, got.reason, got.headers, got.body) == (200, "OK", [("Content-Length", "2")], b"ok")

    asyncio.run(scenario())


def test_body_longer_than_cap_is_cut_and_its_connection_not_reused() -> None:
    # A megabyte arrives over several reads, so the client sees body beyond the cap and stops reading.
    body = bytes(range(256)) * 4096
    big = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async def scenario() -> None:
        async with raw_server(by_path({"/big": big})) as server, open_client() as (client, _):
            cut = await fetch(client, server.url("/big"), cap=10)
            after = await fetch(client, server.url("/after"), cap=10)
        assert (cut.status, cut.body, after.body) == (200, body[:10], b"ok")
        assert server.accepted == 2

    asyncio.run(scenario())


def test_body_longer_than_cap_returns_once_more_than_cap_bytes_are_in() -> None:
    # 20 bytes of a 100-byte body, then the target stalls: the cap's 10 bytes are in hand and the rest is not wanted.
    partial = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"0123456789abcdefghij"

    async def scenario() -> None:
        async with raw_server(answer(partial)) as server, open_client() as (client, _):
            cut = await fetch(client, server.url(), cap=10)
            await asyncio.wait_for(server.peer_closed.wait(), LIMIT)  # not read further: its connection is closed
        assert (cut.status, cut.body) == (200, b"0123456789")

    asyncio.run(scenario())


def test_head_answer_returns_at_once_and_connection_not_reused() -> None:
    # The headers announce 100 bytes that never come, as an answer to HEAD may.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"

    async def scenario() -> None:
        async with raw_server(by_path({"/head": head})) as server, open_client() as (client, _):
            got = await fetch(client, server.url("/head"), "HEAD")
            await asyncio.wait_for(server.peer_closed.wait(), LIMIT)
            after = await fetch(client, server.url("/after"))
        assert (got.status, got.headers, got.body) == (200, [("Content-Length", "100")], b"")
        assert after.body == b"ok"
        assert server.accepted == 2

    asyncio.run(scenario())


def test_connection_refused_raises_connect_failed() -> None:
    async def scenario() -> None:
        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        async with open_client() as (client, _):
            with pytest.raises(ConnectFailed) as raised:
                await fetch(client, f"http://127.0.0.1:{port}/")
        assert isinstance(raised.value.os_error, ConnectionRefusedError)
        assert (raised.value.host, raised.value.port) == ("127.0.0.1", port)

    asyncio.run(scenario())


def test_name_that_does_not_resolve_raises_dns_failure() -> None:
    async def scenario() -> None:
        async with open_client({}) as (client, lookup):
            with pytest.raises(DnsFailure) as raised:
                await fetch(client, "http://nowhere.test/")
        assert raised.value.host == "nowhere.test"
        assert lookup.lookups == ["nowhere.test"]

    asyncio.run(scenario())


def test_name_resolving_to_forbidden_address_raises_target_forbidden() -> None:
    async def scenario() -> None:
        async with (
            raw_server(answer(OK)) as server,
            open_client({"inside.test": ["127.0.0.1"]}, policy=TargetPolicy()) as (client, _),
        ):
            with pytest.raises(TargetForbidden):
                await fetch(client, f"http://inside.test:{server.port}/")
        assert (server.accepted, server.requests) == (0, [])

    asyncio.run(scenario())


@pytest.mark.parametrize("url", ["ftp://x/", "http:///nohost"])
def test_url_that_cannot_be_requested_raises_invalid_target(url: str) -> None:
    async def scenario() -> None:
        async with open_client() as (client, lookup):
            with pytest.raises(InvalidTarget):
                await fetch(client, url)
        assert lookup.lookups == []

    asyncio.run(scenario())


def test_dns_answer_is_cached_across_connections() -> None:
    # Connection: close makes the second request open a new connection, so it needs the address again.
    reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

    async def scenario() -> None:
        async with raw_server(answer(reply)) as server, open_client({"svc.test": ["127.0.0.1"]}) as (client, lookup):
            await fetch(client, f"http://svc.test:{server.port}/1")
            await fetch(client, f"http://svc.test:{server.port}/2")
        assert server.accepted == 2
        assert lookup.lookups == ["svc.test"]
        assert parse(server.requests[0])[1]["host"] == f"svc.test:{server.port}"

    asyncio.run(scenario())


def test_a_legacy_ip_spelling_is_connected_to_as_judged_without_a_lookup() -> None:
    # egress.refusal judged 127.1 as 127.0.0.1; the client connects there rather than asking a resolver about it.
    async def scenario() -> None:
        async with raw_server(answer(OK)) as server, open_client() as (client, lookup):
            got = await fetch(client, f"http://127.1:{server.port}/")
        assert (got.status, lookup.lookups, server.accepted) == (200, [], 1)

    asyncio.run(scenario())


def test_cancelled_request_closes_its_connection() -> None:
    async def scenario() -> None:
        async with raw_server(by_path({"/hang": b""})) as server, open_client() as (client, _):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await client.request("GET", server.url("/hang"), {}, None, connect_timeout=LIMIT, cap=CAP)
            await asyncio.wait_for(server.peer_closed.wait(), LIMIT)
            after = await fetch(client, server.url("/after"))
        assert after.body == b"ok"
        assert server.accepted == 2

    asyncio.run(scenario())


def test_limit_one_keeps_one_exchange_open_at_a_time() -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        first_in = asyncio.Event()
        open_now = peak = 0

        async def respond(request: bytes) -> tuple[bytes, bool]:
            nonlocal open_now, peak
            if request.startswith(b"GET /probe "):
                return OK, False
            open_now += 1
            peak = max(peak, open_now)
            if request.startswith(b"GET /first "):
                first_in.set()
                await release.wait()
            open_now -= 1
            return OK, False

        async with (
            raw_server(respond) as server,
            open_client(limit=1) as (client, _),
            open_client() as (probe, _),
        ):
            first = asyncio.create_task(fetch(client, server.url("/first")))
            await asyncio.wait_for(first_in.wait(), LIMIT)
            second = asyncio.create_task(fetch(client, server.url("/second")))
            # An unlimited client's request, sent after the second one, goes there and back: had the second not
            # been held back, it would have reached the server by now.
            await fetch(probe, server.url("/probe"))
            assert not second.done()
            assert [r.split(b" ")[1] for r in server.requests] == [b"/first", b"/probe"]
            release.set()
            answers = await asyncio.wait_for(asyncio.gather(first, second), LIMIT)
        assert [a.body for a in answers] == [b"ok", b"ok"]
        assert peak == 1

    asyncio.run(scenario())


REFUSED = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")


@pytest.mark.parametrize(
    ("error", "category", "code"),
    [
        (DnsFailure("svc.test"), "transient", "dns_failure"),
        (ConnectFailed("svc.test", 80, REFUSED), "transient", "connection_refused"),
        (ConnectTimeout("svc.test", 80), "transient", "connect_timeout"),
        (Disconnected("closed before the answer"), "transient", "connection_error"),
        (MalformedAnswer("not HTTP/1.x"), "transient", "connection_error"),
        (InvalidTarget("ftp"), "permanent", "invalid_url"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_client_errors_classify_to_their_codes(error: Exception, category: str, code: str) -> None:
    failure = classify_http_exception(error)
    assert failure is not None
    assert (failure.category, failure.code) == (category, code)
