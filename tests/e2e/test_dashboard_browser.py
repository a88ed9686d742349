"""The dashboard in a real headless Chromium (Debian's, driven by Playwright), served by a real ``redrive up``: sign in,
see the failure badge, open a dead-lettered execution, fix its cause, replay it and watch it succeed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from support import wait_until

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
REDRIVE = [str(Path(sys.executable).with_name("redrive"))]


@dataclass
class Running:
    url: str
    token: str
    fix_file: Path

    def get(self, path: str) -> dict:
        answer = httpx2.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redrive_up(tmp_path: Path) -> Iterator[Running]:
    """``redrive up`` on SQLite with a trigger that dead-letters until its fix file exists."""
    fix_file = tmp_path / "fixed"
    config = tmp_path / "redrive.yaml"
    config.write_text(
        "triggers:\n"
        "  - name: orders\n"
        f"    action: {{kind: command, argv: [sh, -c, 'test -e {fix_file} || exit 75']}}\n"
        "    retry: {max_attempts: 1}\n"
        "  - name: welcome\n"
        "    action: {kind: command, argv: ['true']}\n",
        encoding="utf-8",
    )
    port = _free_port()
    env = {**os.environ, "REDRIVE_DATABASE_URL": f"sqlite:///{tmp_path / 'redrive.db'}", "REDRIVE_POLL_INTERVAL": "0.2"}
    env.pop("REDRIVE_DASHBOARD_API", None)
    log = (tmp_path / "redrive.log").open("wb")
    process = subprocess.Popen(
        [*REDRIVE, "up", "--config", str(config), "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, (tmp_path / "redrive.log").read_text()
        try:
            return httpx2.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    try:
        wait_until(healthy, timeout=30, interval=0.1, what="redrive up to answer /healthz")
        token = (tmp_path / "redrive-admin-token").read_text().strip()
        yield Running(url, token, fix_file)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_sign_in_see_the_failure_open_the_dead_letter_replay_it_and_see_it_succeed(
    redrive_up: Running, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    for n in range(5):
        httpx2.post(f"{redrive_up.url}/hooks/welcome", json={"user": n}, timeout=10).raise_for_status()
    answer = httpx2.post(f"{redrive_up.url}/hooks/orders", json={"order": "A-1"}, timeout=10)
    dead = answer.json()["execution_id"]
    wait_until(
        lambda: redrive_up.get(f"/api/v1/executions/{dead}")["status"] == "failed_retryable",
        timeout=30,
        what="the execution to be dead-lettered",
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{redrive_up.url}/ui/")
            page.get_by_label("API token").fill(redrive_up.token)
            page.get_by_role("button", name="Sign in").click()
            badge = page.get_by_test_id("stMetric").filter(has_text="Failing now")
            expect(badge).to_contain_text("1", timeout=30_000)
            expect(page.get_by_label("API token")).to_have_count(0, timeout=30_000)
            expect(page.get_by_text("Top error groups, last 24 h")).to_be_visible(timeout=30_000)
            expect(page.get_by_test_id("stVegaLiteChart").locator("canvas, svg").first).to_be_visible(timeout=30_000)
            expect(page.get_by_text("Updated ")).to_be_visible(timeout=30_000)
            assert redrive_up.token not in page.url
            page.screenshot(path=tmp_path / "overview.png", full_page=True)
            if target := os.environ.get("REDRIVE_SCREENSHOT"):
                page.screenshot(path=target, full_page=True)

            page.get_by_role("link", name="Executions").click()
            page.get_by_label("Open execution").click()
            page.get_by_role("option", name=f"#{dead} · orders · failed_retryable").click()
            expect(page.get_by_text(f"Execution #{dead} · orders · failed_retryable")).to_be_visible(timeout=30_000)

            redrive_up.fix_file.touch()  # the operator fixes the cause
            page.get_by_role("button", name="Replay…").click()
            expect(page.get_by_text(f"Replay execution #{dead}?")).to_be_visible(timeout=30_000)
            page.get_by_role("button", name="Confirm replay").click()
            expect(page.get_by_text(f"Replayed #{dead}: new execution #")).to_be_visible(timeout=30_000)
            new = redrive_up.get("/api/v1/executions?limit=1")["items"][0]
            assert new["replay_of"] == dead
            expect(page.get_by_text(f"Execution #{new['id']} · orders · succeeded")).to_be_visible(timeout=30_000)
            assert redrive_up.get(f"/api/v1/executions/{new['id']}")["status"] == "succeeded"
        finally:
            browser.close()
    assert (tmp_path / "overview.png").stat().st_size > 10_000


def test_the_standalone_dashboard_reads_a_remote_redrive(redrive_up: Running, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    httpx2.post(f"{redrive_up.url}/hooks/welcome", json={"user": 1}, timeout=10).raise_for_status()
    port = _free_port()
    log = (tmp_path / "dashboard.log").open("wb")
    process = subprocess.Popen(
        [*REDRIVE, "dashboard", "--url", redrive_up.url, "--port", str(port)],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def healthy() -> bool:
        assert process.poll() is None, (tmp_path / "dashboard.log").read_text()
        try:
            return httpx2.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    try:
        wait_until(healthy, timeout=30, interval=0.1, what="the standalone dashboard to answer")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                expect(page.get_by_text(f"Sign in to the redrive API at {redrive_up.url}")).to_be_visible(
                    timeout=30_000
                )
                page.get_by_label("API token").fill(redrive_up.token)
                page.get_by_role("button", name="Sign in").click()
                expect(page.get_by_test_id("stMetric").filter(has_text="Failing now")).to_contain_text(
                    "0", timeout=30_000
                )
                expect(page.get_by_text("Signed in as admin")).to_be_visible(timeout=30_000)
            finally:
                browser.close()
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
