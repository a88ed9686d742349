"""The CLI's shared pieces: where it finds the server, the trigger file's default, plain tables for pipes."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from redrive.cli import app
from redrive.cli.common import DEFAULT_CONFIG, resolve_url, server_url
from redrive.cli.output import plain_table
from redrive.settings import Settings


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 8000, "http://127.0.0.1:8000"),
        ("0.0.0.0", 18000, "http://127.0.0.1:18000"),  # a wildcard bind is reached on loopback
        ("::", 9000, "http://127.0.0.1:9000"),
        ("::1", 9000, "http://[::1]:9000"),
        ("redrive.internal", 80, "http://redrive.internal:80"),
    ],
)
def test_server_url(host: str, port: int, url: str) -> None:
    assert server_url(host, port) == url


def test_the_default_url_follows_the_server_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDRIVE_HOST", raising=False)
    monkeypatch.setenv("REDRIVE_PORT", "18000")
    assert resolve_url(None) == "http://127.0.0.1:18000"
    assert resolve_url("http://elsewhere:1") == "http://elsewhere:1"  # --url / REDRIVE_URL win
    monkeypatch.delenv("REDRIVE_PORT")
    assert resolve_url(None) == "http://127.0.0.1:8000"


def test_the_cli_shows_the_settings_default_trigger_file() -> None:
    assert Settings.model_fields["config"].default == DEFAULT_CONFIG


def test_a_plain_table_keeps_every_value_whole_and_aligned() -> None:
    long_code = "connection_refused_" + "x" * 150
    text = plain_table(("id", "code", "at"), [("1", long_code, "2026-12-02T08:00:00+00:00"), ("22", "", "a\nb")])
    assert text.splitlines() == [
        "id  code" + " " * (len(long_code) - 2) + "at",
        f"1   {long_code}  2026-12-02T08:00:00+00:00",
        "22  " + " " * len(long_code) + "  a b",  # a line break in a value would split the row: it becomes a space
    ]


@pytest.mark.parametrize("command", ["up", "serve", "worker", "purge"])
def test_help_shows_the_real_default_trigger_file(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "[env var: REDRIVE_CONFIG; default: redrive.yaml]" in " ".join(result.output.split())
