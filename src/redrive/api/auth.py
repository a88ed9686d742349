"""Bearer-token authentication and role checks for ``/api/v1``, with a limit on failed attempts per address.

Missing or invalid token: 401 ``unauthenticated``; valid but too weak: 403 ``forbidden``. After ten failures from one
address within a minute, further failures from it answer 429 ``too_many_failures`` with ``Retry-After`` (kept per
process, in memory). A valid token is always let through, whatever its address did before: only failures are
throttled. Each failure is logged (``evt=auth_failed``) and counted, and so is each throttled one
(``evt=auth_throttled``); the logs carry the address and the token's first characters, never the token.

The mounted dashboard calls this API from the server itself, so every browser would share the server's address.
It vouches for the browser's address instead (``CLIENT_ADDRESS_HEADER``), proving that it is the dashboard with the
process's local proxy key; the header is ignored on any request that does not carry that key.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from redrive.api.deps import StateDep
from redrive.api.state import ServiceState
from redrive.errors import Forbidden, RedriveError, TooManyFailures, Unauthenticated
from redrive.tokens import (
    CLIENT_ADDRESS_HEADER,
    PROXY_KEY_HEADER,
    Principal,
    Role,
    authenticate,
    local_proxy_key,
    token_prefix,
    touch,
)

# What authentication can answer on any /api route (each route documents them, so clients can rely on them).
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "unauthenticated: no token, or an unknown, revoked or expired one."},
    403: {"description": "forbidden: the token's role is too weak."},
    429: {"description": "too_many_failures: too many failed authentications from this address."},
    503: {"description": "storage_unavailable: the database cannot be reached; try again shortly."},
}
TOUCH_EVERY = 60.0  # last_used_at is written at most this often per token

log = structlog.get_logger("redrive.auth")
_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer rdv_...`")


def client_address(request: Request) -> str:
    """The caller's address: the browser's when the mounted dashboard vouches for it, else the peer's."""
    vouched = request.headers.get(CLIENT_ADDRESS_HEADER)
    if vouched and hmac.compare_digest(request.headers.get(PROXY_KEY_HEADER, ""), local_proxy_key()):
        return vouched[:64]
    return request.client.host if request.client else "unknown"


def _refuse(state: ServiceState, address: str, secret: str | None, reason: str) -> RedriveError:
    """Count and log one failed authentication; the error to raise (429 once the address is over its limit)."""
    prefix = token_prefix(secret)
    retry_after = state.auth_failures.fail(address)
    if retry_after is None:
        log.warning("auth_failed", address=address, token_prefix=prefix, reason=reason)
        state.metrics.auth_failed.inc()
        return Unauthenticated(reason)
    log.warning("auth_throttled", address=address, token_prefix=prefix, retry_after=retry_after)
    state.metrics.auth_throttled.inc()
    return TooManyFailures(retry_after)


async def principal(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, authenticated by its bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _refuse(state, client_address(request), None, "send an API token as 'Authorization: Bearer <token>'")
    now = state.now()
    found = await state.db.read(authenticate(credentials.credentials, now))
    if found is None:
        raise _refuse(
            state, client_address(request), credentials.credentials, "the token is unknown, revoked or expired"
        )
    last = state.token_touches.get(found.token_id)
    if last is None or (now - last).total_seconds() > TOUCH_EVERY:
        state.token_touches[found.token_id] = now
        await state.db.write(touch(found.token_id, now))
    return found


def require(role: Role) -> object:
    """A dependency that admits principals of at least ``role``."""

    async def check(caller: Annotated[Principal, Depends(principal)]) -> Principal:
        if not caller.can(role):
            raise Forbidden(f"this needs the {role} role; the token {caller.name!r} is {caller.role}")
        return caller

    return Depends(check)


ViewerDep = Annotated[Principal, require("viewer")]
OperatorDep = Annotated[Principal, require("operator")]
AdminDep = Annotated[Principal, require("admin")]
