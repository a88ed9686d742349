"""Dependencies, named once as ``Annotated`` aliases so route signatures read as sentences."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from redrive.api.state import ServiceState
from redrive.errors import InvalidRequest


async def get_state(request: Request) -> ServiceState:
    """The running service's state (``async`` so FastAPI calls it inline, not in its threadpool)."""
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]

MAX_ROW_ID = 2**63 - 1  # BIGINT; a larger id cannot exist and must not reach the driver (it overflows there)
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A row id.")]
Cursor = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="`next_cursor` from the previous page")]


def known_kind(state: ServiceState, kind: str | None) -> str | None:
    """``kind`` when a loaded plugin provides it (or None), else a 422 ``invalid_request`` listing the kinds."""
    if kind is not None and kind not in state.registry.kinds:
        known = ", ".join(sorted(state.registry.kinds))
        raise InvalidRequest(f"kind {kind!r} is not an action kind; the kinds are: {known}")
    return kind
