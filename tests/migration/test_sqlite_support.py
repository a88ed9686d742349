"""An SQLite library redrive cannot run on (older than 3.35, or built without the JSON functions) is refused at its
first connection with a sentence naming its version and what it lacks, before anything is written; ``redrive
migrate`` prints the sentence, not a traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from redrive.cli import app as cli
from redrive.db import engine
from redrive.db.migrate import upgrade
from redrive.errors import StorageUnsupported


@pytest.mark.parametrize(
    ("version", "has_json", "problem"),
    [
        ((3, 34, 1), True, "SQLite 3.34.1 is too old for redrive, which needs 3.35 or newer (RETURNING)"),
        ((3, 37, 2), False, "SQLite 3.37.2 was built without the JSON functions (json_each)"),
        ((3, 35, 0), True, None),
        ((3, 46, 1), True, None),
    ],
)
def test_which_sqlite_redrive_runs_on(version: tuple[int, int, int], has_json: bool, problem: str | None) -> None:
    found = engine.sqlite_problem(version, has_json)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)
        assert found.endswith("use a Python linked against a newer SQLite, or PostgreSQL")


def test_the_sqlite_at_hand_connects(tmp_path: Path) -> None:
    made = engine.make_engine(f"sqlite:///{tmp_path / 'here.db'}")
    try:
        with made.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM json_each('[1, 2]')").scalar_one() == 2
    finally:
        made.dispose()


def test_an_sqlite_too_old_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "SQLITE_NEEDED", (99, 0, 0))  # the library at hand is older than that
    database = tmp_path / "refused.db"
    url = f"sqlite:///{database}"
    with pytest.raises(StorageUnsupported) as refused:
        upgrade(url)
    assert refused.value.code == "storage_unsupported"
    assert f"SQLite {sqlite3.sqlite_version} is too old for redrive, which needs 99.0 or newer" in refused.value.message
    with sqlite3.connect(database) as raw:
        assert raw.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)

    result = CliRunner().invoke(cli, ["migrate"], env={"REDRIVE_DATABASE_URL": url})
    assert result.exit_code != 0
    assert "is too old for redrive" in result.output
    assert "Traceback" not in result.output
