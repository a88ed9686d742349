"""Unknown query parameters are refused, never ignored: 422 ``unknown_parameter`` names them and lists the ones the
route accepts. An ignored parameter is a silent wrong answer (``/executions?fingerprint=x`` listing everything).

``create_app`` installs ``QueryParameterCheck`` once, as an app-wide dependency, so every route gets it, and routes
added later too; what a route accepts is read from its own declaration (its dependency tree's query parameters,
those of pydantic query models included), so it never needs a list kept by hand.

Exempt: ``/hooks/{trigger}``. Its URL belongs to the sender's configuration, and senders add parameters of their own
(cache busters, their account or delivery ids); a 4xx there loses the event and makes many senders disable the
endpoint, and ingest reads no query parameter, so none can be mistaken for a filter. (The dashboard at ``/ui`` is a
mount, not a route: Streamlit keeps its page state in query parameters it reads itself.)
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from redrive.errors import UnknownParameter

EXEMPT_PREFIXES = ("/hooks/",)


def accepted_parameters(dependant: Dependant) -> tuple[str, ...]:
    """The query parameter names a route declares, in declaration order, its dependencies' included."""
    names: dict[str, None] = {}
    pending = [dependant]
    while pending:
        current = pending.pop(0)
        for field in current.query_params:
            model = field.field_info.annotation
            if isinstance(model, type) and issubclass(model, BaseModel):  # a query model: its fields are the names
                names.update((info.alias or name, None) for name, info in model.model_fields.items())
            else:
                names[field.alias] = None
        pending.extend(current.dependencies)
    return tuple(names)


class QueryParameterCheck:
    """The dependency: refuses a request whose query names a parameter its route does not declare."""

    def __init__(self) -> None:
        self._accepted: dict[int, tuple[str, ...]] = {}  # per route (by identity), read on first use

    async def __call__(self, request: Request) -> None:
        """Raise UnknownParameter when the query has names the matched route does not accept."""
        given = request.query_params.keys()
        route = request.scope.get("route")
        if not given or not isinstance(route, APIRoute) or route.path_format.startswith(EXEMPT_PREFIXES):
            return
        accepted = self._accepted.get(id(route))
        if accepted is None:
            accepted = self._accepted[id(route)] = accepted_parameters(route.dependant)
        unknown = sorted(set(given) - set(accepted))
        if unknown:
            raise UnknownParameter(refusal(request.method, route.path_format, unknown, accepted))


def refusal(method: str, path: str, unknown: list[str], accepted: tuple[str, ...]) -> str:
    """The message: which parameters are unknown, and what the route accepts."""
    names = ", ".join(repr(name) for name in unknown)
    noun = "parameter" if len(unknown) == 1 else "parameters"
    takes = ", ".join(accepted) if accepted else "no query parameters"
    return f"{method} {path} does not accept the query {noun} {names}; it accepts: {takes}"
