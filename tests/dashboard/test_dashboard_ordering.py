"""The dashboard's execution view states an ordered execution's key, its policy and the head that blocks it."""

from __future__ import annotations

from pathlib import Path

import httpx2
from dashboard_support import Seeded, shown, signed_in

from support import run_service, scalar, wait_until

CONFIG = """
triggers:
  - name: strict
    action: {kind: command, argv: [sh, -c, 'test "{{ payload.n }}" != 0']}
    ordering: {key: "{{ payload.customer.id }}", on_dead_letter: block}
"""


def test_the_execution_view_says_which_dead_head_blocks_an_ordered_execution(db_url: str, tmp_path: Path) -> None:
    with run_service(db_url, CONFIG) as service:

        def send(n: int) -> int:
            answer = httpx2.post(f"{service.url}/hooks/strict", json={"n": n, "customer": {"id": "c-9"}}, timeout=10)
            assert answer.status_code == 202, answer.text
            execution_id: int = answer.json()["execution_id"]
            return execution_id

        head = send(0)
        wait_until(lambda: scalar(db_url, f"SELECT status FROM executions WHERE id = {head}") == "failed")
        behind = send(1)
        at = signed_in(Seeded(service, tmp_path / "unused"), "viewer", page="executions")
        at.selectbox(key="execution_pick").select(behind).run()
        assert not at.exception, at.exception
        text = shown(at)
    assert "Ordered by key `c-9`" in text
    assert "blocks the key until it is replayed" in text
    assert f"blocked by dead-lettered execution #{head}" in text
