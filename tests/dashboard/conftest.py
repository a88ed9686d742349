"""One seeded redrive service per database for the dashboard tests (module-scoped: seeding runs real processes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dashboard_support import Seeded, config_yaml, seed

from databases import fresh_database
from support import run_service


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh migrated database for one test module: an SQLite file, then a PostgreSQL database."""
    yield from fresh_database(request, request.param, tmp_path_factory.mktemp("dashboard"))


@pytest.fixture(scope="module")
def seeded(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """A service with succeeded, retried, dead-lettered and permanently failed executions."""
    folder = tmp_path_factory.mktemp("seeded")
    (folder / "marks").mkdir()
    fix_file = folder / "fixed"
    with run_service(module_db_url, config_yaml(fix_file, folder / "marks"), alert_interval=0.2) as service:
        yield seed(service, fix_file)
