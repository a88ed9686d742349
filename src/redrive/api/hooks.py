"""``POST /hooks/{trigger}``: accept a webhook durably, once per idempotency key.

This is the service's hot path, so the running app serves it from ``HooksFront``, a small ASGI app in front of
FastAPI's middleware stack and router: it runs the very same ``ingest_webhook`` and answers errors through the same
``failure_response`` as every route, but skips the middleware layers, route matching and dependency solving, which
cost more than the rest of a request.
The FastAPI route below documents the endpoint (OpenAPI) and serves it wherever the front is not installed.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

import structlog
from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from redrive.api.deps import StateDep
from redrive.api.errors import failure_response
from redrive.api.observe import record_ingest
from redrive.api.responses import Json
from redrive.api.security import HOOK_HEADERS
from redrive.api.state import ServiceState
from redrive.errors import ClientDisconnected, PayloadTooLarge, UnsupportedEncoding
from redrive.ingest.accept import accept, check_signature, find_trigger
from redrive.ingest.prepare import prepare

log = structlog.get_logger("redrive.ingest")
router = APIRouter(tags=["ingest"])

INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "A duplicate of an event already accepted; names the original."},
    400: {"description": "invalid_json: the body is not JSON."},
    401: {"description": "invalid_signature: the trigger verifies signatures and this one is missing or wrong."},
    404: {"description": "unknown_trigger: no trigger has that name."},
    413: {"description": "payload_too_large: the body exceeds the trigger's limit."},
    415: {"description": "unsupported_encoding: compressed bodies are not accepted."},
    422: {
        "description": "idempotency_key_reused: the key was used before with a different body; number_out_of_range: "
        "the payload holds an integer outside 64 bits (or, through the events API, a number past a double); "
        "invalid_idempotency_key, invalid_ordering_key, filter_error: the event cannot be keyed or filtered."
    },
    503: {"description": "storage_unavailable: nothing was stored; send again."},
}


async def read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes, refusing larger bodies while reading (chunked ones included).

    A client that goes away before its body has arrived is not an error of ours: it is logged at info (no
    traceback), nothing is stored, and the answer (which nobody reads) is 400 ``client_disconnected``.
    """
    try:
        return await _read_body(request, limit)
    except ClientDisconnect:
        log.info("client_disconnected", path=request.url.path)
        raise ClientDisconnected("the client disconnected before sending its whole body; nothing was stored") from None


async def _read_body(request: Request, limit: int) -> bytes:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in {"", "identity"}:
        raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not accepted; send the body uncompressed")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise PayloadTooLarge(f"the body is {declared} bytes; this trigger accepts at most {limit}")
        return await request.body()  # the server enforces Content-Length framing
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds this trigger's limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def ingest_webhook(state: ServiceState, name: str, request: Request) -> Json:
    """The whole of ``POST /hooks/{name}``: find the trigger, read the body, prepare the event, store it, answer."""
    found = find_trigger(state, name)
    body = await read_body(request, found.config.source.max_body_bytes)
    headers = header_dict(request)
    await check_signature(state, found, body, headers)
    event = prepare(
        found.config,
        found.id,
        body=body,
        headers=headers,
        received_at=state.now(),
        redactor=state.redactor,
        destination=found.destination,
    )
    accepted = await accept(state, found, event)
    return Json(accepted.body, status_code=accepted.status)


def header_dict(request: Request) -> dict[str, str]:
    """The request's headers, lower-case names, the first value of a repeated one (as ``dict(request.headers)``).

    Built from the raw list in one pass: ``dict(request.headers)`` looks each name up again, a scan per header.
    """
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.headers.raw:
        name = raw_name.decode("latin-1").lower()
        if name not in headers:
            headers[name] = raw_value.decode("latin-1")
    return headers


@router.post("/hooks/{trigger}", status_code=202, responses=INGEST_RESPONSES)
async def receive_webhook(trigger: str, request: Request, state: StateDep) -> Json:
    """Accept one event for ``trigger``: 202 new, 200 duplicate."""
    return await ingest_webhook(state, trigger, request)


class HooksFront:
    """Serves ``POST /hooks/{trigger}`` (``is_hook``) ahead of FastAPI's middleware stack: ``create_app``'s app
    hands such requests straight here.

    FastAPI's own layers (the server-error catcher, its exception telemetry and body limit, routing) and redrive's
    security-header and ingest-metrics middlewares each cost an ASGI call per request; this does their part for
    the hot path inline: every error answered through ``failure_response`` (the route handlers' one function), the
    trigger's own body limit (``read_body``), the same headers, the same timing and refusal counts. CORS does not
    apply to webhooks: senders are servers, not browser scripts.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = perf_counter()
        state: ServiceState = scope["app"].state.service
        request = Request(scope, receive)
        try:
            response = await ingest_webhook(state, scope["path"][7:], request)
        except Exception as exc:  # every route's handlers, in one function
            response = failure_response(request, exc)
        response.raw_headers.extend(HOOK_HEADERS)
        try:
            await response(scope, receive, send)
        finally:
            record_ingest(state, scope["path"], response.status_code, perf_counter() - started)


def is_hook(scope: Scope) -> bool:
    """Is this request ``POST /hooks/{trigger}``? Exactly what the route matches: one non-empty path segment, no
    mount prefix."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return False
    path: str = scope["path"]
    return path.startswith("/hooks/") and len(path) > 7 and "/" not in path[7:]
