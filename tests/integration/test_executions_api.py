"""GET /api/v1/executions and /{id}: filters, cursor pages, attempts (with what each sent) and the error context."""

from __future__ import annotations

import httpx2
from pytest_httpserver import HTTPServer

from support import run_service, scalar, wait_until


def config(url: str) -> str:
    return f"""
triggers:
  - name: api
    action:
      kind: http
      allow: [127.0.0.1]
      url: "{url}?order={{{{ payload.order }}}}"
      headers: {{apikey: "key-{{{{ payload.order }}}}", X-Plain: "visible"}}
      json: {{order: "{{{{ payload.order }}}}"}}
    retry: {{max_attempts: 2, base: 10ms, jitter: none}}
"""


def test_detail_has_attempts_what_they_sent_and_error_context(db_url: str, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/down").respond_with_data("upstream is down", status=503)
    with run_service(db_url, config(httpserver.url_for("/down"))) as service:
        sent = httpx2.post(f"{service.url}/hooks/api", json={"order": "Z-9"}, timeout=10).json()
        execution_id = sent["execution_id"]
        wait_until(lambda: scalar(db_url, "SELECT status FROM executions") == "failed_retryable")
        response = httpx2.get(f"{service.url}/api/v1/executions/{execution_id}", headers=service.auth("viewer"))
        missing = httpx2.get(f"{service.url}/api/v1/executions/999999", headers=service.auth("viewer"))
        anonymous = httpx2.get(f"{service.url}/api/v1/executions/{execution_id}")
    assert response.status_code == 200
    detail = response.json()
    assert detail["id"] == execution_id
    assert detail["status"] == "failed_retryable"
    assert detail["attempt_count"] == 2
    assert [a["number"] for a in detail["attempts"]] == [1, 2]
    assert {a["error_code"] for a in detail["attempts"]} == {"http_503"}
    assert detail["event"]["payload"] == {"order": "Z-9"}
    sent = detail["attempts"][-1]["request"]
    assert sent["method"] == "POST"
    assert sent["url"].endswith("/down?order=Z-9")
    assert sent["headers"]["X-Plain"] == "visible"
    assert sent["headers"]["apikey"] == "[redacted]"
    assert detail["error"]["code"] == "http_503"
    assert detail["error"]["detail"]["status"] == 503
    assert detail["error"]["excerpt"] == "upstream is down"
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert anonymous.status_code == 401


def test_list_filters_and_cursor_pages(db_url: str, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/ok").respond_with_data("ok")
    with run_service(db_url, config(httpserver.url_for("/ok"))) as service:
        ids = [httpx2.post(f"{service.url}/hooks/api", json={"order": n}).json()["execution_id"] for n in range(5)]
        wait_until(lambda: scalar(db_url, "SELECT count(*) FROM executions WHERE status = 'succeeded'") == 5)
        auth = service.auth("viewer")
        first = httpx2.get(f"{service.url}/api/v1/executions", params={"limit": 3}, headers=auth).json()
        second = httpx2.get(
            f"{service.url}/api/v1/executions", params={"limit": 3, "cursor": first["next_cursor"]}, headers=auth
        ).json()
        none = httpx2.get(f"{service.url}/api/v1/executions", params={"status": "failed"}, headers=auth).json()
        bad = httpx2.get(f"{service.url}/api/v1/executions", params={"status": "bogus"}, headers=auth)
    assert [row["id"] for row in first["items"] + second["items"]] == sorted(ids, reverse=True)
    assert second["next_cursor"] is None
    assert {row["status"] for row in first["items"]} == {"succeeded"}
    assert none["items"] == []
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_request"
