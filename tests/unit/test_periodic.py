"""The node's periodic-task helper: a failing step is logged and the loop goes on; stop ends it."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from redrive.node.periodic import Periodic


def test_a_failing_step_is_logged_and_the_loop_goes_on_until_stopped() -> None:
    async def scenario() -> tuple[int, list[dict[str, object]], bool, bool]:
        calls = 0
        second = asyncio.Event()

        async def step() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("the database is away")
            second.set()

        loop = Periodic("test", step, 0.001, failed_evt="test_step_failed")
        with capture_logs() as logs:
            loop.start()
            await asyncio.wait_for(second.wait(), 5)
            running = loop.running
            await loop.stop()
        return calls, logs, running, loop.running

    calls, logs, running_before, running_after = asyncio.run(scenario())
    assert calls >= 2
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == ["test_step_failed"]
    assert (running_before, running_after) == (True, False)


def test_delay_first_waits_one_interval_before_the_first_step() -> None:
    async def scenario() -> tuple[int, int]:
        calls = 0

        async def step() -> None:
            nonlocal calls
            calls += 1

        immediate = Periodic("now", step, 3600, failed_evt="x")
        immediate.start()
        await asyncio.sleep(0)  # let the task run up to its first sleep
        after_immediate = calls
        await immediate.stop()
        delayed = Periodic("later", step, 3600, failed_evt="x", delay_first=True)
        delayed.start()
        await asyncio.sleep(0)
        await delayed.stop()
        return after_immediate, calls

    assert asyncio.run(scenario()) == (1, 1)
