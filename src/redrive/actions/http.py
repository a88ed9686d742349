"""The HTTP action: one request per attempt, sent through the worker's shared aiohttp session.

Redirects are never followed (a 3xx is a failure), at most ``EXCERPT_BYTES`` of the response body are read
back, and every client error becomes a classified ``Failure``. Which addresses may be reached is the session's
concern, not this module's: ``new_http_session(resolver=...)`` is the seam where the SSRF guard (an aiohttp
resolver that refuses non-global addresses) plugs in, so the connection goes to the very address that was
checked.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver

from redrive.actions.base import EXCERPT_BYTES, Outcome, Resources, decode
from redrive.classify import classify_exception, classify_http_status, permanent
from redrive.config import HttpAction
from redrive.templating import render_tree

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token: methods and header names
_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")
# What aiohttp raises for a request that went wrong; ValueError covers values it refuses to put on the wire.
_REQUEST_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError)


def new_http_session(*, resolver: AbstractResolver | None = None, limit: int = 100) -> aiohttp.ClientSession:
    """Build the shared session a worker hands its actions; call it inside the running event loop.

    ``resolver`` is where the SSRF guard goes; ``limit`` caps open connections. Cookies are never kept (one
    session serves every trigger) and proxy settings are not read from the environment.
    """
    try:
        agent = f"redrive/{version('redrive')}"
    except PackageNotFoundError:
        agent = "redrive"
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=resolver, limit=limit, ttl_dns_cache=60),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        headers={"User-Agent": agent},
        json_serialize=_json_text,
    )


def _json_text(value: Any) -> str:
    # ``json`` bodies are encoded with orjson, like everything else redrive writes: the standard library's encoder
    # was a visible part of each attempt's cost. What orjson refuses (integers past 64 bits) json still writes.
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


class HttpRequester:
    """Sends one HTTP request per attempt; success is a 2xx status."""

    kind: ClassVar[str] = "http"
    __slots__ = ("_config", "_timeout")

    def __init__(self, config: HttpAction) -> None:
        self._config = config
        self._timeout = aiohttp.ClientTimeout(total=config.timeout, sock_connect=config.connect_timeout)

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Render method, URL, headers and body; the method is upper-cased."""
        config = self._config
        rendered: dict[str, Any] = {
            "method": config.method.render(context).upper(),
            "url": config.url.render(context),
            "headers": {name: value.render(context) for name, value in config.headers.items()},
            "timeout": config.timeout,
            "connect_timeout": config.connect_timeout,
        }
        if config.json_body is not None:
            rendered["json"] = render_tree(config.json_body, context)
        elif config.body is not None:
            rendered["body"] = config.body.render(context)
        return rendered

    async def execute(self, rendered: Mapping[str, Any], resources: Resources) -> Outcome:
        """Send the request and classify the response (or the error that stopped it)."""
        method: str = rendered["method"]
        headers: dict[str, str] = rendered["headers"]
        refusal = _refuse_unsafe(method, headers)
        if refusal is not None:
            return refusal
        try:
            async with resources.http.request(
                method,
                rendered["url"],
                headers=headers,
                json=rendered.get("json"),
                data=rendered.get("body"),
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                body = await _read_capped(response.content, EXCERPT_BYTES)
        except _REQUEST_ERRORS as exc:
            return Outcome(classify_exception(exc), {})
        status = response.status
        reason = response.reason or ""
        detail = {"status": status, "reason": reason, "headers": _plain_headers(response.headers)}
        failure = None
        if not 200 <= status <= 299:
            failure = classify_http_status(
                status, reason=reason, retry_after=response.headers.get("Retry-After"), now=datetime.now(UTC)
            )
        return Outcome(failure, detail, decode(body) if body else None)


def _refuse_unsafe(method: str, headers: Mapping[str, str]) -> Outcome | None:
    # Rendered values may carry payload data: refuse what would change the request's framing.
    if not _TOKEN.fullmatch(method):
        return Outcome(permanent("invalid_method", f"{method[:40]!r} is not a valid HTTP method"), {})
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or _UNSAFE_VALUE.search(value):
            message = f"header {name[:40]!r} has a name or value that cannot be sent (line break or NUL)"
            return Outcome(permanent("invalid_header", message), {})
    return None


def _plain_headers(headers: Mapping[str, str]) -> dict[str, str]:
    # Plain str keys (aiohttp's are istr, which strict JSON encoders refuse); repeated fields joined per RFC 9110.
    plain: dict[str, str] = {}
    for name, value in headers.items():
        key = str(name)
        plain[key] = f"{plain[key]}, {value}" if key in plain else value
    return plain


async def _read_capped(stream: aiohttp.StreamReader, cap: int) -> bytes:
    # read(n) returns what has arrived, up to n; loop until the cap or the end, never further.
    chunks: list[bytes] = []
    remaining = cap
    while remaining > 0:
        chunk = await stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
