"""Fixtures local to the acceptance suite: a launcher for ``redrive up`` subprocesses and a slow command action."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from acceptance_support import SLOW_ACTION_SCRIPT, Launcher, SlowAction


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    """Starts ``redrive up`` in this test's directory; every process it started is killed at teardown."""
    launcher = Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture
def slow_action(tmp_path: Path) -> Iterator[SlowAction]:
    """A command action that notes its start and end in a marker file; runs left behind are killed at teardown."""
    script = tmp_path / "slow_action.py"
    script.write_text(SLOW_ACTION_SCRIPT, encoding="utf-8")
    action = SlowAction(script, tmp_path / "action.log")
    try:
        yield action
    finally:
        action.kill_leftovers()
