"""Every operator action is audited with who did it and logged with a stable ``evt``: single replays, pauses and
resumes, error-group resolves and ignores (over the API, driven through the CLI), token creation and revocation
(the CLI, straight on the database, as the local OS user); ``redrive audit ls`` shows each target and a bulk
replay's filter, whole, when piped.
"""

from __future__ import annotations

import getpass
import json
from typing import Any

from pytest_httpserver import HTTPServer
from replay_support import dead_letter, rows, sink
from structlog.testing import capture_logs
from typer.testing import CliRunner, Result

from redrive.cli import app
from redrive.db.schema import audit_log, error_groups
from support import Service, run_service

LOCAL = f"local:{getpass.getuser()}"


def cli(service: Service, *args: str, role: str = "operator") -> Result:
    env = {"REDRIVE_URL": service.url, "REDRIVE_TOKEN": service.tokens[role], "COLUMNS": "40"}
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def audit_rows(db_url: str) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in rows(db_url, audit_log, order=audit_log.c.id)]


def test_api_actions_are_audited_with_their_actor_and_logged(db_url: str, httpserver: HTTPServer) -> None:
    answer, config = sink(httpserver)
    with run_service(db_url, config) as service:
        first, _ = dead_letter(service, db_url, 2)
        [fingerprint] = [row.fingerprint for row in rows(db_url, error_groups)]
        answer.status = 200
        with capture_logs() as logs:
            cli(service, "replay", str(first))
            cli(service, "triggers", "pause", "sink")
            cli(service, "triggers", "resume", "sink")
            cli(service, "errors", "resolve", fingerprint)
            cli(service, "errors", "ignore", fingerprint)
            cli(service, "dlq", "replay", "--trigger", "sink", "--code", "http_503", "--rate", "50")
        listed = cli(service, "audit", "ls", role="admin")
        as_json = json.loads(cli(service, "audit", "ls", "--json", role="admin").stdout)

    done = [(r["actor"], r["action"], r["target"], r["result"]) for r in audit_rows(db_url) if r["actor"] != "test"]
    assert done[:5] == [
        ("operator", "replay", f"execution:{first}", "ok"),
        ("operator", "trigger_pause", "trigger:sink", "ok"),
        ("operator", "trigger_resume", "trigger:sink", "ok"),
        ("operator", "error_group_resolve", f"error_group:{fingerprint}", "ok"),
        ("operator", "error_group_ignore", f"error_group:{fingerprint}", "ok"),
    ]
    assert ("operator", "bulk_replay") in [(actor, action) for actor, action, _, _ in done[5:]]

    events = [(entry["event"], entry.get("by")) for entry in logs]
    for evt in ("execution_replayed", "trigger_paused", "trigger_resumed", "error_group_resolved"):
        assert (evt, "operator") in events, events
    assert ("error_group_ignored", "operator") in events, events

    # Piped (CliRunner's stdout is no terminal): plain columns, each target and the bulk filter whole, at 40 columns.
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["id", "at", "actor", "action", "target", "result", "detail"]
    assert any(f"error_group:{fingerprint}" in line and "error_group_resolve" in line for line in lines)
    bulk = next(line for line in lines if " bulk_replay " in line)
    assert "filter: " in bulk, bulk
    assert "trigger=sink" in bulk, bulk
    assert "code=http_503" in bulk, bulk
    assert "rate 50/s" in bulk, bulk
    newest_first = [item["action"] for item in as_json["items"] if item["actor"] == "operator"]
    assert newest_first[-5:] == [
        "error_group_ignore",
        "error_group_resolve",
        "trigger_resume",
        "trigger_pause",
        "replay",
    ]


def test_token_commands_are_audited_as_the_local_user_and_logged(db_url: str) -> None:
    runner = CliRunner()
    env = {"REDRIVE_DATABASE_URL": db_url}
    with run_service(db_url, "triggers: []"):  # migrates the database
        pass
    created = runner.invoke(app, ["tokens", "create", "--name", "deploy-bot", "--role", "operator"], env=env)
    revoked = runner.invoke(app, ["tokens", "revoke", "deploy-bot"], env=env)
    missing = runner.invoke(app, ["tokens", "revoke", "nobody"], env=env)

    assert created.exit_code == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("rdv_")
    assert len(created.stdout.splitlines()) == 1  # the secret, alone on stdout
    assert revoked.exit_code == 0, revoked.stderr
    assert missing.exit_code == 2
    logged = [json.loads(line) for line in created.stderr.splitlines() + revoked.stderr.splitlines()]
    assert [(entry["evt"], entry["name"], entry["by"]) for entry in logged] == [
        ("token_created", "deploy-bot", LOCAL),
        ("token_revoked", "deploy-bot", LOCAL),
    ]
    assert secret not in created.stderr
    done = [(r["actor"], r["action"], r["target"], r["result"]) for r in audit_rows(db_url)]
    assert done[-2:] == [
        (LOCAL, "token_create", "token:deploy-bot", "ok"),
        (LOCAL, "token_revoke", "token:deploy-bot", "ok"),
    ]
    assert audit_rows(db_url)[-2]["detail"]["role"] == "operator"
    assert all(secret not in json.dumps(row["detail"]) for row in audit_rows(db_url))
