"""What every HTTP answer carries for the browser's sake: security headers, and CORS only for allowed origins.

CORS is closed unless ``REDRIVE_CORS_ORIGINS`` lists origins: without it no ``Access-Control-*`` header is ever
sent, so no other site's script can read an answer (and a token never leaves its own origin). The headers
keep answers from being sniffed into another type, framed, leaking their URL as a referrer, or cached.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
# JSON routes render nothing, so they may forbid everything; the docs and the dashboard need their scripts.
_JSON_CSP = b"default-src 'none'; frame-ancestors 'none'"
_PAGE_CSP = b"frame-ancestors 'none'"
_JSON_PREFIXES = ("/api/", "/hooks/")


class SecurityHeaders:
    """ASGI middleware adding the security headers to every response (never replacing one a route set)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = [*_ALWAYS, (b"content-security-policy", _JSON_CSP if path.startswith(_JSON_PREFIXES) else _PAGE_CSP)]
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def cors_origins(setting: str) -> list[str]:
    """The origins listed in ``REDRIVE_CORS_ORIGINS`` (comma-separated); empty means CORS stays closed."""
    return [origin.strip().rstrip("/") for origin in setting.split(",") if origin.strip()]


def install_security(app: FastAPI, cors: str) -> None:
    """Add the security headers, and CORS for the listed origins only."""
    origins = cors_origins(cors)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            max_age=600,
        )
    app.add_middleware(SecurityHeaders)
