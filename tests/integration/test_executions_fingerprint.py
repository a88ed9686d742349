"""``GET /api/v1/executions?fingerprint=``: an error group's executions (the dashboard's drill-down), validated, and
read through ix_executions_fingerprint (bounded by the group's size, never a scan of the executions table)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx2
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from plans import explain_plan, integers, plan_nodes, seed_trigger_and_event
from redrive.cli import app as cli
from redrive.queue.executions import ExecutionFilter, executions_query
from support import run_service, wait_until

CONFIG = """
triggers:
  - {name: flaky, action: {kind: command, argv: [sh, -c, 'exit 75']}, retry: {max_attempts: 1}}
  - {name: broken, action: {kind: command, argv: ['false']}}
  - {name: fine, action: {kind: command, argv: ['true']}}
"""
SETTLED = ("succeeded", "failed", "failed_retryable")


def _printed_json(stdout: str) -> Any:
    """The JSON list a command printed (the in-process server's log lines may share the captured stdout)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("["))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("]"))
    return json.loads("\n".join(lines[start : end + 1]))


def test_executions_filter_by_error_group_fingerprint(db_url: str) -> None:
    with run_service(db_url, CONFIG) as service:
        sent: dict[str, list[int]] = {name: [] for name in ("flaky", "broken", "fine")}
        for name, count in (("flaky", 3), ("broken", 2), ("fine", 2)):
            for n in range(count):
                answer = httpx2.post(f"{service.url}/hooks/{name}", json={"n": n}, timeout=10)
                sent[name].append(answer.json()["execution_id"])
        auth = service.auth("viewer")

        def listed(**params: Any) -> httpx2.Response:
            return httpx2.get(f"{service.url}/api/v1/executions", params=params, headers=auth, timeout=10)

        wait_until(lambda: all(e["status"] in SETTLED for e in listed(limit=50).json()["items"]), timeout=30)
        groups = httpx2.get(f"{service.url}/api/v1/error-groups", headers=auth, timeout=10).json()["items"]
        by_trigger = {g["trigger"]: g["fingerprint"] for g in groups}
        flaky = listed(fingerprint=by_trigger["flaky"]).json()
        broken = listed(fingerprint=by_trigger["broken"], status="failed").json()
        first_page = listed(fingerprint=by_trigger["flaky"], limit=2).json()
        second_page = listed(fingerprint=by_trigger["flaky"], limit=2, cursor=first_page["next_cursor"]).json()
        unknown = listed(fingerprint="0123456789abcdef").json()
        malformed = [listed(fingerprint=bad) for bad in ("x", "0123456789ABCDEF", "0123456789abcdef0")]
        common = ["--url", service.url, "--token", service.tokens["viewer"]]
        from_cli = CliRunner().invoke(
            cli, ["executions", "ls", "--fingerprint", by_trigger["broken"], "--json", *common]
        )
        bad_cli = CliRunner().invoke(cli, ["executions", "ls", "--fingerprint", "nope", *common])
    assert [e["id"] for e in flaky["items"]] == sorted(sent["flaky"], reverse=True)
    assert {e["fingerprint"] for e in flaky["items"]} == {by_trigger["flaky"]}
    assert [e["id"] for e in broken["items"]] == sorted(sent["broken"], reverse=True)
    assert [e["id"] for e in first_page["items"] + second_page["items"]] == sorted(sent["flaky"], reverse=True)
    assert unknown["items"] == []
    assert from_cli.exit_code == 0, from_cli.output
    assert [e["id"] for e in _printed_json(from_cli.stdout)] == sorted(sent["broken"], reverse=True)
    assert bad_cli.exit_code != 0
    assert "invalid_request" in bad_cli.stderr
    assert "fingerprint" in bad_cli.stderr
    for answer in malformed:
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "invalid_request"
        assert "fingerprint" in answer.json()["error"]["message"]


def test_the_fingerprint_filter_reads_its_index(db_url: str) -> None:
    engine = create_engine(db_url)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        with engine.begin() as connection:
            trigger_id, event_id = seed_trigger_and_event(connection, now)
            # 20,000 executions in 200 groups of 100; the plan must not walk them all to find one group's page.
            sqlite = engine.dialect.name == "sqlite"
            fingerprint = "printf('%016x', i % 200)" if sqlite else "lpad(to_hex(i % 200), 16, '0')"
            rows = integers(engine, 0, 19999)
            connection.execute(
                text(
                    "INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
                    f"updated_at, fingerprint) SELECT :event, :trigger, 'http', 'failed_retryable', 1, :t, :t, :t, "
                    f"{fingerprint} FROM ({rows}) AS seq"
                ),
                {"event": event_id, "trigger": trigger_id, "t": now},
            )
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("ANALYZE"))
        statement = executions_query(ExecutionFilter(fingerprint="0000000000000007", limit=50))
        plan = explain_plan(engine, statement)
        print(f"{engine.dialect.name} fingerprint plan:\n{plan}")
        if engine.dialect.name == "postgresql":
            nodes = plan_nodes(json.loads(plan)[0]["Plan"])
            assert any(n.get("Index Name") == "ix_executions_fingerprint" for n in nodes), plan
            assert not [n for n in nodes if n["Node Type"] == "Seq Scan" and n["Relation Name"] == "executions"], plan
        else:
            assert "INDEX ix_executions_fingerprint (fingerprint=?)" in plan, plan
    finally:
        engine.dispose()
