"""The router's own errors (no route for a path, a route without the method asked) answer like every other error:
a code, a sentence naming what was asked and what would be taken, and on a 405 the ``Allow`` header HTTP requires."""

from __future__ import annotations

import httpx2
import pytest

from support import Service, run_service

CONFIG = "triggers: [{name: t, action: {kind: command, argv: ['true']}}]"


@pytest.fixture
def service(db_url: str):
    with run_service(db_url, CONFIG, worker_concurrency=0) as running:
        yield running


def test_an_unknown_route_names_what_was_asked(service: Service) -> None:
    answer = httpx2.get(f"{service.url}/api/v1/nothing", headers=service.auth("admin"), timeout=10)
    assert answer.status_code == 404
    assert answer.json()["error"] == {
        "code": "not_found",
        "message": "no route answers GET /api/v1/nothing; the API's routes are listed at /docs",
    }


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/stats", {"GET"}),  # an API route
        ("GET", "/hooks/t", {"POST"}),  # a sender configured with the wrong method
        ("DELETE", "/api/v1/triggers/t/pause", {"POST"}),
    ],
)
def test_a_route_asked_with_another_method_says_which_it_takes(
    service: Service, method: str, path: str, allowed: set[str]
) -> None:
    answer = httpx2.request(method, f"{service.url}{path}", headers=service.auth("admin"), timeout=10)
    assert answer.status_code == 405
    taken = {m.strip() for m in answer.headers["allow"].split(",")}
    assert allowed <= taken <= allowed | {"HEAD"}
    assert answer.json()["error"] == {
        "code": "method_not_allowed",
        "message": f"{path} does not take {method}; it takes {answer.headers['allow']}",
    }
