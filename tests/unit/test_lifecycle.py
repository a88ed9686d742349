"""Unit tests for redrive.lifecycle: hooks run off the caller's path, bounded in time and number, isolated."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import pluggy
import pytest
from structlog.testing import capture_logs

import redrive.hookspecs
from redrive.extensions import AttemptRecorded, EventAccepted, ExecutionDeadLettered, ExecutionRecovered
from redrive.failures.classify import permanent, transient
from redrive.hookspecs import hookimpl
from redrive.lifecycle import Lifecycle, accepted, completed
from redrive.observe.metrics import Metrics

NOW = datetime(2026, 1, 1, tzinfo=UTC)
pytestmark = pytest.mark.anyio  # asyncio only: anyio_backend defaults to it


def manager(*plugins: object) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("redrive")
    pm.add_hookspecs(redrive.hookspecs)
    for index, plugin in enumerate(plugins):
        pm.register(plugin, name=f"plugin{index}")
    return pm


def failures(metrics: Metrics, plugin: str, hook: str, reason: str) -> float:
    labels = {"plugin": plugin, "hook": hook, "reason": reason}
    return metrics.registry.get_sample_value("redrive_plugin_hook_failures_total", labels) or 0.0


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    @hookimpl
    async def redrive_event_accepted(self, event: EventAccepted) -> None:
        self.seen.append(("accepted", event))

    @hookimpl
    def redrive_attempt_recorded(self, attempt: AttemptRecorded) -> None:  # a plain def: runs in a thread
        self.seen.append(("attempt", attempt))

    @hookimpl
    async def redrive_execution_dead_lettered(self, execution: ExecutionDeadLettered) -> None:
        self.seen.append(("dead", execution))

    @hookimpl
    async def redrive_execution_recovered(self, execution: ExecutionRecovered) -> None:
        self.seen.append(("recovered", execution))


class Raises:
    @hookimpl
    async def redrive_event_accepted(self, event: EventAccepted) -> None:
        raise RuntimeError("boom in async")

    @hookimpl
    def redrive_attempt_recorded(self, attempt: AttemptRecorded) -> None:
        raise ValueError("boom in sync")


class HangsAsync:
    @hookimpl
    async def redrive_event_accepted(self, event: EventAccepted) -> None:
        await asyncio.Event().wait()


class HangsSync:
    def __init__(self) -> None:
        self.release = threading.Event()

    @hookimpl
    def redrive_event_accepted(self, event: EventAccepted) -> None:
        self.release.wait()


def test_completed_reports_what_the_attempt_did() -> None:
    gone = transient("http_503", "down")
    retry = completed("t", "http", 7, 1, "pending", gone, NOW, 0.5)
    assert [r.hook for r in retry] == ["redrive_attempt_recorded"]
    assert retry[0].value == AttemptRecorded("t", "http", 7, 1, "pending", gone, NOW, 0.5)
    dead = completed("t", "http", 7, 3, "failed_retryable", gone, None, 0.5)
    assert [r.hook for r in dead] == ["redrive_attempt_recorded", "redrive_execution_dead_lettered"]
    assert dead[1].value == ExecutionDeadLettered("t", "http", 7, "failed_retryable", 3, gone)
    bad = permanent("http_400", "no")
    assert completed("t", "http", 7, 1, "failed", bad, None, 0.1)[1].value == ExecutionDeadLettered(
        "t", "http", 7, "failed", 1, bad
    )
    assert [r.hook for r in completed("t", "http", 7, 1, "succeeded", None, None, 0.1)] == ["redrive_attempt_recorded"]
    recovered = completed("t", "http", 7, 2, "succeeded", None, None, 0.1)
    assert recovered[1].value == ExecutionRecovered("t", "http", 7, 2)


async def test_hooks_are_called_in_order_with_their_values() -> None:
    recorder = Recorder()
    lifecycle = Lifecycle(manager(recorder))
    lifecycle.notify(accepted("t", 1, 2, "key", NOW))
    lifecycle.notify(completed("t", "http", 2, 3, "failed_retryable", transient("x", "y"), None, 1.0))
    await lifecycle.aclose(grace=5)
    assert [name for name, _ in recorder.seen] == ["accepted", "attempt", "dead"]
    assert recorder.seen[0][1] == EventAccepted("t", 1, 2, "key", NOW)


async def test_no_plugin_means_nothing_is_scheduled() -> None:
    lifecycle = Lifecycle(manager())
    assert not lifecycle.active
    lifecycle.notify(accepted("t", 1, 2, None, NOW))
    assert lifecycle.in_flight == 0
    assert not Lifecycle().active


async def test_a_raising_hook_is_logged_and_counted_and_the_others_still_hear() -> None:
    recorder, metrics = Recorder(), Metrics()
    lifecycle = Lifecycle(manager(Raises(), recorder), metrics=metrics)
    with capture_logs() as logs:
        lifecycle.notify(accepted("t", 1, 2, None, NOW))  # returns at once: nothing raised here
        lifecycle.notify(completed("t", "http", 2, 1, "succeeded", None, None, 1.0))
        await lifecycle.aclose(grace=5)
    failed = [entry for entry in logs if entry["event"] == "plugin_hook_failed"]
    assert sorted((e["plugin"], e["hook"], e["error"]) for e in failed) == [
        ("plugin0", "redrive_attempt_recorded", "ValueError: boom in sync"),
        ("plugin0", "redrive_event_accepted", "RuntimeError: boom in async"),
    ]
    assert failures(metrics, "plugin0", "redrive_event_accepted", "error") == 1
    assert [name for name, _ in recorder.seen] == ["accepted", "attempt"]


@pytest.mark.parametrize("plugin", [HangsAsync, HangsSync])
async def test_a_hanging_hook_times_out_logged_and_counted(plugin: Any) -> None:
    hangs, recorder, metrics = plugin(), Recorder(), Metrics()
    lifecycle = Lifecycle(manager(hangs, recorder), timeout=0.05, metrics=metrics)
    with capture_logs() as logs:
        lifecycle.notify(accepted("t", 1, 2, None, NOW))
        await lifecycle.aclose(grace=5)  # the timeout, not the grace, ends the hung call
    assert [(e["plugin"], e["reason"]) for e in logs if e["event"] == "plugin_hook_failed"] == [("plugin0", "timeout")]
    assert failures(metrics, "plugin0", "redrive_event_accepted", "timeout") == 1
    assert [name for name, _ in recorder.seen] == ["accepted"]
    if isinstance(hangs, HangsSync):
        hangs.release.set()


async def test_past_the_backlog_reports_are_dropped_and_counted_never_queued() -> None:
    metrics = Metrics()
    lifecycle = Lifecycle(manager(HangsAsync()), timeout=60, backlog=2, metrics=metrics)
    with capture_logs() as logs:
        for event_id in range(5):
            lifecycle.notify(accepted("t", event_id, event_id, None, NOW))
    assert lifecycle.in_flight == 2
    assert [e["event"] for e in logs] == ["plugin_hook_dropped"] * 3
    dropped = metrics.registry.get_sample_value("redrive_plugin_hook_dropped_total", {"hook": "redrive_event_accepted"})
    assert dropped == 3
    with capture_logs() as logs:
        await lifecycle.aclose(grace=0)
    assert [(e["event"], e["count"]) for e in logs] == [("plugin_hooks_abandoned", 2)]
    assert lifecycle.in_flight == 0


async def test_hung_sync_hooks_hold_their_threads_and_later_calls_time_out_waiting() -> None:
    hangs, metrics = HangsSync(), Metrics()
    lifecycle = Lifecycle(manager(hangs), timeout=0.05, metrics=metrics)
    for event_id in range(12):  # more than SYNC_THREADS: the last ones never get a thread
        lifecycle.notify(accepted("t", event_id, event_id, None, NOW))
    await lifecycle.aclose(grace=5)
    assert failures(metrics, "plugin0", "redrive_event_accepted", "timeout") == 12
    alive = [t for t in threading.enumerate() if t.name == "redrive-plugin-hook"]
    assert len(alive) == 8
    assert all(t.daemon for t in alive)
    hangs.release.set()
