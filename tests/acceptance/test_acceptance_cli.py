"""The ``redrive`` command as a user runs it: ``send`` and ``executions`` against a real ``redrive up`` over HTTP,
``config check``, ``up`` refusing a bad configuration, and ``migrate``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from acceptance_support import (
    WIDE,
    Launcher,
    command_trigger,
    describe,
    free_port,
    http_get,
    run_cli,
    run_cli_concurrently,
    write_config,
)

from redrive.db.migrate import head_revision
from support import query, scalar, wait_until

pytestmark = pytest.mark.acceptance

UNSET_VAR = "REDRIVE_ACCEPTANCE_SURELY_UNSET"
SCHEMA_TABLES = {"alembic_version", "triggers", "events", "executions", "attempts", "daily_counters"}


def decoded(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a CLI command that must succeed printed."""
    assert result.returncode == 0, describe(result)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"stdout is not JSON ({exc})\n{describe(result)}") from None


def as_json(value: Any) -> Any:
    """A JSON column read with plain SQL: SQLite gives its text, PostgreSQL the decoded value."""
    return json.loads(value) if isinstance(value, str) else value


def test_cli_sends_and_inspects_over_http(db_url: str, launcher: Launcher, tmp_path: Path) -> None:
    config = write_config(tmp_path, [command_trigger("quick", [sys.executable, "-c", "print('ok')"])])
    server = launcher.start(config, db_url)
    assert server.token, f"no admin token was saved on the first start\n{server.logs()}"
    remote = ["--url", server.url, "--token", server.token]
    from_env = {"REDRIVE_URL": server.url, "REDRIVE_TOKEN": server.token}
    event_file = tmp_path / "event.json"
    event_file.write_text('{"messageId": "k2", "x": 2}', encoding="utf-8")

    first = decoded(run_cli("send", "quick", "--data", '{"messageId":"k1","x":1}', *remote, "--json", cwd=tmp_path))
    assert isinstance(first, dict)
    assert first["duplicate"] is False
    assert isinstance(first["event_id"], int)
    assert isinstance(first["execution_id"], int)

    # Independent commands run side by side: each one imports redrive, which is most of its cost.
    again, from_file = run_cli_concurrently(
        (["send", "quick", "--data", '{"messageId":"k1","x":1}', *remote, "--json"], None),
        (["send", "quick", "--data", f"@{event_file}", *remote, "--json"], None),
        cwd=tmp_path,
    )
    assert decoded(again) == {**first, "duplicate": True}
    second = decoded(from_file)
    assert second["duplicate"] is False
    assert second["execution_id"] != first["execution_id"]
    assert second["event_id"] != first["event_id"]

    ids = {first["execution_id"], second["execution_id"]}
    wait_until(
        lambda: {row.id for row in query(db_url, "SELECT id FROM executions WHERE status = 'succeeded'")} == ids,
        timeout=15,
        what="both executions to succeed",
        context=server.logs,
    )
    payloads = [as_json(row.payload) for row in query(db_url, "SELECT payload FROM events ORDER BY id")]
    assert payloads == [{"messageId": "k1", "x": 1}, {"messageId": "k2", "x": 2}]

    listed, shown, listed_via_env, resent_via_env, unknown = run_cli_concurrently(
        (["executions", "ls", "--json", *remote], None),
        (["executions", "show", str(first["execution_id"]), "--json", *remote], None),
        (["executions", "ls", "--json"], from_env),  # REDRIVE_URL (and REDRIVE_TOKEN) instead of the options
        (["send", "quick", "--data", '{"messageId":"k1","x":1}', "--json"], from_env),
        (["send", "no-such-trigger", "--data", "{}", *remote], None),
        cwd=tmp_path,
    )

    rows = decoded(listed)
    assert isinstance(rows, list)
    assert {row["id"] for row in rows} == ids
    for row in rows:
        assert row["trigger"] == "quick"
        assert row["status"] == "succeeded"
        assert row["attempt_count"] == 1

    execution = decoded(shown)
    assert isinstance(execution, dict)
    assert execution["id"] == first["execution_id"]
    assert execution["trigger"] == "quick"
    assert execution["status"] == "succeeded"
    assert execution["attempt_count"] == 1
    assert isinstance(execution["attempts"], list)
    [attempt] = execution["attempts"]
    assert attempt["number"] == 1
    assert attempt["outcome"] == "succeeded"
    assert attempt["error_code"] is None
    assert attempt["duration_ms"] >= 0
    assert attempt["detail"]["exit_code"] == 0
    assert execution["event"]["payload"] == {"messageId": "k1", "x": 1}

    assert decoded(listed_via_env) == rows
    assert decoded(resent_via_env) == {**first, "duplicate": True}

    assert unknown.returncode != 0, describe(unknown)
    assert "unknown_trigger" in unknown.stderr, describe(unknown)
    assert scalar(db_url, "SELECT count(*) FROM events") == 2
    assert scalar(db_url, "SELECT count(*) FROM executions") == 2


def test_cli_error_messages_are_printed_verbatim(tmp_path: Path) -> None:
    missing = tmp_path / "missing-[/x]-[bold].json"
    result = run_cli("send", "quick", "--data", f"@{missing}", "--url", "http://127.0.0.1:9", cwd=tmp_path)
    assert result.returncode == 2, describe(result)
    assert f"cannot read {missing}" in result.stderr, describe(result)
    assert "Traceback" not in result.stderr, describe(result)

    unreachable = run_cli("executions", "ls", "--url", f"http://127.0.0.1:{free_port()}", cwd=tmp_path)
    assert unreachable.returncode == 2, describe(unreachable)
    assert "unreachable" in unreachable.stderr, describe(unreachable)


BAD_CONFIG = {
    "triggers": [
        {"name": "fine", "action": {"kind": "command", "argv": ["true"]}},
        {
            "name": "Bad Name!",
            "action": {"kind": "http", "url": f"https://example.com/${{{UNSET_VAR}}}", "timeout": "ten seconds"},
        },
        {"name": "pigeon", "action": {"kind": "carrier-pigeon"}},
        {"name": "sneaky", "action": {"kind": "command", "argv": ["echo", "{{ ''.__class__ }}"]}},
    ]
}
BAD_CONFIG_PROBLEMS = {
    "triggers[1] (Bad Name!).name": "",
    "triggers[1] (Bad Name!).action.url": UNSET_VAR,
    "triggers[1] (Bad Name!).action.timeout": "ten seconds",
    "triggers[2] (pigeon).action": "carrier-pigeon",
    "triggers[3] (sneaky).action.argv[1]": "__class__",
}


def problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("✗")]


def test_config_check_lists_every_problem_with_file_and_path(tmp_path: Path) -> None:
    assert UNSET_VAR not in os.environ
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps(BAD_CONFIG), encoding="utf-8")

    result = run_cli("config", "check", str(bad), cwd=tmp_path, env=WIDE)

    assert result.returncode == 2, describe(result)
    lines = problem_lines(result.stderr)
    assert len(lines) == len(BAD_CONFIG_PROBLEMS), describe(result)
    for path, detail in BAD_CONFIG_PROBLEMS.items():
        matching = [line for line in lines if line.startswith(f"✗ {bad}: {path}: ")]
        assert len(matching) == 1, f"{path}: expected one problem line\n{describe(result)}"
        assert detail in matching[0], describe(result)
    assert f"{len(BAD_CONFIG_PROBLEMS)} problem(s) in {bad}" in result.stderr, describe(result)
    assert "nothing was started" not in result.stderr, describe(result)  # a check starts nothing anyway


def test_config_check_accepts_a_good_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        f"""\
triggers:
  - name: notify-http
    source:
      filter: "payload.event == 'order.paid'"
    action:
      kind: http
      url: "https://example.com/orders/{{{{ payload.id }}}}"
      headers:
        Authorization: "Bearer ${{GOOD_SECRET}}"
      json: {{order: "{{{{ payload.id }}}}"}}
      timeout: 250ms
    retry: {{max_attempts: 3, base: 1s, max_delay: 10m}}
  - name: run-command
    action:
      kind: command
      argv: ["{sys.executable}", "-c", "print(1)", "{{{{ payload.n }}}}"]
      timeout: 2m
  - name: send-mail
    action:
      kind: email
      smtp: {{host: 127.0.0.1, port: 2525}}
      from: redrive@example.com
      to: ops@example.com
      subject: "order {{{{ payload.id }}}}"
      text: "paid"
""",
        encoding="utf-8",
    )
    result = run_cli("config", "check", str(good), cwd=tmp_path, env={**WIDE, "GOOD_SECRET": "s3cr3t-value"})
    assert result.returncode == 0, describe(result)
    assert "no problems in 3 trigger(s) (notify-http, run-command, send-mail); checked: " in result.stdout, describe(
        result
    )


def test_config_check_prints_a_good_file_path_verbatim(tmp_path: Path) -> None:
    directory = tmp_path / "configs-[bold]-[red]"
    directory.mkdir()
    good = write_config(directory, [command_trigger("fine", ["true"])])
    result = run_cli("config", "check", str(good), cwd=tmp_path, env=WIDE)
    assert result.returncode == 0, describe(result)
    assert f"{good}: no problems in 1 trigger(s) (fine)" in result.stdout, describe(result)


def test_up_names_the_admin_token_file_verbatim(launcher: Launcher, tmp_path: Path) -> None:
    # The first start names the admin token file (next to the SQLite file) on stderr.
    directory = tmp_path / "data-[bold]-[red]"
    directory.mkdir()
    config = write_config(tmp_path, [command_trigger("fine", ["true"])])
    server = launcher.start(config, f"sqlite:///{directory / 'redrive.db'}")
    assert (directory / "redrive-admin-token").exists(), server.logs()
    assert str(directory / "redrive-admin-token") in server.stderr.read_text(encoding="utf-8"), server.logs()
    # Logged and audited like any token creation, with the start itself as the actor; never the secret.
    created = [line for line in server.stdout.read_text(encoding="utf-8").splitlines() if '"token_created"' in line]
    assert len(created) == 1, server.logs()
    assert json.loads(created[0])["by"] == "redrive (first start)", server.logs()
    assert (directory / "redrive-admin-token").read_text(encoding="utf-8").strip() not in created[0]


def test_config_problems_are_printed_verbatim_one_per_line(tmp_path: Path) -> None:
    # No COLUMNS: what a CI log or a pipe gets. The path is longer than 80 columns on purpose.
    directory = tmp_path / ("a-directory-with-a-long-name-" * 3)
    directory.mkdir()
    bad = directory / "bad.yaml"
    bad.write_text(
        json.dumps(
            {
                "triggers": [
                    {"name": "Bad Name!", "action": {"kind": "command", "argv": ["true"]}},
                    {"name": "ok", "action": {"kind": "command", "argv": ["true"], "timeout": "[/x] :smile:"}},
                ]
            }
        ),
        encoding="utf-8",
    )

    result = run_cli("config", "check", str(bad), cwd=tmp_path)

    assert result.returncode == 2, describe(result)
    lines = problem_lines(result.stderr)
    assert len(lines) == 2, describe(result)
    assert lines[0].startswith(f"✗ {bad}: triggers[0] (Bad Name!).name: "), describe(result)
    assert "^[a-z0-9_-]{1,64}$" in lines[0], describe(result)
    assert lines[1].startswith(f"✗ {bad}: triggers[1] (ok).action.timeout: "), describe(result)
    assert "'[/x] :smile:' is not a duration" in lines[1], describe(result)


@pytest.mark.parametrize(
    ("case", "env", "expected"),
    [
        ("config", {}, "triggers[0] (t).action.timeout"),
        ("settings", {"REDRIVE_LEASE_SECONDS": "0.5"}, "REDRIVE_LEASE_SECONDS"),
    ],
)
def test_up_refuses_a_bad_configuration(
    launcher: Launcher, tmp_path: Path, case: str, env: dict[str, str], expected: str
) -> None:
    timeout = "forever" if case == "config" else "5s"
    config = write_config(
        tmp_path, [{"name": "t", "action": {"kind": "command", "argv": ["true"], "timeout": timeout}}]
    )
    database = tmp_path / "never.db"
    port = free_port()
    server = launcher.popen(config, port, {"REDRIVE_DATABASE_URL": f"sqlite:///{database}", **env})

    answered = []
    deadline = time.monotonic() + 30
    while server.process.poll() is None and time.monotonic() < deadline:
        if http_get(f"{server.url}/healthz", timeout=0.5) is not None:
            answered.append(True)
        time.sleep(0.1)
    code = server.wait(1)

    assert code is not None, f"`redrive up` with a bad {case} kept running\n{server.logs()}"
    assert code == 2, server.logs()
    assert not answered, f"the port answered although the {case} is bad\n{server.logs()}"
    stderr = server.stderr.read_text(encoding="utf-8")
    assert expected in stderr, server.logs()
    if case == "config":
        assert "nothing was started" in stderr, server.logs()
    assert not database.exists(), "the database was created although nothing may start"
    assert launcher.admin_token() is None, "an admin token was created although nothing may start"


def sqlite_schema(path: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()


def test_migrate_creates_the_schema_on_an_empty_sqlite_file(tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"
    env = {"REDRIVE_DATABASE_URL": f"sqlite:///{database}"}

    first = run_cli("migrate", cwd=tmp_path, env=env)
    assert first.returncode == 0, describe(first)
    schema = sqlite_schema(database)
    tables = {name for kind, name, _ in schema if kind == "table"}
    assert tables >= SCHEMA_TABLES, schema
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]

    second = run_cli("migrate", cwd=tmp_path, env=env)
    assert second.returncode == 0, describe(second)
    assert sqlite_schema(database) == schema
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]


def test_migrate_is_a_no_op_on_a_migrated_database(db_url: str, tmp_path: Path) -> None:
    result = run_cli("migrate", cwd=tmp_path, env={"REDRIVE_DATABASE_URL": db_url})
    assert result.returncode == 0, describe(result)
    assert "newest schema" in result.stdout, describe(result)
    assert [tuple(row) for row in query(db_url, "SELECT version_num FROM alembic_version")] == [(head_revision(),)]
