"""Every dashboard page in Debian's Chromium against a real ``redrive up``: an error group opens to its executions,
two selected dead letters are replayed and leave the queue, and the System page charts the metrics history.

With ``REDRIVE_SCREENSHOTS=<folder>`` the test also saves each page at 1400 px wide there; the README's are made by
``REDRIVE_SCREENSHOTS=docs .venv/bin/pytest -n0 tests/e2e/test_dashboard_pages_browser.py``.
"""

from __future__ import annotations

import math
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from test_dashboard_browser import CHROMIUM, Running, redrive_up  # noqa: F401 (the fixture)

from support import wait_until

pytestmark = pytest.mark.e2e
WIDTH = 1400
TIMEOUT = 30_000


def seed_history(db_file: Path, now: datetime) -> None:
    """An hour of per-minute samples before the leader's own (written straight into the real database file)."""
    rows = []
    for minute in range(2, 62):
        at = (now - timedelta(minutes=minute)).replace(second=0, microsecond=0, tzinfo=None)
        wave = 1 + math.sin(minute / 6)  # a calm, plausible hour: 0 to 2
        rows.append(
            (
                at.isoformat(" ", "microseconds"),
                round(4 * wave),
                round(9.0 * wave, 1),
                4 + minute // 20,
                30,
                round(3 * wave),
            )
        )
    with sqlite3.connect(db_file) as connection:
        connection.executemany(
            "INSERT INTO metrics_history (at, queue_depth, oldest_pending_age_seconds, dlq_size, attempts, "
            "failed_attempts) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


def snap(page: Any, name: str) -> None:
    """Save the page at ``WIDTH`` when screenshots are asked for."""
    folder = os.environ.get("REDRIVE_SCREENSHOTS")
    if folder:
        page.wait_for_timeout(1500)  # let the charts finish drawing (a screenshot, not an assertion, waits here)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def nav(page: Any, title: str) -> None:
    """Open a page from the sidebar."""
    page.get_by_test_id("stSidebarNavItems").get_by_role("link", name=title).click()


def click_row(page: Any, table: Any, index: int) -> None:
    """Tick a row's selection box in a Streamlit dataframe (a canvas grid: 35 px header, 35 px rows)."""
    box = table.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 18, box["y"] + 35 + 35 * index + 17)


def test_drill_down_selected_replay_and_system_charts(redrive_up: Running, tmp_path: Path) -> None:  # noqa: F811
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    for n in range(6):
        httpx2.post(f"{redrive_up.url}/hooks/welcome", json={"user": n}, timeout=10).raise_for_status()
    orders = [
        httpx2.post(f"{redrive_up.url}/hooks/orders", json={"order": f"A-{n}"}, timeout=10).json()["execution_id"]
        for n in range(4)
    ]
    wait_until(
        lambda: redrive_up.get("/api/v1/stats")["dlq_size"] == len(orders),
        timeout=30,
        what="every order to be dead-lettered",
    )
    seed_history(tmp_path / "redrive.db", datetime.now(UTC))
    [group] = redrive_up.get("/api/v1/error-groups")["items"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 1600})
            page.goto(f"{redrive_up.url}/ui/")
            page.get_by_label("API token").fill(redrive_up.token)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_test_id("stMetric").filter(has_text="Dead letters")).to_contain_text(
                "4", timeout=TIMEOUT
            )
            expect(page.get_by_test_id("stVegaLiteChart").locator("canvas, svg").first).to_be_visible(timeout=TIMEOUT)
            snap(page, "overview")

            # An error group opens to its executions.
            nav(page, "Error groups")
            link = page.locator(f'a[href*="fingerprint={group["fingerprint"]}"]').filter(has_text="Its executions")
            expect(link).to_be_visible(timeout=TIMEOUT)
            snap(page, "error-groups")
            link.click()
            expect(page.get_by_text(f"Executions of error group {group['title']}")).to_be_visible(timeout=TIMEOUT)
            expect(page.get_by_text("4 execution(s), newest first")).to_be_visible(timeout=TIMEOUT)
            assert f"fingerprint={group['fingerprint']}" in page.url
            snap(page, "executions")

            # Two selected dead letters are replayed (after the fix) and leave the queue.
            redrive_up.fix_file.touch()
            nav(page, "Dead letters")
            expect(page.get_by_text("Page 1: 4 dead letter(s)")).to_be_visible(timeout=TIMEOUT)
            table = page.get_by_test_id("stDataFrame").first
            expect(table).to_be_visible(timeout=TIMEOUT)
            click_row(page, table, 0)
            expect(page.get_by_role("button", name="Replay selected (1)")).to_be_visible(timeout=TIMEOUT)
            click_row(page, table, 1)
            replay = page.get_by_role("button", name="Replay selected (2)")
            expect(replay).to_be_enabled(timeout=TIMEOUT)
            snap(page, "dead-letters")
            replay.click()
            newest = sorted(orders, reverse=True)[:2]
            for execution_id in newest:
                expect(page.get_by_text(f"#{execution_id} → new execution #")).to_be_visible(timeout=TIMEOUT)
            wait_until(
                lambda: redrive_up.get("/api/v1/stats")["dlq_size"] == 2, timeout=30, what="two dead letters to go"
            )
            assert {redrive_up.get(f"/api/v1/executions/{i}")["status"] for i in newest} == {"replayed"}
            expect(page.get_by_text("Page 1: 2 dead letter(s)")).to_be_visible(timeout=TIMEOUT)

            nav(page, "Triggers")
            expect(page.get_by_text("events today").first).to_be_visible(timeout=TIMEOUT)
            snap(page, "triggers")

            # The System page: badges, the nodes table and four charts drawn from the history.
            nav(page, "System")
            expect(page.get_by_text("healthz: ok")).to_be_visible(timeout=TIMEOUT)
            expect(page.get_by_text("readyz: ready")).to_be_visible(timeout=TIMEOUT)
            charts = page.get_by_test_id("stVegaLiteChart")
            expect(charts).to_have_count(4, timeout=TIMEOUT)
            for index in range(4):
                expect(charts.nth(index).locator("canvas, svg").first).to_be_visible(timeout=TIMEOUT)
            expect(page.get_by_text("{'status'")).to_have_count(0)
            snap(page, "system")
        finally:
            browser.close()
