"""The live stream (server-sent events): execution changes as they happen, resume with Last-Event-ID, a reset when
the id is too old, and, on PostgreSQL, changes made by another node (delivered through NOTIFY)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx2
import pytest

from support import Service, run_service, scalar, wait_until

CONFIG = "triggers: [{name: t, action: {kind: command, argv: ['true']}}]"


@dataclass
class Frame:
    kind: str
    id: str | None
    data: dict


@contextmanager
def subscribe(service: Service, last_event_id: str | None = None) -> Iterator[Iterator[Frame]]:
    headers = service.auth("viewer") | ({"Last-Event-ID": last_event_id} if last_event_id else {})
    with httpx2.stream("GET", f"{service.url}/api/v1/stream?tick=0.2", headers=headers, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")

        def frames() -> Iterator[Frame]:
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
                    continue
                yield Frame(fields.get("event", "message"), fields.get("id"), json.loads(fields.get("data", "{}")))
                fields = {}

        yield frames()


def until(frames: Iterator[Frame], done: Callable[[list[Frame]], bool], timeout: float = 20) -> list[Frame]:
    """Frames read until ``done(frames so far)``; stats ticks keep arriving, so the deadline is checked often."""
    seen: list[Frame] = []
    deadline = time.monotonic() + timeout
    for frame in frames:
        seen.append(frame)
        if done(seen):
            return seen
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"the stream did not deliver what was expected: {seen}")


def changes(frames: list[Frame], execution_id: int) -> list[str]:
    return [f.data["status"] for f in frames if f.kind == "execution" and f.data["execution_id"] == execution_id]


def send(service: Service, n: int) -> int:
    response = httpx2.post(f"{service.url}/hooks/t", json={"n": n}, timeout=10)
    assert response.status_code == 202
    return int(response.json()["execution_id"])


def test_changes_stream_live_and_resume_after_the_last_event_id(db_url: str) -> None:
    with run_service(db_url, CONFIG) as service:
        with subscribe(service) as frames:
            assert next(frames).kind == "stats"  # a baseline first
            first = send(service, 1)
            seen = until(frames, lambda s: "succeeded" in changes(s, first))
        assert changes(seen, first) == ["pending", "running", "succeeded"]
        last_id = next(f.id for f in reversed(seen) if f.kind == "execution")

        second = send(service, 2)  # while nobody listens
        wait_until(lambda: scalar(db_url, f"SELECT status FROM executions WHERE id = {second}") == "succeeded")

        with subscribe(service, last_event_id=last_id) as frames:
            resumed = until(frames, lambda s: s[-1].kind == "stats")
        missed = [f for f in resumed if f.kind == "execution"]
        assert [f.data["execution_id"] for f in missed] == [second] * 3  # nothing of the first again
        assert changes(missed, second) == ["pending", "running", "succeeded"]
        assert all(f.id is not None for f in missed)

        with subscribe(service, last_event_id="0000000000000001-gone-1") as frames:
            assert next(frames).kind == "reset"  # too old to resume: the client is told, not given a gap


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_change_made_by_another_node_reaches_this_nodes_stream(db_url: str) -> None:
    with (
        run_service(db_url, CONFIG, worker_concurrency=0) as api,
        run_service(db_url, CONFIG, tokens=api.tokens) as worker,
    ):
        assert worker.state.node is not None
        with subscribe(api) as frames:
            assert next(frames).kind == "stats"
            execution = send(api, 1)
            seen = until(frames, lambda s: "succeeded" in changes(s, execution))
        # 'running' and 'succeeded' were published by the other node's worker.
        assert changes(seen, execution) == ["pending", "running", "succeeded"]
        node_of = {f.data["status"]: f.id.split("-")[1] for f in seen if f.kind == "execution"}
        assert node_of["succeeded"] == worker.state.node.info.id != node_of["pending"]
