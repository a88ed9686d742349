"""The replay commands of the CLI against a real service: replay, dlq ls/replay, replays show/cancel, audit ls."""

from __future__ import annotations

import json
import re
from typing import Any

from pytest_httpserver import HTTPServer
from replay_support import dead_letter, settle, sink
from typer.testing import CliRunner, Result

from redrive.cli import app
from support import Service, run_service, scalar, wait_until

SERVER_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def cli(service: Service, *args: str, role: str = "operator") -> Result:
    runner = CliRunner()
    env = {"REDRIVE_URL": service.url, "REDRIVE_TOKEN": service.tokens[role], "COLUMNS": "200"}
    return runner.invoke(app, list(args), env=env)


def as_json(result: Result) -> Any:
    """The command's JSON output (without the in-process server's log lines, which share this stdout)."""
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return json.loads("\n".join(line for line in result.stdout.splitlines() if not SERVER_LOG.match(line)))


def test_replay_and_dlq_commands(db_url: str, httpserver: HTTPServer) -> None:
    answer, config = sink(httpserver)
    with run_service(db_url, config) as service:
        first, second, third, *rest = dead_letter(service, db_url, 5)
        listed = as_json(cli(service, "dlq", "ls", "--trigger", "sink", "--json"))
        preview = as_json(cli(service, "replay", str(first), "--preview", "--json"))
        answer.status = 200
        replayed = as_json(cli(service, "replay", str(first), "--json"))
        human = cli(service, "replay", str(second))
        refused = cli(service, "replay", str(first))
        missing = cli(service, "replay", "999999")
        dry = as_json(cli(service, "dlq", "replay", "--trigger", "sink", "--dry-run", "--json"))
        job = as_json(cli(service, "dlq", "replay", "--trigger", "sink", "--rate", "100", "--json"))
        shown = as_json(cli(service, "replays", "show", str(job["id"]), "--json"))
        table = cli(service, "dlq", "ls", "--code", "http_503")
        audit = as_json(cli(service, "audit", "ls", "--json", role="admin"))
        weak = cli(service, "audit", "ls")
        assert settle(db_url, replayed["new_execution_id"]) == "succeeded"
    assert [row["id"] for row in listed] == [*reversed(rest), third, second, first]
    assert {row["status"] for row in listed} == {"failed_retryable"}
    assert (preview["replayable"], preview["trigger"]) == (True, "sink")
    assert replayed["execution_id"] == first
    assert human.exit_code == 0
    assert f"execution {second} replayed as execution" in human.stdout
    assert refused.exit_code == 2
    assert "not_replayable" in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout
    assert (missing.exit_code, "not_found" in missing.stderr) == (2, True)
    assert dry["matched"] == 3
    assert (job["status"], job["matched"], job["replayed"]) == ("done", 3, 3)
    assert shown["id"] == job["id"]
    assert "http_503" not in table.stdout  # the DLQ is empty now
    assert audit["items"][0]["action"] == "replay"
    assert weak.exit_code == 2
    assert "forbidden" in weak.stderr


def test_a_detached_bulk_replay_is_shown_and_cancelled(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver)
    with run_service(db_url, config) as service:
        dead_letter(service, db_url, 2)
        detached = as_json(cli(service, "dlq", "replay", "--trigger", "sink", "--rate", "0.2", "--no-wait", "--json"))
        shown = cli(service, "replays", "show", str(detached["id"]), role="viewer")
        cancelled = cli(service, "replays", "cancel", str(detached["id"]))
        again = cli(service, "replays", "cancel", str(detached["id"]))
        # The one left behind, and the replay made before the cancel, which dead-lettered: within 60 s, so skipped.
        wait_until(lambda: scalar(db_url, "SELECT count(*) FROM executions WHERE status = 'failed_retryable'") == 2)
        followed = cli(service, "dlq", "replay", "--trigger", "sink", "--rate", "50")
    assert detached["status"] == "running"
    assert f"bulk replay {detached['id']} (sink, 0.2/s, by operator): running" in shown.stdout
    assert cancelled.exit_code == 0, cancelled.stderr
    assert "cancelled" in cancelled.stdout
    assert (again.exit_code, "not_running" in again.stderr) == (2, True)
    assert followed.exit_code == 0, followed.stderr
    assert "done: 1 of 2 replayed, 1 skipped" in followed.stdout
