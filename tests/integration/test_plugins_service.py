"""A plugin's action kind, hint and API routes in a running service, on both databases; and what a plugin can
not do to the service: its routes answer only to the token roles they declare."""

from __future__ import annotations

import httpx2

import redrive
from plugin_echo import EchoPlugin
from redrive.failures.classify import Failure, permanent
from support import query, run_service, scalar, wait_until

CONFIG = """
triggers:
  - name: shout
    action: {kind: echo, message: "{{ payload.word }}", times: 2}
    retry: {max_attempts: 2, base: 10ms, max_delay: 1s, jitter: none}
"""


def send(service, payload: dict[str, str]) -> int:
    response = httpx2.post(f"{service.url}/hooks/shout", json=payload, timeout=10)
    assert response.status_code == 202, response.text
    return int(response.json()["execution_id"])


def finished(db_url: str, execution_id: int) -> str | None:
    status = str(scalar(db_url, "SELECT status FROM executions WHERE id = :id", id=execution_id))
    return status if status in {"succeeded", "failed", "failed_retryable"} else None


def test_a_plugin_kind_runs_with_its_resources_and_its_classifier(db_url: str) -> None:
    plugin = EchoPlugin()
    with run_service(db_url, CONFIG, plugins=[plugin], worker_concurrency=7) as service:
        ok = send(service, {"word": "hello"})
        assert wait_until(lambda: finished(db_url, ok)) == "succeeded"
        boom = send(service, {"word": "boom"})
        assert wait_until(lambda: finished(db_url, boom)) == "failed_retryable"
        viewer = service.auth("viewer")
        listed = httpx2.get(f"{service.url}/api/v1/executions?kind=echo", headers=viewer, timeout=10).json()
        unknown = httpx2.get(f"{service.url}/api/v1/executions?kind=pigeon", headers=viewer, timeout=10)
        groups = httpx2.get(f"{service.url}/api/v1/error-groups", headers=viewer, timeout=10).json()
        counted = httpx2.get(f"{service.url}/api/v1/executions/stats?kind=echo", headers=viewer, timeout=10).json()
        preview = httpx2.get(
            f"{service.url}/api/v1/executions/{boom}/replay-preview", headers=service.auth("operator"), timeout=10
        ).json()
        [outbox] = plugin.outboxes
        assert not outbox.closed
    assert outbox.closed  # the worker closed what it opened
    assert plugin.contexts[0].concurrency == 7
    assert outbox.sent == ["hello", "hello"]
    assert sorted(item["id"] for item in listed["items"]) == [ok, boom]
    assert unknown.status_code == 422
    assert "echo" in unknown.json()["error"]["message"]
    assert counted["count"] == 2
    assert preview["target"] == "echo 'boom'"
    codes = query(db_url, "SELECT outcome, error_code FROM attempts WHERE execution_id = :id", id=boom)
    assert [tuple(row) for row in codes] == [("transient", "echo_boom")] * 2
    [group] = groups["items"]
    assert group["hint"]["title"] == "The echo chamber collapsed"


def test_a_transient_error_from_a_plugin_action_is_honoured(db_url: str) -> None:
    with run_service(db_url, CONFIG, plugins=[EchoPlugin()]) as service:
        later = send(service, {"word": "later"})
        assert wait_until(lambda: finished(db_url, later)) == "failed_retryable"
    rows = query(db_url, "SELECT outcome, error_code, message FROM attempts WHERE execution_id = :id", id=later)
    assert [tuple(row) for row in rows] == [("transient", "echo_busy", "busy, come back later")] * 2


def test_plugins_are_listed_to_admins_and_their_routes_keep_the_token_roles(db_url: str) -> None:
    with (
        run_service(db_url, CONFIG, plugins=[EchoPlugin()]) as service,
        httpx2.Client(base_url=service.url, timeout=10) as http,
    ):
        listed = http.get("/api/v1/plugins", headers=service.auth("admin"))
        refused = http.get("/api/v1/plugins", headers=service.auth("operator"))
        anonymous = http.get("/api/v1/plugins/echo/outboxes")
        read = http.get("/api/v1/plugins/echo/outboxes", headers=service.auth("viewer"))
        clear_as_operator = http.post("/api/v1/plugins/echo/outboxes/clear", headers=service.auth("operator"))
        clear_as_admin = http.post("/api/v1/plugins/echo/outboxes/clear", headers=service.auth("admin"))
    assert listed.status_code == 200
    plugins = {item["name"]: item for item in listed.json()["items"]}
    assert plugins["echo"]["builtin"] is False
    assert plugins["echo"]["hooks"] == [
        "redrive_action_kinds",
        "redrive_api_routes",
        "redrive_cli_commands",
        "redrive_hints",
    ]
    assert plugins["redrive.actions.python"]["builtin"] is True
    assert refused.status_code == 403
    assert anonymous.status_code == 401
    assert (read.status_code, read.json()) == (200, {"sent": []})
    assert clear_as_operator.status_code == 403
    assert (clear_as_admin.status_code, clear_as_admin.json()) == (200, {"cleared": True, "by": "admin"})


class NoPatience:
    """Overrides how an ``http`` attempt that could not connect is classified: permanent, no retries."""

    @redrive.hookimpl
    def redrive_classify(self, kind: str, exc: BaseException) -> Failure | None:
        if kind == "http" and isinstance(exc, OSError):
            return permanent("no_patience", "we do not wait for closed ports")
        return None


def test_a_classify_plugin_overrides_the_built_in_rules_in_the_worker(db_url: str) -> None:
    config = """
triggers:
  - name: closed
    action: {kind: http, url: "http://127.0.0.1:9/", allow_private: true, timeout: 2s}
    retry: {max_attempts: 3, base: 10ms, max_delay: 1s, jitter: none}
"""
    with run_service(db_url, config, plugins=[NoPatience()]) as service:
        response = httpx2.post(f"{service.url}/hooks/closed", json={}, timeout=10)
        execution_id = int(response.json()["execution_id"])
        assert wait_until(lambda: finished(db_url, execution_id)) == "failed"
    rows = query(db_url, "SELECT outcome, error_code FROM attempts WHERE execution_id = :id", id=execution_id)
    assert [tuple(row) for row in rows] == [("permanent", "no_patience")]  # without the plugin: connection_refused
