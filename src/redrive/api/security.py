"""The HTTP edge outside the routes: security headers, CORS only for allowed origins, a body cap for the API.

CORS is closed unless ``REDRIVE_CORS_ORIGINS`` lists origins: without it no ``Access-Control-*`` header is ever
sent, so no other site's script can read an answer (and a token never leaves its own origin). The headers
keep answers from being sniffed into another type, framed, leaking their URL as a referrer, or cached.

FastAPI reads a JSON body before any dependency runs, authentication included; without a cap an anonymous client
could make the API buffer any amount. ``/hooks`` bodies are capped per trigger by their route instead.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from redrive.errors import PayloadTooLarge

API_BODY_LIMIT = 25 * 1024 * 1024 + 64 * 1024
"""Largest request body outside ``/hooks``: the largest event payload a trigger accepts, plus its envelope."""

_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
# JSON routes render nothing, so they may forbid everything; the docs and the dashboard need their scripts.
_JSON_CSP = b"default-src 'none'; frame-ancestors 'none'"
_PAGE_CSP = b"frame-ancestors 'none'"
_JSON_PREFIXES = ("/api/", "/hooks/")


HOOK_HEADERS = (*_ALWAYS, (b"content-security-policy", _JSON_CSP))
"""What every ``/hooks`` answer carries (``HooksFront`` adds them itself: it answers outside this middleware)."""


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """The security headers an answer to ``path`` carries."""
    extra = [*_ALWAYS, (b"content-security-policy", _JSON_CSP if path.startswith(_JSON_PREFIXES) else _PAGE_CSP)]
    if path.startswith("/api/"):
        extra.append((b"cache-control", b"no-store"))
    return extra


class SecurityHeaders:
    """ASGI middleware adding the security headers to every response (never replacing one a route set)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """ASGI middleware refusing request bodies over ``limit`` outside ``/hooks`` (413), chunked ones included."""

    def __init__(self, app: ASGIApp, limit: int = API_BODY_LIMIT) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/hooks/"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.limit:
                await self._too_large(send)
                return
            await self.app(scope, receive, send)  # the server holds the body to its declared length
            return
        messages: list[Message] = []
        size = 0
        while True:  # chunked or unframed: read it all here, within the cap, then hand it on
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._too_large(send)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        error = PayloadTooLarge(f"the body exceeds {self.limit} bytes")
        body = orjson.dumps({"error": {"code": error.code, "message": error.message}})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def cors_origins(setting: str) -> list[str]:
    """The origins listed in ``REDRIVE_CORS_ORIGINS`` (comma-separated); empty means CORS stays closed."""
    return [origin.strip().rstrip("/") for origin in setting.split(",") if origin.strip()]


def install_security(app: FastAPI, cors: str) -> None:
    """Add the security headers, the API body cap, and CORS for the listed origins only."""
    origins = cors_origins(cors)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            max_age=600,
        )
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)
