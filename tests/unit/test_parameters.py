"""What a route accepts is read from its own declaration: its query parameters, its dependencies' and the fields of
a pydantic query model, under their aliases; never its path parameters, headers or body."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from redrive.api.parameters import accepted_parameters, refusal


class Page(BaseModel):
    limit: int = 50
    before: Annotated[int | None, Field(alias="cursor")] = None


async def paging(page: Annotated[Page, Query()]) -> Page:
    return page


async def tenant(tenant_name: Annotated[str | None, Query(alias="tenant")] = None) -> str | None:
    return tenant_name


def _route(router: APIRouter) -> APIRoute:
    [route] = router.routes
    assert isinstance(route, APIRoute)
    return route


def test_query_parameters_of_the_route_its_dependencies_and_query_models() -> None:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def things(
        thing_id: int,
        page: Annotated[Page, Depends(paging)],
        owner: Annotated[str | None, Depends(tenant)],
        status: str | None = None,
        x_trace: Annotated[str | None, Header()] = None,
    ) -> None:
        """A route with every kind of parameter."""

    assert set(accepted_parameters(_route(router).dependant)) == {"status", "limit", "cursor", "tenant"}


def test_a_route_without_query_parameters_accepts_none() -> None:
    router = APIRouter()

    @router.post("/things/{thing_id}/poke")
    async def poke(thing_id: int) -> None:
        """No query."""

    assert accepted_parameters(_route(router).dependant) == ()
    assert refusal("POST", "/things/{thing_id}/poke", ["a"], ()) == (
        "POST /things/{thing_id}/poke does not accept the query parameter 'a'; it accepts: no query parameters"
    )
