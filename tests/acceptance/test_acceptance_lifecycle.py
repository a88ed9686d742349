"""A real ``redrive up`` process killed or stopped while an action runs, on SQLite and on PostgreSQL.

SIGKILL must lose nothing (the execution stays leased, is swept after a restart and runs to completion, uncharged);
SIGTERM must let in-flight work finish within the grace period, and give back what cannot finish, uncharged.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from acceptance_support import (
    Launcher,
    Server,
    SlowAction,
    command_trigger,
    pid_alive,
    post_json,
    write_config,
)

from support import query, scalar, wait_until

pytestmark = pytest.mark.acceptance


def send(server: Server, n: int) -> int:
    """Send event ``n`` to the ``slow`` trigger; returns its execution id."""
    event = {"trigger": "slow", "payload": {"n": n}}
    status, body = post_json(f"{server.url}/api/v1/events", event, token=server.token)
    assert status == 202, f"{status} {body}\n{server.logs()}"
    execution_id: int = body["execution_id"]
    return execution_id


def execution(db_url: str, execution_id: int) -> tuple[str, int, str | None]:
    """(status, attempts, lease_token) of one execution."""
    row = query(db_url, "SELECT status, attempts, lease_token FROM executions WHERE id = :id", id=execution_id)[0]
    return row.status, row.attempts, row.lease_token


def test_sigkill_mid_execution_loses_nothing(
    db_url: str, launcher: Launcher, slow_action: SlowAction, tmp_path: Path
) -> None:
    config = write_config(tmp_path, [command_trigger("slow", slow_action.argv(3))])
    first = launcher.start(config, db_url)
    execution_id = send(first, 7)
    wait_until(
        lambda: slow_action.pids("start", 7),
        timeout=15,
        what="the action to start",
        context=lambda: first.logs() + slow_action.log(),
    )

    first.kill()  # SIGKILL: no handler runs, nothing is released
    killed_run = slow_action.pids("start", 7)
    status, attempts, lease_token = execution(db_url, execution_id)
    assert (status, attempts) == ("running", 0), first.logs()
    assert lease_token is not None

    second = launcher.start(config, db_url)
    wait_until(
        lambda: execution(db_url, execution_id)[0] == "succeeded",
        timeout=30,
        what="the execution to succeed after the restart",
        context=lambda: f"{execution(db_url, execution_id)}\n{second.logs()}\n{slow_action.log()}",
    )

    assert scalar(db_url, "SELECT count(*) FROM events") == 1
    assert scalar(db_url, "SELECT count(*) FROM executions") == 1
    # The run the SIGKILL interrupted was not charged: one attempt, the one that succeeded.
    assert execution(db_url, execution_id)[:2] == ("succeeded", 1), second.logs()
    recorded = [tuple(row) for row in query(db_url, "SELECT number, outcome FROM attempts ORDER BY number")]
    assert recorded == [(1, "succeeded")]
    # The action ran again after the restart, from start to finish.
    reruns = [pid for pid in slow_action.pids("start", 7) if pid not in killed_run]
    assert reruns, slow_action.log()
    assert set(reruns) & set(slow_action.pids("done", 7)), slow_action.log()


def test_sigterm_lets_inflight_work_finish(
    db_url: str, launcher: Launcher, slow_action: SlowAction, tmp_path: Path
) -> None:
    config = write_config(tmp_path, [command_trigger("slow", slow_action.argv(1))])
    server = launcher.start(config, db_url, REDRIVE_SHUTDOWN_GRACE="5")
    execution_id = send(server, 1)
    wait_until(
        lambda: slow_action.pids("start", 1),
        timeout=15,
        what="the action to start",
        context=lambda: server.logs() + slow_action.log(),
    )

    server.signal(signal.SIGTERM)
    code = server.wait(10)

    assert code is not None, f"redrive still running 10 s after SIGTERM\n{server.logs()}"
    assert execution(db_url, execution_id) == ("succeeded", 1, None), server.logs()
    assert slow_action.pids("done", 1) == slow_action.pids("start", 1), slow_action.log()
    assert code == 0, f"a graceful stop should exit 0, got {code}\n{server.logs()}"


def test_sigterm_after_the_grace_period_releases_uncharged(
    db_url: str, launcher: Launcher, slow_action: SlowAction, tmp_path: Path
) -> None:
    config = write_config(tmp_path, [command_trigger("slow", slow_action.argv(10))])
    server = launcher.start(config, db_url, REDRIVE_SHUTDOWN_GRACE="0.5")
    execution_id = send(server, 2)
    [pid] = wait_until(
        lambda: slow_action.pids("start", 2),
        timeout=15,
        what="the action to start",
        context=lambda: server.logs() + slow_action.log(),
    )

    server.signal(signal.SIGTERM)
    stopped = time.monotonic()
    code = server.wait(8)
    elapsed = time.monotonic() - stopped

    assert code is not None, f"redrive still running 8 s after SIGTERM (grace 0.5 s)\n{server.logs()}"
    assert elapsed < 6, f"took {elapsed:.1f}s to stop with a 0.5 s grace\n{server.logs()}"
    # Back in the queue, uncharged, no attempt recorded, lease cleared.
    assert execution(db_url, execution_id) == ("pending", 0, None), server.logs()
    assert scalar(db_url, "SELECT count(*) FROM attempts") == 0
    # The action's process was stopped with redrive, not left running.
    wait_until(lambda: not pid_alive(pid), timeout=5, what=f"the action (pid {pid}) to be killed", context=server.logs)
    assert slow_action.pids("done", 2) == [], slow_action.log()
    assert code == 0, f"a graceful stop should exit 0, got {code}\n{server.logs()}"
