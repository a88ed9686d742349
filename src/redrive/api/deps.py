"""Dependencies, named once as ``Annotated`` aliases so route signatures read as sentences."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from redrive.api.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    """The running service's state (``async`` so FastAPI calls it inline, not in its threadpool)."""
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]
