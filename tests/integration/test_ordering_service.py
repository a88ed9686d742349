"""Ordered delivery through a running service on both databases: ingest renders the key once (and refuses an event
without one), the execution view states key, policy and what an execution waits on, ``block`` holds a key behind its
failed head until the head is replayed, ``continue`` lets it go."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
from typer.testing import CliRunner

from redrive.cli import app as cli
from support import Service, query, run_service, wait_until

# n == 0 fails for good (exit 1); every other event succeeds.
CONFIG = """
triggers:
  - name: strict
    action: {kind: command, argv: [sh, -c, 'test "{{ payload.n }}" != 0']}
    ordering: {key: "{{ payload.customer.id }}", on_dead_letter: block}
  - name: relaxed
    action: {kind: command, argv: [sh, -c, 'test "{{ payload.n }}" != 0']}
    ordering: {key: "{{ payload.customer.id }}"}
"""


def send(service: Service, trigger: str, customer: str | None, n: int) -> httpx2.Response:
    payload: dict[str, Any] = {"n": n, "customer": {"id": customer} if customer is not None else {}}
    return httpx2.post(f"{service.url}/hooks/{trigger}", json=payload, timeout=10)


def view(service: Service, execution_id: int) -> dict[str, Any]:
    response = httpx2.get(f"{service.url}/api/v1/executions/{execution_id}", headers=service.auth("viewer"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def status(db_url: str, execution_id: int) -> str:
    return str(query(db_url, "SELECT status FROM executions WHERE id = :id", id=execution_id)[0][0])


def test_an_event_without_its_ordering_key_is_refused_and_nothing_is_stored(db_url: str) -> None:
    with run_service(db_url, CONFIG) as service:
        missing = send(service, "strict", None, 1)
        empty = send(service, "strict", "  ", 1)
    for response in (missing, empty):
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "invalid_ordering_key"
        assert "'strict'" in error["message"]
    assert query(db_url, "SELECT count(*) FROM events")[0][0] == 0


def test_block_holds_the_key_behind_its_failed_head_until_it_is_replayed(db_url: str) -> None:
    with run_service(db_url, CONFIG) as service:
        head = send(service, "strict", "c-1", 0).json()["execution_id"]
        wait_until(lambda: status(db_url, head) == "failed")
        behind = [send(service, "strict", "c-1", n).json()["execution_id"] for n in (1, 2)]
        other = send(service, "strict", "c-2", 3).json()["execution_id"]
        wait_until(lambda: status(db_url, other) == "succeeded")  # another key flows
        assert [status(db_url, e) for e in behind] == ["pending", "pending"]
        ordering = view(service, behind[1])["ordering"]
        assert ordering == {
            "key": "c-1",
            "on_dead_letter": "block",
            "state": "blocked",
            "waiting_on": head,
            "blocked": True,
        }
        replayed = httpx2.post(
            f"{service.url}/api/v1/executions/{head}/replay", params={"force": "true"}, headers=service.auth("admin")
        )
        assert replayed.status_code < 300, replayed.text
        new = replayed.json()["new_execution_id"]
        wait_until(lambda: status(db_url, new) == "failed")
        assert view(service, new)["ordering"]["key"] == "c-1"
    rows = query(db_url, "SELECT id, status, finished_at FROM executions WHERE ordering_key = 'c-1' ORDER BY id")
    finished = {row[0]: row[2] for row in rows}
    assert [row[1] for row in rows] == ["replayed", "succeeded", "succeeded", "failed"]
    assert finished[behind[0]] <= finished[behind[1]] <= finished[new]  # the replay ran last in its key


def test_continue_lets_the_key_go_on_after_its_head_failed(db_url: str) -> None:
    with run_service(db_url, CONFIG) as service:
        head = send(service, "relaxed", "c-1", 0).json()["execution_id"]
        wait_until(lambda: status(db_url, head) == "failed")
        behind = send(service, "relaxed", "c-1", 1).json()["execution_id"]
        wait_until(lambda: status(db_url, behind) == "succeeded")
        ordering = view(service, head)["ordering"]
    assert ordering["on_dead_letter"] == "continue"
    assert ordering["state"] == "finished"


def test_config_check_names_the_trigger_whose_ordering_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "redrive.yaml"
    bad.write_text(CONFIG.replace('"{{ payload.customer.id }}", on_dead_letter: block', '"{{ payload.customer.id"'))
    result = CliRunner().invoke(cli, ["config", "check", str(bad)])
    assert result.exit_code == 2, result.output
    assert f"{bad}: triggers[0] (strict).ordering.key" in result.stderr
    assert "does not compile" in result.stderr
    good = tmp_path / "good.yaml"
    good.write_text(CONFIG)
    checked = CliRunner().invoke(cli, ["config", "check", str(good)])
    assert checked.exit_code == 0, checked.output
