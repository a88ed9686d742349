"""The ``redrive`` command starts light: importing it (all that ``--help`` needs) loads no web stack, dashboard,
database or outbound HTTP library; each command imports those when it runs. A behaviour test, not a timing test:
``benchmarks/cli_startup.py`` gives the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("fastapi", "uvicorn", "starlette", "streamlit", "sqlalchemy", "alembic", "aiohttp", "jinja2", "psycopg")


def modules_loaded_by(code: str) -> set[str]:
    """The top-level packages in sys.modules after running ``code`` in a fresh interpreter, with no installed plugin
    let in (``redrive --help`` asks the installed plugins for their commands: what they import is theirs)."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{name.split('.')[0] for name in sys.modules}})))"
    env = {**os.environ, "REDRIVE_PLUGINS": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_package() -> None:
    loaded = modules_loaded_by("import redrive.cli")
    assert "typer" in loaded  # the probe sees what was imported
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("args", [["--help"], ["executions", "--help"], ["stats", "--help"], ["up", "--help"]])
def test_help_loads_no_heavy_package(args: list[str]) -> None:
    lines = ["import sys", f"sys.argv = ['redrive', *{args!r}]", "from redrive.cli import main"]
    code = "\n".join([*lines, "try: main()", "except SystemExit: pass"])
    loaded = modules_loaded_by(code)
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
