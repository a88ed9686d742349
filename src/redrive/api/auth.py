"""Bearer-token authentication and role checks for ``/api/v1``, with a limit on failed attempts per address.

Missing or invalid token: 401 ``unauthenticated``; valid but too weak: 403 ``forbidden``; ten failures from one
address within a minute: 429 ``too_many_failures`` with ``Retry-After`` (kept per process, in memory).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from redrive.api.deps import StateDep
from redrive.errors import RedriveError
from redrive.tokens import Principal, Role, authenticate, touch

# What authentication can answer on any /api route (each route documents them, so clients can rely on them).
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "unauthenticated: no token, or an unknown, revoked or expired one."},
    403: {"description": "forbidden: the token's role is too weak."},
    429: {"description": "too_many_failures: too many failed authentications from this address."},
    503: {"description": "storage_unavailable: the database cannot be reached; try again shortly."},
}
TOUCH_EVERY = 60.0  # last_used_at is written at most this often per token

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer rdv_...`")


class Unauthenticated(RedriveError):
    code = "unauthenticated"
    status = 401


class Forbidden(RedriveError):
    code = "forbidden"
    status = 403


async def principal(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, authenticated by its bearer token."""
    address = request.client.host if request.client else "unknown"
    limiter = state.auth_failures
    limiter.check(address)
    if credentials is None or credentials.scheme.lower() != "bearer":
        limiter.fail(address)
        raise Unauthenticated("send an API token as 'Authorization: Bearer <token>'")
    now = state.now()
    found = await state.db.read(authenticate(credentials.credentials, now))
    if found is None:
        limiter.fail(address)
        raise Unauthenticated("the token is unknown, revoked or expired")
    last = state.token_touches.get(found.token_id, 0.0)
    if time.monotonic() - last > TOUCH_EVERY:
        state.token_touches[found.token_id] = time.monotonic()
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
