"""Helpers for the replay tests: an HTTP sink whose answer the test switches, dead-lettered executions on demand,
direct database reads and writes through the real tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2
from pytest_httpserver import HTTPServer
from sqlalchemy import Table, create_engine, select, update
from werkzeug import Request, Response

from redrive.db.schema import audit_log, events, executions
from support import Service, wait_until

SETTLED = ("succeeded", "failed", "failed_retryable")


def triggers_yaml(url: str, *, extra: str = "") -> str:
    """One http trigger ``sink`` that dead-letters after one attempt, plus ``extra`` YAML trigger entries. Its
    breaker is off: these tests want the dead letters a failing sink makes, which a breaker would hold instead."""
    return f"""
triggers:
  - name: sink
    action:
      kind: http
      url: "{url}"
      allow_private: true
      json: {{n: "{{{{ payload.n }}}}"}}
      headers: {{Authorization: "Bearer not-for-your-eyes"}}
      timeout: 5s
    retry: {{max_attempts: 1}}
    breaker: {{enabled: false}}
{extra}"""


@dataclass
class Sink:
    """An endpoint answering ``status`` (503 dead-letters, 400 fails, 200 succeeds); switch it between steps."""

    status: int = 503
    hits: int = 0

    def __call__(self, request: Request) -> Response:
        self.hits += 1
        return Response("sink says so", status=self.status)


def sink(httpserver: HTTPServer, status: int = 503) -> tuple[Sink, str]:
    """A Sink on ``httpserver`` and the trigger file pointing at it."""
    answer = Sink(status)
    httpserver.expect_request("/sink").respond_with_handler(answer)
    return answer, triggers_yaml(httpserver.url_for("/sink"))


def send(service: Service, n: int, trigger: str = "sink") -> int:
    """Deliver an event; its execution id."""
    response = httpx2.post(f"{service.url}/hooks/{trigger}", json={"n": n}, timeout=10)
    assert response.status_code == 202, response.text
    return int(response.json()["execution_id"])


def operations(db_url: str) -> list[Any]:
    """The audit log's rows, less the creation of the tokens every test service starts with (audited too)."""
    return rows(db_url, audit_log, audit_log.c.action != "token_create")


def rows(db_url: str, table: Table, *where: Any, order: Any = None) -> list[Any]:
    """Rows of ``table`` (typed through the schema, so datetimes come back aware)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            query = select(table).where(*where)
            return list(connection.execute(query.order_by(order if order is not None else table.c[0])))
    finally:
        engine.dispose()


def write(db_url: str, statement: Any) -> None:
    """Run one statement in its own committed transaction."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(statement)
    finally:
        engine.dispose()


def execution(db_url: str, execution_id: int) -> Any:
    """One execution row."""
    return rows(db_url, executions, executions.c.id == execution_id)[0]


def settle(db_url: str, execution_id: int, timeout: float = 15.0) -> str:
    """Wait until the execution ends; its status."""

    def done() -> str | None:
        status = execution(db_url, execution_id).status
        return str(status) if status in SETTLED else None

    return wait_until(done, timeout=timeout, what=f"execution {execution_id} to settle")


def dead_letter(service: Service, db_url: str, count: int, *, start: int = 0) -> list[int]:
    """Deliver ``count`` events to a 503 sink and wait until each execution is failed_retryable."""
    ids = [send(service, start + n) for n in range(count)]
    for execution_id in ids:
        assert settle(db_url, execution_id) == "failed_retryable"
    return ids


def replay(service: Service, execution_id: int, role: str = "operator", **params: Any) -> httpx2.Response:
    """POST the single-replay route."""
    url = f"{service.url}/api/v1/executions/{execution_id}/replay"
    return httpx2.post(url, params=params, headers=service.auth(role), timeout=10)


def new_execution(db_url: str, original: int) -> Any:
    """The execution replaying ``original``."""
    return rows(db_url, executions, executions.c.replay_of == original)[0]


def forget_last_replay(db_url: str) -> None:
    """Clear every event's last_replay_at: the 60 s interval passes without waiting (the count stays)."""
    write(db_url, update(events).values(last_replay_at=None))


def error(response: httpx2.Response) -> str:
    """The error code of an error answer."""
    return str(response.json()["error"]["code"])
