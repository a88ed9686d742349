"""Dependencies, named once as ``Annotated`` aliases so route signatures read as sentences."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from redrive.api.state import ServiceState


def get_state(request: Request) -> ServiceState:
    """The running service's state."""
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]
