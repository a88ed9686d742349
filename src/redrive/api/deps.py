"""Dependencies, named once as ``Annotated`` aliases so route signatures read as sentences."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from redrive.api.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    """The running service's state (``async`` so FastAPI calls it inline, not in its threadpool)."""
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]

MAX_ROW_ID = 2**63 - 1  # BIGINT; a larger id cannot exist and must not reach the driver (it overflows there)
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A row id.")]
Cursor = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="`next_cursor` from the previous page")]
