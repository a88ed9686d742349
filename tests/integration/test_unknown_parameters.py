"""Unknown query parameters are refused with 422 ``unknown_parameter`` on every route, never ignored; so is a body
with content sent to a route that takes none (422 ``unexpected_body``).

The /api/v1 routes come from the OpenAPI document, so a new route is covered the day it ships; what each route
accepts is also read from the document, so the error's list of accepted parameters must equal what is documented.
"""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from support import Service, fill_path, run_service

CONFIG = "triggers: [{name: t, action: {kind: command, argv: ['true']}}]"
PATH_VALUES = {"execution_id": "1", "replay_id": "1", "fingerprint": "0000000000000000", "name": "t"}
UNKNOWN = "fingerprnt"  # a typo: today's silent wrong answer


@pytest.fixture
def service(db_url: str):
    with run_service(db_url, CONFIG, worker_concurrency=0) as running:
        yield running


def _send(
    service: Service, method: str, path: str, params: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str]]:
    """The status and the error body (empty on success); ``body`` is sent as JSON, else a POST sends ``{}``."""
    sent: dict[str, Any] = {"json": {}} if method == "POST" else {}
    if body is not None:
        sent = {"content": body, "headers": {"content-type": "application/json"}}
    # Streamed, so the live stream answers its status without being read to its (no) end.
    with (
        httpx2.Client(base_url=service.url, headers=service.auth("admin"), timeout=10) as http,
        http.stream(method, path, params=params, **sent) as response,
    ):
        if response.status_code < 400:
            return response.status_code, {}
        response.read()
        error: dict[str, str] = response.json()["error"]
        return response.status_code, error


def _documented_routes(service: Service, *, without_body: bool = False) -> dict[tuple[str, str], list[str]]:
    """The /api/v1 routes of the OpenAPI document, each with the query parameters it documents; ``without_body``:
    only the POST routes that document no request body."""
    spec = httpx2.get(f"{service.url}/openapi.json").json()
    return {
        (method.upper(), path): [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
        for path, operations in spec["paths"].items()
        if path.startswith("/api/v1")
        for method, operation in operations.items()
        if not without_body or (method == "post" and "requestBody" not in operation)
    }


def test_every_route_refuses_an_unknown_query_parameter_and_lists_what_it_accepts(service: Service) -> None:
    routes = _documented_routes(service)
    assert len(routes) >= 20
    wrong = []
    for (method, path), accepted in sorted(routes.items()):
        status, error = _send(service, method, fill_path(path, PATH_VALUES), {UNKNOWN: "x"})
        message = error.get("message", "")
        takes = ", ".join(accepted) if accepted else "no query parameters"
        if (status, error.get("code")) != (422, "unknown_parameter") or not message.endswith(f"accepts: {takes}"):
            wrong.append(f"{method} {path}: {status} {error}")
        elif f"'{UNKNOWN}'" not in message:
            wrong.append(f"{method} {path}: the message does not name the parameter: {message}")
    assert wrong == []


def test_the_message_names_every_unknown_parameter_and_known_ones_still_work(service: Service) -> None:
    status, error = _send(service, "GET", "/api/v1/executions", {"limit": "5", "zeta": "1", "alpha": "2"})
    assert (status, error["code"]) == (422, "unknown_parameter")
    assert error["message"].startswith(
        "GET /api/v1/executions does not accept the query parameters 'alpha', 'zeta'; it accepts: "
    )
    assert "trigger, status, kind" in error["message"]
    assert _send(service, "GET", "/api/v1/executions", {"limit": "5", "status": "failed"})[0] == 200
    # A known parameter with a bad value is still an invalid value, not an unknown name.
    assert _send(service, "GET", "/api/v1/executions", {"limit": "0"})[1]["code"] == "invalid_request"
    assert _send(service, "GET", "/api/v1/stats", {"days": "2"})[0] == 200


def test_health_and_metrics_refuse_them_too_but_the_ingest_front_and_the_dashboard_do_not(service: Service) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        response = httpx2.get(f"{service.url}{path}", params={UNKNOWN: "x"})
        assert (response.status_code, response.json()["error"]["code"]) == (422, "unknown_parameter"), path
        assert "it accepts: no query parameters" in response.json()["error"]["message"]
    # Senders own their webhook URLs and add parameters of their own; refusing would lose the event.
    accepted = httpx2.post(f"{service.url}/hooks/t", params={"utm_source": "sender"}, json={"n": 1})
    assert accepted.status_code == 202, accepted.text
    # Streamlit keeps its page state in query parameters it reads itself.
    assert httpx2.get(f"{service.url}/ui/", params={"embed": "true"}).status_code == 200


def test_every_route_without_a_body_refuses_one_with_content_and_says_where_its_options_go(service: Service) -> None:
    routes = _documented_routes(service, without_body=True)
    assert len(routes) >= 10
    wrong = []
    for (method, path), accepted in sorted(routes.items()):
        status, error = _send(service, method, fill_path(path, PATH_VALUES), body=b'{"forse": true}')
        options = f"its options are query parameters: {', '.join(accepted)}" if accepted else "it takes no options"
        expected = f"{method} {path} takes no body (it was sent 'forse'); {options}"
        if (status, error.get("code"), error.get("message")) != (422, "unexpected_body", expected):
            wrong.append(f"{method} {path}: {status} {error}")
        for empty in (b"", b"{}", b"{ }", b" null\n"):  # what clients send with every POST: nothing said
            status, error = _send(service, method, fill_path(path, PATH_VALUES), body=empty)
            if error.get("code") == "unexpected_body":
                wrong.append(f"{method} {path} refused the empty body {empty!r}")
    assert wrong == []


def test_a_body_that_is_not_json_is_refused_too_and_the_route_answers_without_it(service: Service) -> None:
    status, error = _send(service, "POST", "/api/v1/triggers/t/pause", body=b"not json at all")
    assert (status, error["code"]) == (422, "unexpected_body")
    assert error["message"] == "POST /api/v1/triggers/{name}/pause takes no body; it takes no options"
    paused = httpx2.post(f"{service.url}/api/v1/triggers/t/pause", headers=service.auth("admin"), timeout=10)
    assert paused.status_code == 200, paused.text
