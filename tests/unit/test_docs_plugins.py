"""Docs tests for the README's Plugins section: every hook of ``hookspecs.py`` is documented there, and the example
plugin stays short (``tests/integration/test_readme_plugin.py`` runs it against a real redrive)."""

from __future__ import annotations

import inspect
import re

import pytest

import redrive.hookspecs
from readme_blocks import example_plugin, plugins_section

HOOKS = sorted(
    name
    for name, function in inspect.getmembers(redrive.hookspecs, inspect.isfunction)
    if hasattr(function, f"{redrive.hookspecs.PROJECT}_spec")
)


def test_hookspecs_has_hooks() -> None:
    assert len(HOOKS) >= 10
    assert "redrive_execution_dead_lettered" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_in_the_plugins_section(hook: str) -> None:
    # A table row of its own: the hook's name in backticks, then what a plugin does with it.
    assert re.search(rf"^\| `{hook}` \| \S.*\|$", plugins_section(), re.MULTILINE), f"{hook} has no row in ## Plugins"


def test_the_section_says_how_plugins_are_found() -> None:
    section = plugins_section()
    for needle in ("entry-points.redrive", "REDRIVE_PLUGINS", "redrive plugins ls", "plugin_hook_failed"):
        assert needle in section


def test_the_example_plugin_is_complete_and_under_40_lines() -> None:
    code = example_plugin()
    assert len(code.splitlines()) < 40
    compile(code, "failure_log.py", "exec")
    assert "@hookimpl" in code
