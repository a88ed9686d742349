"""Installed plugins through the real CLI: a distribution on the path with a ``redrive`` entry point is loaded,
listed with its version, adds its command and its action kind; one that fails to import stops the CLI with one
line (exit 2); REDRIVE_PLUGINS restricts what loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import redrive

REDRIVE = [sys.executable, "-c", "from redrive.cli import main; main()"]

TICK = """
from typing import Literal

from pydantic import Field

import redrive
from redrive.triggers.fields import StrictModel


class TickAction(StrictModel):
    kind: Literal["tick"]
    every: int = Field(ge=1)


@redrive.hookimpl
def redrive_action_kinds():
    return [redrive.ActionKind("tick", TickAction, lambda config: None, lambda rendered: "tick")]


@redrive.hookimpl
def redrive_cli_commands(cli):
    @cli.command("tick-hello")
    def hello() -> None:
        print("tick says hello")
"""


def distribution(root: Path, name: str, version: str, entry: str, code: str) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(code, encoding="utf-8")
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[redrive]\n{entry} = {name}\n", encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    distribution(root, "tickplug", "1.2.3", "tick", TICK)
    distribution(root, "brokenplug", "0.1.0", "broken", "raise RuntimeError('SLACK_TOKEN is not set')\n")
    return root


def cli(site: Path, *args: str, plugins: str | None = "tick") -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDRIVE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    if plugins is not None:
        env["REDRIVE_PLUGINS"] = plugins
    return subprocess.run([*REDRIVE, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def test_plugins_ls_shows_each_plugin_its_version_and_its_hooks(site: Path) -> None:
    result = cli(site, "plugins", "ls", "--json")
    assert result.returncode == 0, result.stderr
    listed = {item["name"]: item for item in json.loads(result.stdout)}
    assert listed["tick"] == {
        "name": "tick",
        "version": "1.2.3",
        "hooks": ["redrive_action_kinds", "redrive_cli_commands"],
        "builtin": False,
    }
    assert listed["redrive.ingest.signatures"]["version"] == redrive.__version__
    assert "broken" not in listed
    table = cli(site, "plugins", "ls")
    assert "tick" in table.stdout
    assert "1.2.3" in table.stdout


def test_a_plugin_that_fails_to_import_stops_the_cli_with_one_line(site: Path) -> None:
    result = cli(site, "plugins", "ls", plugins=None)  # every installed plugin: the broken one too
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: plugin 'broken' (brokenplug) failed to load: RuntimeError: SLACK_TOKEN is not set"
    ]
    assert result.stdout == ""


def test_redrive_plugins_empty_loads_only_the_built_ins(site: Path) -> None:
    result = cli(site, "plugins", "ls", "--json", plugins="")
    assert result.returncode == 0, result.stderr
    assert all(item["builtin"] for item in json.loads(result.stdout))


def test_a_plugin_adds_its_command(site: Path) -> None:
    result = cli(site, "tick-hello")
    assert (result.returncode, result.stdout) == (0, "tick says hello\n")


def test_config_check_validates_an_installed_plugin_kind(site: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("triggers: [{name: t, action: {kind: tick, every: 5}}]", encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("triggers: [{name: t, action: {kind: tick, every: 0}}]", encoding="utf-8")
    checked = cli(site, "config", "check", str(good))
    assert checked.returncode == 0, checked.stderr
    refused = cli(site, "config", "check", str(bad))
    assert refused.returncode == 2
    assert f"{bad}: triggers[0].action.every: Input should be greater than or equal to 1" in refused.stderr
    unknown = cli(site, "config", "check", str(good), plugins="")
    assert unknown.returncode == 2
    assert "triggers[0].action" in unknown.stderr
