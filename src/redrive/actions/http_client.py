"""The http action's client: HTTP/1.1 over asyncio, answers parsed by httptools, connections kept alive per target.

Every http attempt goes through here, so its cost is paid per event. aiohttp, which redrive keeps for everything else
that speaks HTTP (alerts, plugins' sessions), spent about 47 us of CPU on each of the action's requests in
``benchmarks/outbound_client.py``; the action's whole call through this client spends about 20, a bare keep-alive
exchange over the same parser 11. End to end (``peers.py``), one process's CPU per event fell by about a sixth. This
client does what an attempt needs:

- the target's name is resolved through the action's :class:`~redrive.actions.http.GuardedResolver` (answers kept
  60 s, as aiohttp's connector kept them) and the connection goes to the addresses it judged; an IP literal was
  judged before the request (``egress.refusal``) and is connected to as judged, with no lookup;
- one request at a time per connection, idle connections reused for 15 s per (scheme, host, port), at most
  ``limit`` connections in use at once;
- TLS with the default trust store and the host name checked; credentials in the URL become Basic authorization;
- the answer's status, reason and headers, and at most ``cap`` bytes of its body: a longer body is not read further
  (its connection is closed), nor is the body of an answer to ``HEAD``;
- a connect timeout per address tried (the caller bounds the whole exchange).

What it never does: follow redirects, use proxies, cookies or compression (it asks for none), send HTTP/2.

Errors, each an ``OSError`` or a ``ValueError`` as the action's ``except`` expects (``http_failures`` classifies)::

    OSError
    ├── DnsFailure           the name did not resolve (the guard's TargetForbidden passes through as it is)
    ├── ConnectFailed        no address took the connection (``os_error`` says why)
    ├── ConnectionError
    │   └── Disconnected     the target closed the connection before its answer was whole
    ├── MalformedAnswer      the answer is not HTTP/1.x
    └── TimeoutError
        └── ConnectTimeout   no address answered within the connect timeout
    ValueError
    └── InvalidTarget        the URL has no host, or its scheme is not http or https
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import httptools
from aiohttp.abc import AbstractResolver
from yarl import URL

from redrive.actions.egress import TargetForbidden, literal_address

DNS_TTL = 60.0  # seconds an answer of the resolver is used for
KEEP_ALIVE = 15.0  # seconds an idle connection is kept for reuse
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # an empty body is sent as Content-Length: 0


class DnsFailure(OSError):
    """The target's name did not resolve."""

    def __init__(self, host: str) -> None:
        super().__init__(f"DNS lookup failed for {host}")
        self.host = host


class ConnectFailed(OSError):
    """No address of the target took the connection; ``os_error`` is the last address's error."""

    def __init__(self, host: str, port: int, os_error: OSError) -> None:
        super().__init__(os_error.errno, os_error.strerror or type(os_error).__name__)
        self.host, self.port, self.os_error = host, port, os_error


class ConnectTimeout(TimeoutError):
    """No address of the target answered within the connect timeout."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"Timed out connecting to {host}:{port}")
        self.host, self.port = host, port


class Disconnected(ConnectionError):
    """The target closed the connection before its answer was whole."""


class MalformedAnswer(OSError):
    """The target's answer is not HTTP/1.x."""


class InvalidTarget(ValueError):
    """The URL cannot be requested: no host, or a scheme other than http and https."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A target's answer: ``body`` holds at most the request's ``cap`` bytes."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


class _Connection(asyncio.Protocol):
    """One connection: a request written, its answer parsed as it arrives (``exchange``)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.reusable = True
        self._answer: asyncio.Future[Answer] | None = None
        self._reason = ""
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._cap = 0
        self._head = False  # the request was HEAD: its answer has no body, whatever its headers say
        self._complete_headers = False

    def exchange(self, request: bytes, cap: int, *, head: bool) -> asyncio.Future[Answer]:
        """Write ``request``; the future is its answer."""
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._reason, self._headers, self._body, self._size = "", [], [], 0
        self._cap, self._head, self._complete_headers = cap, head, False
        self.transport.write(request)
        return self._answer

    def usable(self) -> bool:
        """Whether another request may go on this connection (nothing has ended it, from either side)."""
        transport = self.transport
        return self.reusable and not self.closed and transport is not None and not transport.is_closing()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    # asyncio's protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not derive from asyncio's

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self.close()  # nothing was asked: the stream can no longer be trusted
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(MalformedAnswer(f"the answer is not HTTP/1.x: {exc}"))

    def eof_received(self) -> None:
        self.reusable = False  # the target is done with the connection (it closes once this returns)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._answer is not None and not self._answer.done():
            if self._complete_headers and self._delimited_by_close():
                self._finish()
            else:
                self._fail(Disconnected("the target closed the connection before its answer was whole"))

    # httptools' callbacks

    def on_status(self, status: bytes) -> None:
        self._reason += status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._complete_headers = True
        status = self.parser.get_status_code()
        if self._head and not 100 <= status < 200:
            self.reusable = False  # the parser would wait for the body the headers announce
            self._finish()

    def on_body(self, body: bytes) -> None:
        if self._answer is None or self._answer.done():
            return
        room = self._cap - self._size
        if len(body) > room:  # longer than the cap: answered now, the rest is not read and the connection goes
            self._body.append(body[:room])
            self._size = self._cap
            self.reusable = False
            self._finish()
            return
        self._body.append(body)
        self._size += len(body)

    def on_message_complete(self) -> None:
        if self._answer is None or self._answer.done():
            return
        if 100 <= self.parser.get_status_code() < 200:  # an interim answer: the real one follows
            self._reason, self._headers, self._complete_headers = "", [], False
            return
        if not self.parser.should_keep_alive():
            self.reusable = False
        self._finish()

    def _delimited_by_close(self) -> bool:
        names = {name.lower() for name, _ in self._headers}
        return "content-length" not in names and "transfer-encoding" not in names

    def _finish(self) -> None:
        if self._answer is not None and not self._answer.done():
            status = self.parser.get_status_code()
            self._answer.set_result(Answer(status, self._reason, self._headers, b"".join(self._body)))

    def _fail(self, error: OSError) -> None:
        self.close()
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)


_Key = tuple[str, str, int]  # scheme, host, port


class HttpClient:
    """Connections to the targets one :class:`~redrive.egress.TargetPolicy` permits, reused; one per policy."""

    def __init__(
        self,
        resolver: AbstractResolver,
        *,
        limit: int = 100,
        user_agent: str = "redrive",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: the context of https connections (default: the system's trust store, host names checked)."""
        self._resolver = resolver
        self._slots = asyncio.Semaphore(limit)
        self._user_agent = user_agent
        self._idle: dict[_Key, list[_Connection]] = {}
        self._addresses: dict[tuple[str, int], tuple[float, list[tuple[str, int]]]] = {}
        self._tls = tls

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        connect_timeout: float,
        cap: int,
    ) -> Answer:
        """Send one request and return its answer (at most ``cap`` bytes of its body). The caller bounds the whole
        exchange (``asyncio.timeout``); a connection it leaves unfinished is closed, never reused."""
        target = _target(url)
        request = self._encode(method, target, headers, body)
        key = (target.scheme, target.raw_host or "", target.port or 0)
        async with self._slots:
            connection = await self._connection(key, connect_timeout)
            try:
                answer = await connection.exchange(request, cap, head=method == "HEAD")
            except BaseException:
                connection.close()
                raise
            self._release(key, connection)
            return answer

    async def close(self) -> None:
        """Close every idle connection (the resolver is its owner's to close)."""
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _encode(self, method: str, target: URL, headers: Mapping[str, str], body: bytes | None) -> bytes:
        named = {name.lower() for name in headers}
        lines = [f"{method} {target.raw_path_qs or '/'} HTTP/1.1"]
        if "host" not in named:
            lines.append(f"Host: {target.host_port_subcomponent}")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if "user-agent" not in named:
            lines.append(f"User-Agent: {self._user_agent}")
        if "accept" not in named:
            lines.append("Accept: */*")
        if target.user is not None and "authorization" not in named:
            credentials = f"{target.user}:{target.password or ''}".encode("latin-1")
            lines.append(f"Authorization: Basic {base64.b64encode(credentials).decode()}")
        if body or method in _BODY_METHODS:
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        return head + body if body else head

    async def _connection(self, key: _Key, connect_timeout: float) -> _Connection:
        idle = self._idle.get(key)
        now = asyncio.get_running_loop().time()
        while idle:
            connection = idle.pop()
            if connection.usable() and now - connection.idle_since < KEEP_ALIVE:
                return connection
            connection.close()
        return await self._connect(key, connect_timeout)

    def _release(self, key: _Key, connection: _Connection) -> None:
        if not connection.usable():
            connection.close()
            return
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(key, []).append(connection)

    async def _connect(self, key: _Key, connect_timeout: float) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if scheme == "https" else None
        last: OSError | None = None
        for address, family in await self._resolve(host, port):
            try:
                async with asyncio.timeout(connect_timeout):
                    _, connection = await loop.create_connection(
                        _Connection, address, port, family=family, ssl=tls, server_hostname=host if tls else None
                    )
                return connection
            except ssl.SSLError:
                raise  # the address answered: the certificate or the handshake is what failed
            except TimeoutError:
                last = ConnectTimeout(host, port)
            except OSError as exc:
                last = ConnectFailed(host, port, exc)
        raise last if last is not None else DnsFailure(host)

    async def _resolve(self, host: str, port: int) -> list[tuple[str, int]]:
        """The addresses to try for ``host`` (and their families): the guard's answer, or the address an IP literal
        names, read as ``egress.refusal`` read it when it judged it (legacy spellings such as ``127.1`` included;
        an IPv6 scope id is dropped)."""
        literal = literal_address(host)
        if literal is not None:
            return [(str(literal), socket.AF_INET6 if literal.version == 6 else socket.AF_INET)]
        now = asyncio.get_running_loop().time()
        kept = self._addresses.get((host, port))
        if kept is not None and kept[0] > now:
            return kept[1]
        try:
            results = await self._resolver.resolve(host, port, family=socket.AF_UNSPEC)
        except TargetForbidden:
            raise
        except OSError as exc:
            raise DnsFailure(host) from exc
        addresses = [(result["host"], result["family"]) for result in results]
        if not addresses:
            raise DnsFailure(host)
        self._addresses[(host, port)] = (now + DNS_TTL, addresses)
        return addresses

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls


def _target(url: str) -> URL:
    try:
        target = URL(url)
    except (ValueError, TypeError) as exc:
        raise InvalidTarget(f"the URL cannot be parsed: {exc}") from exc
    if target.scheme not in ("http", "https") or not target.raw_host:
        raise InvalidTarget("the URL must be http or https and name a host")
    return target


def header_value(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (any case), or None."""
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), None)
