"""``/api/v1/me``: who the token is, so a client (the dashboard) can show only what the role may do."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from redrive.api.auth import AUTH_RESPONSES, ViewerDep

router = APIRouter(prefix="/api/v1", tags=["tokens"])


@router.get("/me", responses={401: AUTH_RESPONSES[401], 429: AUTH_RESPONSES[429]})
async def me(caller: ViewerDep) -> dict[str, Any]:
    """The calling token's name and role (``viewer``, ``operator`` or ``admin``)."""
    return {"name": caller.name, "role": caller.role}
