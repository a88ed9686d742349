"""Unknown query parameters are refused, never ignored: 422 ``unknown_parameter`` names them and lists the ones the
route accepts. An ignored parameter is a silent wrong answer (``/executions?fingerprint=x`` listing everything).
So is a body sent to a route that reads none (``POST /executions/1/replay`` with ``{"force": true}``: its option is
the query's ``force``): 422 ``unexpected_body``. An empty body, whitespace, and JSON's ``{}`` and ``null`` say
nothing and pass (``said``), as many clients send one of them with every POST.

``create_app`` installs ``ParameterCheck`` once, as an app-wide dependency, so every route gets it, and routes added
later too; what a route accepts is read from its own declaration (its dependency tree's query parameters, those of
pydantic query models included, and whether it declares a body), so it never needs a list kept by hand.

Exempt: ``/hooks/{trigger}``. Its URL belongs to the sender's configuration, and senders add parameters of their own
(cache busters, their account or delivery ids); a 4xx there loses the event and makes many senders disable the
endpoint, and ingest reads no query parameter, so none can be mistaken for a filter. (The dashboard at ``/ui`` is a
mount, not a route: Streamlit keeps its page state in query parameters it reads itself.)
"""

from __future__ import annotations

import orjson
from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from redrive.errors import UnexpectedBody, UnknownParameter

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


class ParameterCheck:
    """The dependency: refuses a request whose query names a parameter its route does not declare, or that sends a
    body with content to a route that declares none."""

    def __init__(self) -> None:
        self._accepted: dict[int, tuple[str, ...]] = {}  # per route (by identity), read on first use

    async def __call__(self, request: Request) -> None:
        """Raise UnknownParameter when the query has names the matched route does not accept, UnexpectedBody when
        a body with content came to a route that reads none."""
        route = request.scope.get("route")
        if not isinstance(route, APIRoute) or route.path_format.startswith(EXEMPT_PREFIXES):
            return
        given = request.query_params.keys()
        sent = not route.dependant.body_params and _may_have_body(request)
        if not given and not sent:
            return
        accepted = self._accepted.get(id(route))
        if accepted is None:
            accepted = self._accepted[id(route)] = accepted_parameters(route.dependant)
        unknown = sorted(set(given) - set(accepted))
        if unknown:
            raise UnknownParameter(refusal(request.method, route.path_format, unknown, accepted))
        if sent and (fields := said(await request.body())) is not None:
            raise UnexpectedBody(body_refusal(request.method, route.path_format, fields, accepted))


def _may_have_body(request: Request) -> bool:
    """The request announces a body: a non-zero length, or chunks."""
    length = request.headers.get("content-length")
    return (length is not None and length.strip() != "0") or "transfer-encoding" in request.headers


def refusal(method: str, path: str, unknown: list[str], accepted: tuple[str, ...]) -> str:
    """The message: which parameters are unknown, and what the route accepts."""
    names = ", ".join(repr(name) for name in unknown)
    noun = "parameter" if len(unknown) == 1 else "parameters"
    takes = ", ".join(accepted) if accepted else "no query parameters"
    return f"{method} {path} does not accept the query {noun} {names}; it accepts: {takes}"


def said(body: bytes) -> list[str] | None:
    """What ``body`` says to a route that takes none: None when nothing (empty or whitespace, or the JSON ``{}`` or
    ``null``, however spaced), else the names of its fields when it is a JSON object (none otherwise)."""
    if not body.strip():
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    if document is None or document == {}:
        return None
    return list(document) if isinstance(document, dict) else []


def body_refusal(method: str, path: str, fields: list[str], accepted: tuple[str, ...]) -> str:
    """The message: the route takes no body (naming the ``fields`` sent, if any), and where its options go instead."""
    sent = f" (it was sent {', '.join(repr(name) for name in fields)})" if fields else ""
    options = f"its options are query parameters: {', '.join(accepted)}" if accepted else "it takes no options"
    return f"{method} {path} takes no body{sent}; {options}"
