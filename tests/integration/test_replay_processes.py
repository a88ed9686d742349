"""The replay rules hold across processes: two `redrive up` processes share one PostgreSQL database (the 60 s
interval, and concurrent replays of one execution through both)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from pytest_httpserver import HTTPServer
from replay_support import error, settle, sink

from support import make_tokens, scalar

START_TIMEOUT = 60.0
REDRIVE = [sys.executable, "-c", "from redrive.cli import main; main()"]
Launch = Callable[[Path, str, str], str]  # (trigger file, database URL, name) -> base URL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Start `redrive up` subprocesses in tmp_path; each is killed at teardown."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(config: Path, db_url: str, name: str) -> str:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
        env |= {"REDRIVE_DATABASE_URL": db_url, "REDRIVE_POLL_INTERVAL": "0.2", "PYTHONUNBUFFERED": "1"}
        log = tmp_path / f"{name}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*REDRIVE, "up", "--config", str(config), "--port", str(port)],
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{name} did not start within {START_TIMEOUT} s:\n{log.read_text()}")

    try:
        yield start
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def test_rate_limit_holds_across_two_processes(
    db_url: str, httpserver: HTTPServer, tmp_path: Path, launch: Launch
) -> None:
    if "sqlite" in db_url:
        pytest.skip("one SQLite file is written by one process; several processes share PostgreSQL")
    _, config = sink(httpserver)
    config_file = tmp_path / "redrive.yaml"
    config_file.write_text(config, encoding="utf-8")
    tokens = make_tokens(db_url)  # before the first start, so no bootstrap token is made
    node_a, node_b = launch(config_file, db_url, "a"), launch(config_file, db_url, "b")
    auth = {"Authorization": f"Bearer {tokens['operator']}"}

    sent = httpx2.post(f"{node_a}/hooks/sink", json={"n": 1}, timeout=10)
    original = sent.json()["execution_id"]
    assert settle(db_url, original, timeout=30) == "failed_retryable"
    first = httpx2.post(f"{node_a}/api/v1/executions/{original}/replay", headers=auth, timeout=10)
    assert first.status_code == 200, first.text
    replayed = first.json()["new_execution_id"]
    assert settle(db_url, replayed, timeout=30) == "failed_retryable"

    again = httpx2.post(f"{node_b}/api/v1/executions/{replayed}/replay", headers=auth, timeout=10)
    assert (again.status_code, error(again)) == (429, "rate_limited")
    assert 1 <= int(again.headers["Retry-After"]) <= 60
    twice = httpx2.post(f"{node_b}/api/v1/executions/{original}/replay", headers=auth, timeout=10)
    assert (twice.status_code, error(twice)) == (409, "not_replayable")
    assert not (tmp_path / "redrive-admin-token").exists()

    # Twenty concurrent replays of one execution, half through each process: exactly one wins.
    other = httpx2.post(f"{node_b}/hooks/sink", json={"n": 2}, timeout=10).json()["execution_id"]
    assert settle(db_url, other, timeout=30) == "failed_retryable"
    barrier = threading.Barrier(20)

    def attempt(n: int) -> int:
        with httpx2.Client(timeout=30) as client:
            barrier.wait()
            node = node_a if n % 2 else node_b
            return client.post(f"{node}/api/v1/executions/{other}/replay", headers=auth).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(attempt, range(20)))
    assert statuses.count(200) == 1, statuses
    assert set(statuses) <= {200, 409, 429}, statuses
    assert scalar(db_url, "SELECT count(*) FROM executions WHERE replay_of = :id", id=other) == 1
