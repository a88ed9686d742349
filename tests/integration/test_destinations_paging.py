"""``GET /api/v1/destinations`` a page at a time against a real service: the destinations needing attention first
(open or forced open, half-open, forced closed), then the closed ones by name, the declared destinations among them
(each has a row from start-up); paging with any limit shows each destination once, in that order; ``state`` keeps
one state; the summary counts every destination; a cursor, limit or state that is not one is refused naming it. The
CLI's ``destinations ls`` prints a page, the summary and what it leaves out, or every page with ``--all``."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import psycopg
import pytest
from sqlalchemy import create_engine, insert
from test_replay_cli import as_json, cli

from databases import pg_admin, pg_url
from redrive.db.database import Database
from redrive.db.migrate import upgrade
from redrive.db.schema import breaker_transitions, destinations
from redrive.destinations.paging import PageQuery, decode
from redrive.destinations.views import list_destinations
from support import Service, query, run_service, scalar, wait_until

NOW = datetime(2031, 1, 1, tzinfo=UTC)
CONFIG = """
triggers:
  - {name: alpha, action: {kind: command, argv: ["true"]}}
  - {name: mid, action: {kind: command, argv: ["true"]}}
  - {name: zulu, action: {kind: command, argv: ["true"]}}
"""
# (name, state, forced, concurrency): rows as the breaker and the operators leave them.
ROWS = [
    ("https://a-closed.example:443", "closed", None, None),
    ("https://b-open.example:443/päth", "open", None, None),
    ("https://c-half-open.example:443", "half_open", None, None),
    ("https://d-forced-closed.example:443", "closed", "closed", None),
    ("https://e-forced-open.example:443", "open", "open", None),
    ("https://f-limited.example:443", "closed", None, 2),  # restricted, yet closed: the closed rank
    ("smtp://mail.example:25/ä?x=1&y=#z", "closed", None, None),
    ("trigger:mid", "open", None, None),  # declared, and its row is open: once, among the open ones
    ("zz://last.example:1", "closed", None, None),
]
ORDER = [
    "https://b-open.example:443/päth",
    "https://e-forced-open.example:443",
    "trigger:mid",
    "https://c-half-open.example:443",
    "https://d-forced-closed.example:443",
    "https://a-closed.example:443",
    "https://f-limited.example:443",
    "smtp://mail.example:25/ä?x=1&y=#z",
    "trigger:alpha",  # declared, no row: closed, by name among the rows
    "trigger:zulu",
    "zz://last.example:1",
]
BY_STATE = {"open": ORDER[:3], "half_open": ORDER[3:4], "closed": ORDER[4:]}


def insert_rows(db_url: str, rows: list[tuple[str, str, str | None, int | None]]) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(destinations),
                [
                    {
                        "name": name,
                        "state": state,
                        "forced": forced,
                        "concurrency": concurrency,
                        "restricted": state != "closed" or forced is not None or concurrency is not None,
                        "changed_at": NOW,
                        "window_start": NOW,
                        "updated_at": NOW,
                    }
                    for name, state, forced, concurrency in rows
                ],
            )
    finally:
        engine.dispose()


@pytest.fixture
def service(db_url: str) -> Iterator[Service]:
    insert_rows(db_url, ROWS)
    with run_service(db_url, CONFIG, worker_concurrency=0) as running:  # no claim: the rows stay as written
        yield running


def page(service: Service, **params: Any) -> httpx2.Response:
    return httpx2.get(f"{service.url}/api/v1/destinations", params=params, headers=service.auth("viewer"), timeout=10)


def walk(service: Service, limit: int, state: str | None = None) -> list[str]:
    """Every name, following ``next_cursor`` from the first page to the last."""
    names: list[str] = []
    cursor = None
    for _ in range(len(ORDER) + 1):
        params = {"limit": limit, "cursor": cursor, "state": state}
        body = page(service, **{key: value for key, value in params.items() if value is not None}).json()
        assert len(body["items"]) <= limit
        names += [item["name"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return names
    raise AssertionError(f"more pages than destinations: {names}")


def test_the_attention_ranks_come_first_and_every_limit_pages_through_each_destination_once(
    service: Service,
) -> None:
    first = page(service).json()
    assert [item["name"] for item in first["items"]] == ORDER
    assert first["next_cursor"] is None
    for limit in (1, 2, 3, 4, 5):
        assert walk(service, limit) == ORDER, limit
    two = page(service, limit=2).json()
    assert [item["name"] for item in two["items"]] == ORDER[:2]
    assert two["next_cursor"] is not None


def test_declared_destinations_have_a_row_from_start_up_and_show_closed_among_the_others_by_name(
    service: Service, db_url: str
) -> None:
    declared = "SELECT name, state FROM destinations WHERE name LIKE 'trigger:%' ORDER BY name"
    # Made at start-up (``store.declare``); mid's row was already there, open, and is left as it was.
    assert query(db_url, declared) == [("trigger:alpha", "closed"), ("trigger:mid", "open"), ("trigger:zulu", "closed")]
    items = {item["name"]: item for item in page(service).json()["items"]}
    assert (items["trigger:alpha"]["state"], items["trigger:alpha"]["forced"]) == ("closed", None)
    assert (items["trigger:mid"]["state"], items["trigger:zulu"]["state"]) == ("open", "closed")
    after_smtp = walk(service, 1, state="closed")
    assert after_smtp[after_smtp.index("smtp://mail.example:25/ä?x=1&y=#z") + 1 :] == ORDER[-3:]


def test_the_state_filter_keeps_one_state_and_the_summary_counts_every_destination(
    service: Service, db_url: str
) -> None:
    sent = httpx2.post(f"{service.url}/hooks/mid", json={}, timeout=10)
    assert sent.status_code == 202, sent.text
    wait_until(lambda: scalar(db_url, "SELECT count(*) FROM executions WHERE destination = 'trigger:mid'") == 1)
    for state, names in BY_STATE.items():
        assert walk(service, 2, state=state) == names, state
    summary = {"open": 3, "half_open": 1, "closed": 7, "forced": 2, "total": 11}
    for params in ({}, {"state": "open"}, {"limit": 1, "state": "closed"}):
        assert page(service, **params).json()["summary"] == summary, params
    opened = page(service, state="open").json()["items"]
    mid = next(item for item in opened if item["name"] == "trigger:mid")
    assert (mid["pending"], mid["held"], mid["running"]) == (1, 1, 0)


def test_each_item_says_when_its_breaker_last_changed_state(service: Service, db_url: str) -> None:
    recovered, later = "https://a-closed.example:443", datetime(2031, 1, 2, 3, 4, tzinfo=UTC)
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(breaker_transitions),
                [
                    {"destination": recovered, "from_state": "closed", "to_state": "open", "reason": "t", "at": NOW},
                    {"destination": recovered, "from_state": "open", "to_state": "closed", "reason": "t", "at": later},
                ],
            )
    finally:
        engine.dispose()
    items = {item["name"]: item["last_transition_at"] for item in page(service).json()["items"]}
    assert items.pop(recovered) == later.isoformat()
    assert set(items.values()) == {None}  # the others never changed state (their rows were written as they are)
    shown = httpx2.get(f"{service.url}/api/v1/destinations/{recovered}", headers=service.auth("viewer"), timeout=10)
    assert shown.json()["last_transition_at"] == later.isoformat()


def _cursor(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode("ascii")


REFUSED = [
    {"cursor": "not a cursor!"},
    {"cursor": _cursor(b"{not json")},
    {"cursor": _cursor(b'[7, "https://a-closed.example:443"]')},
    {"cursor": _cursor(b'[true, "https://a-closed.example:443"]')},
    {"cursor": _cursor(b'["3", "https://a-closed.example:443"]')},
    {"cursor": _cursor(b'{"rank": 3, "name": "x"}')},
    {"cursor": _cursor(b"[" * 1500 + b"]" * 1500)},  # deeper than the JSON decoder goes
    {"cursor": "x" * 4097},
    {"limit": 0},
    {"limit": 501},
    {"state": "broken"},
]


def test_a_cursor_limit_or_state_that_is_not_one_is_refused_naming_the_parameter(service: Service) -> None:
    wrong = []
    for params in REFUSED:
        refused = page(service, **params)
        error = refused.json().get("error", {})
        named = error.get("message", "").startswith(f"query.{next(iter(params))}: ")
        if (refused.status_code, error.get("code"), named) != (422, "invalid_request", True):
            wrong.append(f"{params}: {refused.status_code} {error}")
    assert wrong == []


def test_the_ls_command_prints_a_page_the_summary_and_what_it_leaves_out(service: Service) -> None:
    first = cli(service, "destinations", "ls", "--limit", "2")
    opened = cli(service, "destinations", "ls", "--state", "open")
    every = as_json(cli(service, "destinations", "ls", "--limit", "2", "--all", "--json"))
    closed = as_json(cli(service, "destinations", "ls", "--limit", "3", "--state", "closed", "--all", "--json"))
    one_page = as_json(cli(service, "destinations", "ls", "--limit", "2", "--json"))
    refused = cli(service, "destinations", "ls", "--state", "broken")
    assert first.exit_code == 0, first.stderr
    listed = [line.split()[0] for line in first.stdout.splitlines() if line.startswith(("https://", "trigger:"))]
    assert listed == ORDER[:2]
    assert "3 open, 1 half-open, 7 closed (2 forced)" in first.stdout
    assert "9 more not shown: --all lists every one" in first.stdout
    assert opened.exit_code == 0, opened.stderr
    assert "more not shown" not in opened.stdout
    assert [item["name"] for item in every["items"]] == ORDER
    assert every["next_cursor"] is None
    assert every["summary"] == {"open": 3, "half_open": 1, "closed": 7, "forced": 2, "total": 11}
    assert [item["name"] for item in closed["items"]] == BY_STATE["closed"]
    assert set(one_page) == {"items", "next_cursor", "summary"}  # the API's answer as it is
    assert (len(one_page["items"]), one_page["next_cursor"] is not None) == (2, True)
    assert refused.exit_code == 2
    assert "'broken' is not one of 'closed', 'half_open', 'open'" in refused.stderr


@pytest.fixture
def icu_db(pg_template: str) -> Iterator[str]:
    """A migrated PostgreSQL database whose names sort by ICU's English collation: not by code point ("trigger:Z"
    after "trigger:y"), as under en_US, the usual default outside containers."""
    name = f"redrive_icu_{uuid.uuid4().hex[:12]}"
    try:
        pg_admin(f"CREATE DATABASE \"{name}\" LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C.UTF-8' TEMPLATE template0")
    except psycopg.Error as exc:  # the server is older than PostgreSQL 15, or built without ICU
        pytest.skip(f"no ICU collation on this server: {exc}")
    try:
        upgrade(pg_url(name))
        yield pg_url(name)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_under_a_collation_that_is_not_code_point_order_paging_still_shows_each_destination_once(icu_db: str) -> None:
    # Compared in Python, by code point, a cursor after "trigger:Z" (in the database's order after "trigger:m")
    # would lead back to "trigger:alpha", whose next page led to "trigger:Z" again: --all never ended.
    closed = ["trigger:alpha", "trigger:b", "trigger:m", "trigger:y", "trigger:Z", "trigger:zulu"]
    insert_rows(icu_db, [*ROWS, *((name, "closed", None, None) for name in closed)])
    db = Database(icu_db)
    try:
        whole = [item["name"] for item in db.read_sync(list_destinations(NOW, PageQuery(500)))["items"]]
        walked = {limit: walk_job(db, limit) for limit in (1, 2, 3)}
    finally:
        db.close()
    assert whole[-7:] == [*closed, "zz://last.example:1"]  # the database's order, not the code points'
    assert walked == {1: whole, 2: whole, 3: whole}


def walk_job(db: Database, limit: int) -> list[str]:
    names: list[str] = []
    after = None
    for _ in range(50):
        body = db.read_sync(list_destinations(NOW, PageQuery(limit, after)))
        names += [item["name"] for item in body["items"]]
        if body["next_cursor"] is None:
            return names
        after = decode(body["next_cursor"])
    raise AssertionError(f"paging went round: {names}")
