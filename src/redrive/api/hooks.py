"""``POST /hooks/{trigger}``: accept a webhook durably, once per idempotency key.

This is the service's hot path, so the running app serves it from ``HooksFront``, a small ASGI layer in front of
FastAPI's router: it runs the very same ``ingest_webhook`` and answers errors through the same ``failure_response``
as every route, but skips route matching and dependency solving, which cost more than the rest of a request.
The FastAPI route below documents the endpoint (OpenAPI) and serves it wherever the front is not installed.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

import structlog
from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from redrive.api.deps import StateDep
from redrive.api.errors import failure_response
from redrive.api.observe import record_ingest
from redrive.api.responses import Json
from redrive.api.security import HOOK_HEADERS
from redrive.api.state import ServiceState
from redrive.errors import IdempotencyKeyReused, InvalidSignature, PayloadTooLarge, RedriveError, UnknownTrigger
from redrive.ingest.counters import increment
from redrive.ingest.prepare import NewEvent, Stored, prepare, store_event
from redrive.ingest.signatures import verify_delivery
from redrive.lifecycle import EVENT_ACCEPTED, accepted
from redrive.triggers.runtime import Trigger

log = structlog.get_logger("redrive.ingest")
router = APIRouter(tags=["ingest"])

INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "A duplicate of an event already accepted; names the original."},
    400: {"description": "invalid_json: the body is not JSON."},
    401: {"description": "invalid_signature: the trigger verifies signatures and this one is missing or wrong."},
    404: {"description": "unknown_trigger: no trigger has that name."},
    413: {"description": "payload_too_large: the body exceeds the trigger's limit."},
    415: {"description": "unsupported_encoding: compressed bodies are not accepted."},
    422: {"description": "idempotency_key_reused: the key was used before with a different body."},
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
        raise RedriveError(
            "the client disconnected before sending its whole body; nothing was stored",
            code="client_disconnected",
            status=400,
        ) from None


async def _read_body(request: Request, limit: int) -> bytes:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in {"", "identity"}:
        raise RedriveError(
            f"Content-Encoding {encoding!r} is not accepted; send the body uncompressed",
            code="unsupported_encoding",
            status=415,
        )
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


async def check_signature(state: ServiceState, trigger: Trigger, body: bytes, headers: dict[str, str]) -> None:
    """When the trigger verifies signatures, refuse a bad one with a 401 (counted, logged) before anything is stored."""
    scheme = trigger.scheme  # resolved when the trigger was built: no plugin lookup per delivery
    if scheme is None:
        return
    now = state.now()
    try:
        verify_delivery(scheme, trigger.config.source.verify, body, headers, now.timestamp())
    except InvalidSignature as exc:
        log.warning("invalid_signature", trigger=trigger.name, scheme=scheme.name, reason=exc.message)
        try:
            await state.db.write(increment(trigger.id, now.date(), "invalid_signatures"))
        except Exception:  # the count is a courtesy: the sender still gets its 401, never a 5xx
            log.warning("invalid_signature_not_counted", trigger=trigger.name)
        raise


def find_trigger(state: ServiceState, name: str) -> Trigger:
    """The declared trigger ``name`` or a 404 ``unknown_trigger``."""
    trigger = state.triggers.by_name(name)
    if trigger is None:
        raise UnknownTrigger(f"no trigger is called {name!r}")
    return trigger


async def accept(state: ServiceState, trigger: Trigger, event: NewEvent) -> Json:
    """Store a prepared event and answer as the ingest contract says (shared by hooks and the events API)."""
    stored: Stored = await state.db.write(store_event(event))
    fields = {"trigger": trigger.name, "event_id": stored.event_id, "execution_id": stored.execution_id}
    state.metrics.ingested(trigger.name, stored.outcome)
    if stored.outcome == "conflict":
        log.warning("idempotency_key_reused", **fields, idempotency_key=event.idempotency_key)
        raise IdempotencyKeyReused(
            f"idempotency key {event.idempotency_key!r} was already used with a different body "
            f"(event {stored.event_id}); use a new key for a new event"
        )
    body: dict[str, Any] = {
        "event_id": stored.event_id,
        "execution_id": stored.execution_id,
        "duplicate": stored.outcome == "duplicate",
    }
    if stored.filtered:
        body["filtered"] = True
    if stored.outcome == "duplicate":
        log.info("idempotent_replay", **fields, idempotency_key=event.idempotency_key)
        return Json(body, status_code=200)
    log.info("event_received", **fields, idempotency_key=event.idempotency_key, filtered=stored.filtered)
    if not stored.filtered and state.lifecycle.wants(EVENT_ACCEPTED):
        key = event.idempotency_key
        state.lifecycle.notify(accepted(trigger.name, stored.event_id, stored.execution_id, key, event.received_at))
    if stored.execution_id is not None:
        state.wakeup.work_due()
        if state.node is not None:
            change = {"execution_id": stored.execution_id, "trigger": trigger.name, "status": "pending", "attempts": 0}
            state.node.stream.publish("execution", change)
    return Json(body, status_code=202)


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
    )
    return await accept(state, found, event)


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
    """ASGI middleware that serves ``POST /hooks/{trigger}`` itself and passes every other request on.

    It sits outside the security-header and ingest-metrics middlewares (inside tracing) and does their part for
    the hot path inline: the same headers, the same timing and refusal counts, without two more layers of ASGI
    calls per request. CORS does not apply to webhooks: senders are servers, not browser scripts.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = _hook_name(scope)
        if name is None:
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        state: ServiceState = scope["app"].state.service
        request = Request(scope, receive)
        try:
            response = await ingest_webhook(state, name, request)
        except Exception as exc:  # every route's handlers, in one function
            response = failure_response(request, exc)
        response.raw_headers.extend(HOOK_HEADERS)
        try:
            await response(scope, receive, send)
        finally:
            record_ingest(state, scope["path"], response.status_code, perf_counter() - started)


def _hook_name(scope: Scope) -> str | None:
    # Exactly what the route matches: POST /hooks/{trigger}, one non-empty path segment, no mount prefix.
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not path.startswith("/hooks/"):
        return None
    name = path[7:]
    return name if name and "/" not in name else None
