"""Unit tests for redrive.observe.logs: one JSON line per event with ``evt``, ``level`` and ``ts``, secrets masked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog
from sqlalchemy.exc import IntegrityError, OperationalError

from redrive.observe.logs import configure_logging, log_failure
from redrive.observe.redaction import REDACTED, Redactor

SECRET = "s3cr3t-api-key-value"


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines()]


def test_an_event_is_one_json_line_with_secrets_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", Redactor([SECRET]))
    structlog.get_logger().info(
        "evt_name", apikey="plain-header-value", url="https://alice:hunter22@h/x", note=f"sent {SECRET}", attempt=2
    )
    out = capsys.readouterr().out
    assert out.endswith("\n")
    assert out.count("\n") == 1
    for leaked in ("plain-header-value", "hunter22", SECRET):
        assert leaked not in out
    [line] = [json.loads(out)]
    assert line["evt"] == "evt_name"
    assert "event" not in line
    assert line["level"] == "info"
    assert datetime.fromisoformat(line["ts"]).tzinfo is not None
    assert line["ts"].endswith("Z")
    assert line["apikey"] == REDACTED
    assert line["url"] == f"https://alice:{REDACTED}@h/x"
    assert line["note"] == f"sent {REDACTED}"
    assert line["attempt"] == 2


def test_levels_below_the_configured_one_are_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning")
    log = structlog.get_logger()
    log.debug("evt_debug")
    log.info("evt_info")
    log.warning("evt_warning")
    log.error("evt_error")
    assert [(line["evt"], line["level"]) for line in lines(capsys)] == [
        ("evt_warning", "warning"),
        ("evt_error", "error"),
    ]


def test_debug_level_logs_everything(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug")
    structlog.get_logger().debug("evt_debug", n=1)
    [line] = lines(capsys)
    assert line.pop("ts")
    assert line == {"evt": "evt_debug", "level": "debug", "n": 1}


def test_nested_values_and_bound_context_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", Redactor([SECRET]))
    structlog.contextvars.bind_contextvars(trigger="whatsapp-notify", token="bound-token-value")
    structlog.get_logger().bind(password="bound-password").info(
        "execution_failed",
        headers={"Authorization": "Bearer abc", "content-type": "application/json"},
        argv=["curl", f"https://h/?api_key={SECRET}"],
    )
    out = capsys.readouterr().out
    assert "bound-token-value" not in out
    assert "bound-password" not in out
    assert "Bearer abc" not in out
    assert SECRET not in out
    line = json.loads(out)
    assert line["trigger"] == "whatsapp-notify"
    assert line["token"] == REDACTED
    assert line["password"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "content-type": "application/json"}
    assert line["argv"] == ["curl", f"https://h/?api_key={REDACTED}"]


def test_an_exception_is_formatted_and_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", Redactor([SECRET]))
    try:
        raise RuntimeError(f"could not call https://u:{SECRET}@h/ with {SECRET}")
    except RuntimeError:
        structlog.get_logger().exception("worker_crashed")
    out = capsys.readouterr().out
    assert SECRET not in out
    line = json.loads(out)
    assert line["evt"] == "worker_crashed"
    assert line["level"] == "error"
    assert "RuntimeError: could not call" in line["exception"]
    assert "Traceback" in line["exception"]


def test_an_unreachable_database_is_one_warning_line_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", Redactor([SECRET]))
    refused = psycopg.OperationalError(f'connection to server at "db" failed: Connection refused ({SECRET})\n')
    try:
        raise OperationalError("SELECT 1", {}, refused) from refused
    except OperationalError as exc:
        log_failure(structlog.get_logger(), "claim_failed", exc, worker="w1")
    line = json.loads(capsys.readouterr().out)
    assert line.pop("ts")
    assert line == {
        "evt": "claim_failed",
        "level": "warning",
        "worker": "w1",
        "error": f'connection to server at "db" failed: Connection refused ({REDACTED})',
    }


def test_any_other_failure_keeps_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    refused = psycopg.IntegrityError("duplicate key value violates unique constraint")
    try:
        raise IntegrityError("INSERT", {}, refused) from refused
    except IntegrityError as exc:
        log_failure(structlog.get_logger(), "claim_failed", exc)
    line = json.loads(capsys.readouterr().out)
    assert (line["evt"], line["level"]) == ("claim_failed", "error")
    assert "Traceback" in line["exception"]
    assert "duplicate key value" in line["exception"]


def test_values_json_cannot_hold_are_written_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    when = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
    structlog.get_logger().info("evt_types", when=when, path=Path("/tmp/x"), items={1, 2} - {1, 2})
    line = json.loads(capsys.readouterr().out)
    assert line["when"] == "2025-01-15T12:00:00Z"  # every time in a line is written as ts is
    assert line["path"] == "/tmp/x"
    assert line["items"] == "set()"


def test_without_a_redactor_secret_keys_and_urls_are_still_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    structlog.get_logger().info("evt_default", authorization="Bearer abc", dsn="postgresql://u:pw@db/app")
    line = json.loads(capsys.readouterr().out)
    assert line["authorization"] == REDACTED
    assert line["dsn"] == f"postgresql://u:{REDACTED}@db/app"


def test_the_line_writer_writes_every_line_in_order_and_all_of_them_by_close(tmp_path: Path) -> None:
    from redrive.observe.logs import LineWriter

    path = tmp_path / "log"
    with path.open("wb") as file:
        writer = LineWriter(file)
        for n in range(5000):
            writer.write(f"{n}\n".encode())
        writer.close()
        writer.write(b"after close\n")  # nobody writes it: the thread is gone, and nothing blocks
    assert path.read_bytes().decode().splitlines() == [str(n) for n in range(5000)]


def test_background_logging_reaches_stdout_once_the_writer_is_closed(capsys: pytest.CaptureFixture[str]) -> None:
    writer = configure_logging("info", Redactor([SECRET]), background=True)
    assert writer is not None
    structlog.get_logger().info("event_received", token=SECRET)
    writer.close()
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert line["evt"] == "event_received"
    assert line["token"] == REDACTED


def test_lines_are_written_in_pieces_a_pipe_takes_whole() -> None:
    from redrive.observe.logs import whole_lines

    lines = [b"a" * 1000 + b"\n", b"b" * 3000 + b"\n", b"c" * 5000 + b"\n", b"d\n", b"e\n"]
    chunks = list(whole_lines(lines, limit=4096))
    assert chunks == [lines[0] + lines[1], lines[2], lines[3] + lines[4]]  # a line too long goes alone
    assert b"".join(chunks) == b"".join(lines)
