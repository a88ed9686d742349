"""Fixtures shared by the integration tests of the queue and the destinations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from redrive.db.engine import make_engine


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """The service's write engine on the test's fresh database (a module may define its own ``engine`` instead)."""
    engine = make_engine(db_url, writer=True)
    yield engine
    engine.dispose()
