"""/readyz follows the database: 503 ``storage_unavailable`` while the PostgreSQL server is stopped, 200 again once
it is back, with no restart of redrive. The server is a throwaway cluster this test owns (initdb), not the shared
one; ingest refuses while it is down and accepts afterwards."""

from __future__ import annotations

import httpx2
import pytest
from owned_postgres import owned_postgres

from redrive.db.migrate import upgrade
from support import run_service, wait_until

pytestmark = pytest.mark.xdist_group("cluster")
CONFIG = "triggers: [{name: t, action: {kind: command, argv: ['true']}}]"


def test_readyz_flips_with_the_database_server() -> None:
    with owned_postgres() as server:
        upgrade(server.url())
        with run_service(server.url(), CONFIG) as service:
            assert httpx2.get(f"{service.url}/readyz").status_code == 200

            server.stop()
            down = httpx2.get(f"{service.url}/readyz", timeout=30)
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "storage_unavailable"
            refused = httpx2.post(f"{service.url}/hooks/t", json={"n": 1}, timeout=30)
            assert refused.status_code == 503
            assert httpx2.get(f"{service.url}/healthz").status_code == 200  # alive, just not ready

            server.start()
            wait_until(
                lambda: httpx2.get(f"{service.url}/readyz", timeout=30).status_code == 200,
                timeout=30,
                what="readiness after the server came back",
            )
            assert httpx2.post(f"{service.url}/hooks/t", json={"n": 2}, timeout=30).status_code == 202
