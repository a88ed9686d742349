"""Real data for the dashboard tests: a redrive service whose triggers produce succeeded, retried, dead-lettered and
permanently failed executions through real command actions, and AppTest driving the real dashboard script."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from streamlit.testing.v1 import AppTest

from redrive.dashboard import app as dashboard_app
from support import Service, wait_until

SCRIPT = Path(dashboard_app.__file__)
FLAKY_COUNT = 11  # more than the API's dlq_growing threshold (10)
SETTLED = ("succeeded", "failed", "failed_retryable")


def config_yaml(fix_file: Path, marks: Path) -> str:
    """Four triggers: ok (watermark 2), eventually (succeeds on its retry), flaky (exit 75 until ``fix_file``
    exists: dead-lettered after 2 attempts), broken (exit 1: failed for good); an alert rule on flaky's dead
    letters whose only channel nobody answers (so it keeps retrying)."""
    return f"""
triggers:
  - name: ok
    action: {{kind: command, argv: ["true"]}}
    limits: {{daily_watermark: 2}}
  - name: eventually
    action:
      kind: command
      argv: [sh, -c, 'test -e {marks}/m{{{{ payload.n }}}} && exit 0; touch {marks}/m{{{{ payload.n }}}}; exit 75']
    retry: {{max_attempts: 3, base: 10ms, jitter: none}}
  - name: flaky
    action: {{kind: command, argv: [sh, -c, 'test -e {fix_file} || exit 75'], env: {{API_TOKEN: s3cr3t-in-config}}}}
    retry: {{max_attempts: 2, base: 10ms, jitter: none}}
  - name: broken
    action: {{kind: command, argv: ["false"]}}
alerts:
  - {{name: flaky-dead-letters, when: {{dlq_size: ">= 10"}}, triggers: [flaky], notify: [nowhere]}}
channels:
  - {{name: nowhere, kind: webhook, url: "http://127.0.0.1:9/alerts", allow_private: true}}
"""


@dataclass
class Seeded:
    """A running service with known data, and the file that fixes the flaky trigger."""

    service: Service
    fix_file: Path

    def api(self, path: str, role: str = "admin", **params: Any) -> Any:
        response = httpx2.get(f"{self.service.url}{path}", params=params, headers=self.service.auth(role), timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, role: str = "admin", **body: Any) -> Any:
        response = httpx2.post(f"{self.service.url}{path}", json=body, headers=self.service.auth(role), timeout=10)
        assert response.status_code < 300, response.text
        return response.json()

    def settled(self) -> bool:
        items = self.api("/api/v1/executions", limit=500)["items"]
        return all(e["status"] in SETTLED for e in items)

    def dead_letters(self) -> list[dict[str, Any]]:
        return list(self.api("/api/v1/executions", status="failed_retryable", limit=500)["items"])


def seed(service: Service, fix_file: Path) -> Seeded:
    """Send the events and wait until every execution has settled."""
    sends = [("ok", 3), ("eventually", 1), ("flaky", FLAKY_COUNT), ("broken", 1)]
    n = 0
    for trigger, count in sends:
        for _ in range(count):
            n += 1
            response = httpx2.post(f"{service.url}/hooks/{trigger}", json={"n": n, "password": "hunter2"}, timeout=10)
            assert response.status_code == 202, response.text
    seeded = Seeded(service, fix_file)
    wait_until(seeded.settled, timeout=60, interval=0.2, what="every seeded execution to settle")
    return seeded


def signed_in(seeded: Seeded, role: str = "admin", page: str | None = None) -> AppTest:
    """The dashboard with this service's API, signed in through the real form with a token of ``role``."""
    at = AppTest.from_file(SCRIPT, default_timeout=30)
    at.session_state["redrive_api_url"] = seeded.service.url
    at.run()
    at.text_input(key="token_input").input(seeded.service.tokens[role])
    at.button[0].click().run()
    assert not at.exception, at.exception
    if page is not None:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, at.exception
    return at


def shown(at: AppTest) -> str:
    """Every text the run drew, for assertions about messages."""
    parts = [
        e.value for kind in ("markdown", "caption", "error", "warning", "success", "info") for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)
