"""``GET /api/v1/me``: the dashboard learns the token's role from it; documented with its 401."""

from __future__ import annotations

import httpx2

from support import run_service

CONFIG = "triggers: [{name: t, action: {kind: command, argv: ['true']}}]"


def test_me_names_the_token_and_its_role(db_url: str) -> None:
    with run_service(db_url, CONFIG, worker_concurrency=0) as service:
        for role in ("viewer", "operator", "admin"):
            answer = httpx2.get(f"{service.url}/api/v1/me", headers=service.auth(role), timeout=10)
            assert answer.status_code == 200
            assert answer.json() == {"name": role, "role": role}
        refused = httpx2.get(f"{service.url}/api/v1/me", timeout=10)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthenticated"
        documented = httpx2.get(f"{service.url}/openapi.json", timeout=10).json()["paths"]["/api/v1/me"]["get"]
        assert "401" in documented["responses"]
