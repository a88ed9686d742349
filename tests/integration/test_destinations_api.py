"""Forcing a destination's breaker through the API and the CLI against a real service: held work stays pending and
spends no attempt while forced open, goes once closed; every action is audited, counted and recorded as a
transition. (The dashboard's buttons: tests/dashboard/test_dashboard_pages.py.)"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import httpx2
from pytest_httpserver import HTTPServer
from replay_support import operations, rows, send, sink
from test_replay_cli import as_json, cli

import redrive
from redrive import BreakerTransition
from redrive.db.schema import breaker_transitions, executions
from support import Service, run_service, scalar, wait_until

EXTRA = """
  - name: other
    action: {kind: command, argv: ["true"]}
"""


class Listener:
    """A plugin hearing breaker transitions, as the alerting plugins will."""

    name = "listener"

    def __init__(self) -> None:
        self.heard: list[BreakerTransition] = []

    @redrive.hookimpl
    def redrive_breaker_transition(self, transition: BreakerTransition) -> None:
        self.heard.append(transition)


def call(service: Service, method: str, path: str, role: str = "operator") -> httpx2.Response:
    return httpx2.request(method, f"{service.url}/api/v1/destinations{path}", headers=service.auth(role), timeout=10)


def test_forced_open_close_and_reset_through_the_api(db_url: str, httpserver: HTTPServer) -> None:
    answer, config = sink(httpserver, status=200)
    parts = urlsplit(httpserver.url_for("/sink"))
    name = f"http://{parts.hostname}:{parts.port}"
    listener = Listener()
    with run_service(db_url, config + EXTRA, plugins=[listener]) as service:
        listed = call(service, "GET", "", role="viewer").json()["items"]
        assert {item["name"]: item["state"] for item in listed} == {name: "closed", "trigger:other": "closed"}
        assert call(service, "POST", f"/{name}/open", role="viewer").status_code == 403
        missing = call(service, "POST", "/https://nowhere.example:443/open")
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "unknown_destination")

        opened = call(service, "POST", f"/{quote(name, safe='')}/open").json()
        assert (opened["state"], opened["forced"]) == ("open", "open")
        held = send(service, 1)
        other = httpx2.post(f"{service.url}/hooks/other", json={}, timeout=10).json()["execution_id"]
        wait_until(lambda: scalar(db_url, f"SELECT status FROM executions WHERE id = {other}") == "succeeded")
        # The claim that ran the other trigger's execution (newer) would have taken the held one (older) too.
        assert scalar(db_url, f"SELECT status FROM executions WHERE id = {held}") == "pending"
        assert scalar(db_url, f"SELECT attempts FROM executions WHERE id = {held}") == 0
        shown = call(service, "GET", f"/{name}", role="viewer").json()
        assert (shown["held"], shown["pending"]) == (1, 1)

        closed = call(service, "POST", f"/{name}/close").json()
        assert (closed["state"], closed["forced"]) == ("closed", "closed")
        wait_until(lambda: scalar(db_url, f"SELECT status FROM executions WHERE id = {held}") == "succeeded")
        assert answer.hits == 1
        reset = call(service, "POST", f"/{name}/reset").json()
        assert (reset["state"], reset["forced"]) == ("closed", None)
        metrics = httpx2.get(f"{service.url}/metrics", timeout=10).text
        history = call(service, "GET", f"/{name}/transitions", role="viewer").json()["items"]
    assert f'redrive_breaker_transitions_total{{destination="{name}",to_state="open"}} 1.0' in metrics
    heard = [(t.destination, t.from_state, t.to_state, t.reason, t.actor) for t in listener.heard]
    assert heard == [
        (name, "closed", "open", "forced open", "operator"),
        (name, "open", "closed", "forced close", "operator"),
        (name, "closed", "closed", "reset", "operator"),
    ]
    assert [(t["to_state"], t["reason"], t["actor"]) for t in reversed(history)] == [
        ("open", "forced open", "operator"),
        ("closed", "forced close", "operator"),
        ("closed", "reset", "operator"),
    ]
    audited = [(row.action, row.actor, row.target) for row in operations(db_url)]
    assert audited == [
        ("destination_open", "operator", f"destination:{name}"),
        ("destination_close", "operator", f"destination:{name}"),
        ("destination_reset", "operator", f"destination:{name}"),
    ]
    assert len(rows(db_url, breaker_transitions)) == 3
    assert rows(db_url, executions, executions.c.id == held)[0].destination == name


def test_the_destinations_commands(db_url: str, httpserver: HTTPServer) -> None:
    _, config = sink(httpserver, status=200)
    parts = urlsplit(httpserver.url_for("/sink"))
    name = f"http://{parts.hostname}:{parts.port}"
    with run_service(db_url, config) as service:
        table = cli(service, "destinations", "ls")
        none_open = cli(service, "destinations", "ls", "--state", "open")
        opened = as_json(cli(service, "destinations", "open", name, "--json"))
        shown = as_json(cli(service, "destinations", "show", name, "--json"))
        closed = cli(service, "destinations", "close", name)
        reset = as_json(cli(service, "destinations", "reset", name, "--json"))
        weak = cli(service, "destinations", "open", name, role="viewer")
        unknown = cli(service, "destinations", "show", "trigger:nope")
    assert table.exit_code == 0, table.stderr
    assert name in table.stdout
    assert "0 open, 0 half-open, 1 closed" in table.stdout
    assert "more not shown" not in table.stdout
    lines = none_open.stdout.splitlines()  # the service's own log lines may come in between: it runs in process
    assert ("no open destinations" in lines, "0 open, 0 half-open, 1 closed" in lines) == (True, True), lines
    assert not [line for line in lines if line.split()[:2] == ["destination", "state"]], lines  # no headers alone
    assert (opened["state"], opened["forced"]) == ("open", "open")
    assert shown["transitions"][0]["reason"] == "forced open"
    assert closed.exit_code == 0
    assert f"{name} is closed (forced closed)" in closed.stdout
    assert (reset["state"], reset["forced"]) == ("closed", None)
    assert (weak.exit_code, "forbidden" in weak.stderr) == (2, True)
    assert (unknown.exit_code, "unknown_destination" in unknown.stderr) == (2, True)
    actions = [row.action for row in operations(db_url)]
    assert actions == ["destination_open", "destination_close", "destination_reset"]
