"""CLI tables are whole when piped: no id, code, time or message is cut, however narrow the terminal claims to be,
and ``--json`` is always there."""

from __future__ import annotations

import json

from pytest_httpserver import HTTPServer
from replay_support import dead_letter, rows, triggers_yaml
from typer.testing import CliRunner

from redrive.cli import app
from redrive.db.schema import executions
from support import run_service


def test_piped_tables_print_every_value_whole(db_url: str, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/sink").respond_with_data("down", status=503)
    with run_service(db_url, triggers_yaml(httpserver.url_for("/sink"))) as service:
        ids = dead_letter(service, db_url, 2)
        env = {"REDRIVE_URL": service.url, "REDRIVE_TOKEN": service.tokens["operator"], "COLUMNS": "30"}
        listed = CliRunner().invoke(app, ["executions", "ls"], env=env)
        dlq = CliRunner().invoke(app, ["dlq", "ls"], env=env)
        as_json = CliRunner().invoke(app, ["executions", "ls", "--json"], env=env)
    stored = {row.id: row for row in rows(db_url, executions)}

    assert listed.exit_code == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if line.split()[:1] in (["id"], *([str(i)] for i in ids))]
    assert lines[0].split() == ["id", "trigger", "status", "attempts", "code", "updated"]
    for line in lines[1:]:
        execution = stored[int(line.split()[0])]
        assert line.split() == [
            str(execution.id),
            "sink",
            "failed_retryable",
            "1",
            "http_503",
            execution.updated_at.isoformat(),
        ]
    assert dlq.exit_code == 0, dlq.stderr
    messages = [line for line in dlq.stdout.splitlines() if "http_503" in line]
    assert len(messages) == 2
    assert all(stored[ids[0]].error_message in line for line in messages), messages
    assert len(stored[ids[0]].error_message) > 30  # wider than the terminal claims to be
    assert {row["id"] for row in json.loads(as_json.stdout)} >= set(ids)
