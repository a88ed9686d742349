"""Liveness and readiness, unauthenticated: /readyz is 503 with a code when the schema is not at head."""

from __future__ import annotations

import httpx2

from support import run_service

CONFIG = "triggers: [{name: t, action: {kind: command, argv: ['true']}}]"


def test_ready_when_migrated_and_not_when_the_schema_falls_behind(db_url: str) -> None:
    with run_service(db_url, CONFIG) as service:
        assert httpx2.get(f"{service.url}/healthz").json() == {"status": "ok"}
        assert httpx2.get(f"{service.url}/readyz").json() == {"status": "ready"}
        service.state.db.write_sync(lambda c: c.exec_driver_sql("UPDATE alembic_version SET version_num = '0002'"))
        response = httpx2.get(f"{service.url}/readyz")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "schema_outdated"
        assert httpx2.get(f"{service.url}/healthz").status_code == 200  # alive all the same
