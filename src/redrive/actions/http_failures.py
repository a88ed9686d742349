"""How the HTTP clients' exceptions fail an attempt: the http action's client's and aiohttp's errors mapped to
transient or permanent codes.

The ``http`` action kind's ``classify`` (``ActionKind.classify``); exceptions of any other origin fall through to
:func:`redrive.failures.classify.classify_raised`.
"""

from __future__ import annotations

import socket
import ssl

import aiohttp

from redrive.actions import http_client
from redrive.failures.classify import Failure, clip, permanent, transient


def _conn_error(exc: aiohttp.ClientConnectorError) -> Failure:
    return _refused(exc.os_error, exc.host, exc.port)


def _refused(os_error: OSError, host: str, port: int | None) -> Failure:
    """A connection to ``host:port`` that failed with ``os_error``."""
    where = f"{host}:{port}"
    if isinstance(os_error, socket.gaierror):
        return transient("dns_failure", f"DNS lookup failed for {host}")
    if isinstance(os_error, TimeoutError):
        return transient("connect_timeout", f"Timed out connecting to {where}")
    if isinstance(os_error, ConnectionRefusedError):
        return transient("connection_refused", f"Connection refused by {where}")
    detail = os_error.strerror or type(os_error).__name__
    return transient("connect_error", clip(f"Could not connect to {where}: {detail}"))


def _client_error(exc: BaseException) -> Failure | None:
    """The http action's own client (``http_client``); None: not one of its errors."""
    if isinstance(exc, http_client.DnsFailure):
        return transient("dns_failure", f"DNS lookup failed for {exc.host}")
    if isinstance(exc, http_client.ConnectTimeout):
        return transient("connect_timeout", f"Timed out connecting to {exc.host}:{exc.port}")
    if isinstance(exc, http_client.ConnectFailed):
        return _refused(exc.os_error, exc.host, exc.port)
    if isinstance(exc, http_client.Disconnected):
        return transient("connection_error", "The target closed the connection before responding")
    if isinstance(exc, http_client.MalformedAnswer):
        return transient("connection_error", "The response from the target was truncated or malformed")
    if isinstance(exc, http_client.InvalidTarget):
        return permanent("invalid_url", "The target URL is invalid or not an http(s) URL")
    return None


def classify_http_exception(exc: BaseException) -> Failure | None:
    """Classify an exception raised by an outbound HTTP request (the http action's client or aiohttp); None: not
    an HTTP client's."""
    if isinstance(exc, ssl.SSLError):  # before the client's own: an OSError too
        return transient("tls_error", "TLS handshake or certificate verification with the target failed")
    mine = _client_error(exc)
    if mine is not None:
        return mine
    # Order matters: aiohttp's TLS errors are ClientConnectorErrors and its timeouts are TimeoutErrors
    # (hence OSErrors), so subclasses are checked before their bases.
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return transient("dns_failure", f"DNS lookup failed for {exc.host}")
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError | aiohttp.ServerFingerprintMismatch):
        return transient("tls_error", "TLS handshake or certificate verification with the target failed")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return transient("connect_timeout", "Timed out connecting to the target")
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError, SocketTimeoutError, ServerTimeoutError
        return transient("timeout", "The request to the target timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _conn_error(exc)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return transient("connection_error", "The target closed the connection before responding")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return transient("connection_error", "The response body from the target was truncated or malformed")
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.UploadAbortedError):
        return transient("connection_error", clip(f"Connection to the target failed: {type(exc).__name__}"))
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return permanent("invalid_url", "The target URL is invalid or not an http(s) URL")
    return None
