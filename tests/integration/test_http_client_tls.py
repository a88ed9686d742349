"""The http action's client over TLS, against a real TLS server on 127.0.0.1 with a certificate from a test CA."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trustme

from redrive.actions.egress import TargetPolicy
from redrive.actions.http import GuardedResolver
from redrive.actions.http_client import Answer, HttpClient
from redrive.actions.http_failures import classify_http_exception
from resolvers import TableResolver

LIMIT = 5.0  # seconds any await of a test may take


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@asynccontextmanager
async def tls_server(ca: trustme.CA, name: str) -> AsyncIterator[tuple[int, list[str]]]:
    """A TLS server whose certificate names ``name``; yields its port and the server names (SNI) clients sent."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    names: list[str] = []

    def sni(sock: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        names.append(server_name or "")

    context.sni_callback = sni

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # the client refused the certificate
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1], names
    finally:
        server.close()
        await server.wait_closed()


async def fetch(tls: ssl.SSLContext, url: str) -> Answer:
    """GET ``url`` with a fresh client using ``tls``, closed afterwards; both test names resolve to 127.0.0.1."""
    lookup = TableResolver({"sink.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    client = HttpClient(GuardedResolver(TargetPolicy.build(True, []), lookup), tls=tls)
    try:
        return await asyncio.wait_for(client.request("GET", url, {}, None, connect_timeout=LIMIT, cap=64), LIMIT)
    finally:
        await client.close()


def test_a_trusted_certificate_for_the_name_answers_and_the_name_is_sent(ca: trustme.CA) -> None:
    async def scenario() -> None:
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        async with tls_server(ca, "sink.test") as (port, names):
            answer = await fetch(trusting, f"https://sink.test:{port}/")
        assert (answer.status, answer.body) == (200, b"secret")
        assert names == ["sink.test"]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("trusted", "url_name"),
    [(False, "sink.test"), (True, "other.test")],
    ids=["unknown-ca", "certificate-for-another-name"],
)
def test_a_certificate_the_client_cannot_verify_is_a_tls_error(ca: trustme.CA, trusted: bool, url_name: str) -> None:
    async def scenario() -> None:
        context = ssl.create_default_context()
        if trusted:
            ca.configure_trust(context)
        async with tls_server(ca, "sink.test") as (port, _):
            with pytest.raises(ssl.SSLCertVerificationError) as raised:
                await fetch(context, f"https://{url_name}:{port}/")
        failure = classify_http_exception(raised.value)
        assert failure is not None
        assert (failure.code, failure.category) == ("tls_error", "transient")

    asyncio.run(scenario())
