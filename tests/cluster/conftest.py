"""Fixtures of the multi-process tests: PostgreSQL only (several processes need a shared server database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_support import CountingTarget


@pytest.fixture
def target() -> Iterator[CountingTarget]:
    """An HTTP target counting the idempotency keys it receives."""
    with CountingTarget() as counting:
        yield counting


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
