"""`redrive --version` prints the installed package's version (the one pyproject.toml declares)."""

from __future__ import annotations

from importlib.metadata import version

from typer.testing import CliRunner

from redrive.cli import app as cli


def test_version_option_prints_the_package_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"redrive {version('redrive')}\n"
