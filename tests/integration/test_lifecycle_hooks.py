"""Lifecycle hooks end to end on both databases: what plugins hear, and that a plugin which raises or hangs in every
hook changes nothing: the same statuses, attempts and timings, at the same pace.

The service runs on a clock the test moves by hand (``ManualClock``): every recorded time is then a point the test
chose, so a run with a misbehaving plugin must reproduce the exact same table as the expected timeline. The worker
runs one execution at a time, so a hook awaited on its path would hold the only slot: pace is proved by counts.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import httpx2
import pytest
from plugin_support import START, HangsAsync, HangsSync, ManualClock, Raises, Recorder, serve
from pytest_httpserver import HTTPServer
from sqlalchemy import create_engine, select
from structlog.testing import capture_logs
from werkzeug import Request, Response

from redrive.db.schema import attempts, executions, triggers
from redrive.extensions import AttemptRecorded, EventAccepted, ExecutionDeadLettered, ExecutionRecovered
from support import Service, wait_until

SETTLED = {"succeeded", "failed", "failed_retryable"}
NAMES = ("ok", "flaky", "down", "bad")


def config(server: HTTPServer) -> str:
    entries = "".join(
        f"""
  - name: {name}
    action: {{kind: http, url: "{server.url_for("/" + name)}", allow_private: true, json: {{n: "{{{{ payload.n }}}}"}}}}
    retry: {{max_attempts: 3, base: 2s, factor: 2, max_delay: 60s, jitter: none}}"""
        for name in NAMES
    )
    return f"triggers:{entries}\n"


def targets(server: HTTPServer) -> None:
    """ok answers 200; flaky 503 then 200; down 503 always; bad 400."""
    flaky_calls = 0

    def flaky(request: Request) -> Response:
        nonlocal flaky_calls
        flaky_calls += 1
        return Response("busy", status=503) if flaky_calls == 1 else Response("ok")

    server.expect_request("/ok").respond_with_data("ok")
    server.expect_request("/flaky").respond_with_handler(flaky)
    server.expect_request("/down").respond_with_data("down", status=503)
    server.expect_request("/bad").respond_with_data("no such field", status=400)


def send(service: Service, trigger: str) -> int:
    response = httpx2.post(f"{service.url}/hooks/{trigger}", json={"n": trigger}, timeout=10)
    assert response.status_code == 202, response.text
    return int(response.json()["execution_id"])


def table(db_url: str) -> dict[str, Any]:
    """Per trigger: the execution's status, attempt count, run_at and finished_at, and each attempt's timeline."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            names = dict(connection.execute(select(triggers.c.id, triggers.c.name)).all())
            found: dict[str, Any] = {}
            for row in connection.execute(select(executions)).mappings():
                found[names[row["trigger_id"]]] = {
                    "status": row["status"],
                    "attempts": row["attempts"],
                    "run_at": row["run_at"],
                    "finished_at": row["finished_at"],
                    "tries": [],
                }
            by_id = {row["id"]: names[row["trigger_id"]] for row in connection.execute(select(executions)).mappings()}
            query = select(attempts).order_by(attempts.c.execution_id, attempts.c.number)
            for row in connection.execute(query).mappings():
                found[by_id[row["execution_id"]]]["tries"].append(
                    (row["number"], row["outcome"], row["error_code"], row["started_at"], row["finished_at"])
                )
            return found
    finally:
        engine.dispose()


def expected(t0: datetime) -> dict[str, Any]:
    """The timeline the retry policy dictates (2 s, then 4 s, no jitter) on a clock only the test moves."""
    t2, t6 = t0 + timedelta(seconds=2), t0 + timedelta(seconds=6)
    return {
        "ok": {"status": "succeeded", "attempts": 1, "run_at": t0, "finished_at": t0, "tries": [
            (1, "succeeded", None, t0, t0)]},
        "flaky": {"status": "succeeded", "attempts": 2, "run_at": t2, "finished_at": t2, "tries": [
            (1, "transient", "http_503", t0, t0), (2, "succeeded", None, t2, t2)]},
        "down": {"status": "failed_retryable", "attempts": 3, "run_at": t6, "finished_at": t6, "tries": [
            (1, "transient", "http_503", t0, t0), (2, "transient", "http_503", t2, t2),
            (3, "transient", "http_503", t6, t6)]},
        "bad": {"status": "failed", "attempts": 1, "run_at": t0, "finished_at": t0, "tries": [
            (1, "permanent", "http_400", t0, t0)]},
    }  # fmt: skip


def drive(db_url: str, service: Service, clock: ManualClock, *, hooks_drained: bool) -> None:
    """Send one event per trigger, then move the clock to each next retry once the worker is idle, until all settle.

    Idle: nothing running, nothing due at the clock's time, nothing in flight in the worker (and, when asked, no
    lifecycle report still being delivered, so a recording plugin hears one step before the next begins).
    """
    worker, lifecycle = service.state.worker, service.state.lifecycle
    assert worker is not None
    for name in NAMES:
        send(service, name)

    def idle() -> list[datetime] | None:
        if worker.in_flight or (hooks_drained and lifecycle.in_flight):
            return None
        engine = create_engine(db_url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(select(executions.c.status, executions.c.run_at)).all()
        finally:
            engine.dispose()
        if any(status == "running" or (status == "pending" and run_at <= clock()) for status, run_at in rows):
            return None
        return [run_at for status, run_at in rows if status == "pending"] or [clock()]

    for _ in range(10):
        upcoming = wait_until(idle, what="the worker to go idle")
        if all(row["status"] in SETTLED for row in table(db_url).values()):
            return
        clock.move_to(min(upcoming))
    raise AssertionError("the executions did not settle")


def failure_counts(service: Service) -> dict[tuple[str, str, str], float]:
    text = httpx2.get(f"{service.url}/metrics", timeout=10).text
    counts: dict[tuple[str, str, str], float] = defaultdict(float)
    for line in text.splitlines():
        if line.startswith("redrive_plugin_hook_failures_total{"):
            labels = dict(part.split("=") for part in line[line.index("{") + 1 : line.index("}")].split(","))
            key = (labels["plugin"].strip('"'), labels["hook"].strip('"'), labels["reason"].strip('"'))
            counts[key] += float(line.rsplit(" ", 1)[1])
    return dict(counts)


# Reports one run produces: 4 events accepted, 7 attempts, 2 executions ended in failure, 1 recovered.
CALLS = {
    "redrive_event_accepted": 4,
    "redrive_attempt_recorded": 7,
    "redrive_execution_dead_lettered": 2,
    "redrive_execution_recovered": 1,
}


@pytest.mark.parametrize("plugin", [None, Raises, HangsAsync, HangsSync])
def test_a_plugin_that_raises_or_hangs_in_every_hook_changes_no_outcome(
    db_url: str, httpserver: HTTPServer, plugin: Any
) -> None:
    targets(httpserver)
    instance = plugin() if plugin is not None else None
    plugins = [instance] if instance is not None else []
    clock = ManualClock()
    hangs = plugin in (HangsAsync, HangsSync)
    # A 60 s hook timeout: a hung hook outlives the whole run. One worker slot: had the worker awaited a hook, the
    # next execution could not start and the run would time out.
    options = {"worker_concurrency": 1, "plugin_hook_timeout": 60.0, "shutdown_grace": 0.5}
    with capture_logs() as logs, serve(db_url, config(httpserver), plugins=plugins, clock=clock, **options) as service:
        drive(db_url, service, clock, hooks_drained=not hangs)
        if hangs:  # every report is still stuck in its first hook: 4 accepted + 7 attempts
            assert service.state.lifecycle.in_flight == 11
        if plugin is Raises:
            wait_until(lambda: service.state.lifecycle.in_flight == 0)
            assert failure_counts(service) == {("Raises", hook, "error"): n for hook, n in CALLS.items()}
    if isinstance(instance, HangsSync):
        instance.release.set()
    assert table(db_url) == expected(START)
    failed = [entry for entry in logs if entry["event"] == "plugin_hook_failed"]
    if plugin is Raises:
        assert len(failed) == sum(CALLS.values())
        assert {(e["plugin"], e["hook"]) for e in failed} == {("Raises", hook) for hook in CALLS}
        assert all("plugin bug" in e["error"] for e in failed)
    else:
        assert failed == []  # hung hooks are abandoned at shutdown, before their 60 s are up
    if hangs:
        assert [e["count"] for e in logs if e["event"] == "plugin_hooks_abandoned"] == [11]


def test_plugins_hear_each_step_after_it_is_committed(db_url: str, httpserver: HTTPServer) -> None:
    targets(httpserver)
    recorder, clock = Recorder(), ManualClock()
    t0 = clock()
    with serve(db_url, config(httpserver), plugins=[recorder], clock=clock) as service:
        drive(db_url, service, clock, hooks_drained=True)
        ids = {name: row["execution_id"] for name, row in executions_by_trigger(db_url).items()}
    heard: dict[int, list[tuple[str, Any]]] = defaultdict(list)
    for hook, report in recorder.seen:
        heard[report.execution_id].append((hook, report))
    t2, t6 = t0 + timedelta(seconds=2), t0 + timedelta(seconds=6)

    def attempt(name: str, number: int, status: str, code: str | None, retry_at: datetime | None) -> Any:
        report = next(r for h, r in heard[ids[name]] if h == "attempt" and r.attempt == number)
        failure = None if report.failure is None else (report.failure.category, report.failure.code)
        assert (report.trigger, report.kind, report.status, report.retry_at, report.duration) == (
            name, "http", status, retry_at, 0.0
        )  # fmt: skip
        return failure if code is None else (failure, code)

    hooks = {name: [hook for hook, _ in heard[ids[name]]] for name in NAMES}
    assert hooks == {
        "ok": ["accepted", "attempt"],
        "flaky": ["accepted", "attempt", "attempt", "recovered"],
        "down": ["accepted", "attempt", "attempt", "attempt", "dead_lettered"],
        "bad": ["accepted", "attempt", "dead_lettered"],
    }
    accepted = heard[ids["ok"]][0][1]
    assert isinstance(accepted, EventAccepted)
    assert (accepted.trigger, accepted.execution_id, accepted.received_at) == ("ok", ids["ok"], t0)
    assert attempt("ok", 1, "succeeded", None, None) is None
    assert attempt("flaky", 1, "pending", "http_503", t2) == (("transient", "http_503"), "http_503")
    assert attempt("flaky", 2, "succeeded", None, None) is None
    assert attempt("down", 2, "pending", "http_503", t6)[0] == ("transient", "http_503")
    assert attempt("down", 3, "failed_retryable", "http_503", None)[0] == ("transient", "http_503")
    assert attempt("bad", 1, "failed", "http_400", None)[0] == ("permanent", "http_400")
    assert heard[ids["flaky"]][-1][1] == ExecutionRecovered("flaky", "http", ids["flaky"], 2)
    dead = heard[ids["down"]][-1][1]
    assert isinstance(dead, ExecutionDeadLettered)
    assert (dead.status, dead.attempts, dead.failure.code) == ("failed_retryable", 3, "http_503")
    bad = heard[ids["bad"]][-1][1]
    assert (bad.status, bad.attempts, bad.failure.category) == ("failed", 1, "permanent")
    assert all(isinstance(r, AttemptRecorded) for h, r in recorder.seen if h == "attempt")


def executions_by_trigger(db_url: str) -> dict[str, dict[str, Any]]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            names = dict(connection.execute(select(triggers.c.id, triggers.c.name)).all())
            rows = connection.execute(select(executions.c.id, executions.c.trigger_id)).all()
            return {names[trigger_id]: {"execution_id": execution_id} for execution_id, trigger_id in rows}
    finally:
        engine.dispose()


def test_a_completion_whose_lease_was_lost_reports_nothing(db_url: str, httpserver: HTTPServer) -> None:
    arrived, answer = threading.Event(), threading.Event()

    def slow(request: Request) -> Response:
        arrived.set()
        answer.wait(10)
        return Response("ok")

    httpserver.expect_request("/ok").respond_with_handler(slow)
    yaml = f"""
triggers:
  - name: ok
    action: {{kind: http, url: "{httpserver.url_for("/ok")}", allow_private: true}}
"""
    recorder = Recorder()
    with capture_logs() as logs, serve(db_url, yaml, plugins=[recorder]) as service:
        execution_id = send(service, "ok")
        assert arrived.wait(10)
        engine = create_engine(db_url)
        try:  # another worker took the execution over while the action ran (as after a sweep and a new claim)
            with engine.begin() as connection:
                connection.execute(
                    executions.update().where(executions.c.id == execution_id).values(lease_token="someone-else")
                )
        finally:
            engine.dispose()
        answer.set()
        wait_until(lambda: any(e["event"] == "execution_lease_lost" for e in logs), what="the fenced completion")
        wait_until(lambda: service.state.lifecycle.in_flight == 0)
    assert [hook for hook, _ in recorder.seen] == ["accepted"]
    assert table(db_url)["ok"]["tries"] == []


def test_only_new_events_are_reported_accepted(db_url: str, httpserver: HTTPServer) -> None:
    """Duplicates (same idempotency key) and filtered-out deliveries are stored or absorbed, never reported."""
    httpserver.expect_request("/ok").respond_with_data("ok")
    yaml = f"""
triggers:
  - name: paid
    source: {{filter: "payload.type == 'paid'"}}
    action: {{kind: http, url: "{httpserver.url_for("/ok")}", allow_private: true}}
"""
    recorder = Recorder()
    with serve(db_url, yaml, plugins=[recorder]) as service:

        def post(body: dict[str, Any], key: str) -> httpx2.Response:
            url = f"{service.url}/hooks/paid"
            return httpx2.post(url, json=body, headers={"Idempotency-Key": key}, timeout=10)

        first = post({"type": "paid"}, "k-1")
        assert (first.status_code, post({"type": "paid"}, "k-1").status_code) == (202, 200)
        filtered = post({"type": "refunded"}, "k-2")
        assert filtered.json().get("filtered") is True
        wait_until(lambda: [hook for hook, _ in recorder.seen] == ["accepted", "attempt"], what="the two reports")
        wait_until(lambda: service.state.lifecycle.in_flight == 0)
    [(_, event)] = [(hook, report) for hook, report in recorder.seen if hook == "accepted"]
    assert (event.trigger, event.event_id, event.idempotency_key) == ("paid", first.json()["event_id"], "k-1")
