"""``GET /healthz`` (the process is alive) and ``GET /readyz`` (the database answers and is at the newest schema).

Both are unauthenticated: load balancers and orchestrators call them. Readiness answers 503 with a code when
the database cannot be reached (``storage_unavailable``) or needs ``redrive migrate`` (``schema_outdated``).
"""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter
from sqlalchemy.exc import DBAPIError

from redrive.api.deps import StateDep
from redrive.api.errors import error_response
from redrive.api.responses import Json
from redrive.db.migrate import assert_at_head
from redrive.errors import RedriveError, StorageUnavailable

log = structlog.get_logger("redrive.health")
router = APIRouter(tags=["health"])
READY_TIMEOUT = 5.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "storage_unavailable or schema_outdated"}})
async def readyz(state: StateDep) -> Json:
    """The database is reachable and at the newest schema: this node can take traffic."""
    try:
        await asyncio.wait_for(state.db.read(assert_at_head), READY_TIMEOUT)
    except RedriveError as exc:
        return error_response(exc)
    except (DBAPIError, TimeoutError) as exc:
        log.warning("not_ready", error=str(getattr(exc, "orig", exc)) or "timed out")
        return error_response(StorageUnavailable("the database cannot be reached"))
    return Json({"status": "ready"})
