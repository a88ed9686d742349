"""Acknowledging and snoozing error groups on both databases: the upsert clears both when a group regresses, the API
(on a clock the test moves) sets, shows, expires and audits them, and the CLI twins go through the same API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from plugin_support import ManualClock, serve
from replay_support import rows
from sqlalchemy import select
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from redrive.cli import app as cli
from redrive.db.database import Database
from redrive.db.schema import error_groups, triggers
from redrive.failures.error_groups import Attend, attend, record_failure, set_status, silenced

CONFIG = "triggers: [{name: orders, action: {kind: command, argv: ['false']}}]"
FP, OTHER = "ab" * 8, "cd" * 8
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GROUPS = "/api/v1/error-groups"


def _trigger_id(connection: Connection) -> int:
    found = connection.execute(select(triggers.c.id).where(triggers.c.name == "orders")).scalar_one_or_none()
    if found is not None:
        return int(found)
    row = triggers.insert().values(name="orders", action_kind="command", paused=False, created_at=T0, updated_at=T0)
    return int(connection.execute(row.returning(triggers.c.id)).scalar_one())


def fail(db_url: str, at: datetime, fingerprint: str = FP, times: int = 1) -> str:
    """Record failed attempts in the group the way the worker's completion does; the group's status afterwards."""

    def job(connection: Connection) -> str:
        trigger_id = _trigger_id(connection)
        for _ in range(times):
            status = record_failure(
                connection,
                fingerprint=fingerprint,
                trigger_id=trigger_id,
                kind="command",
                code="exit_1",
                category="permanent",
                title="exited with <n>",
                execution_id=1,
                at=at,
            )
        return status

    return str(run_job(db_url, job))


def run_job(db_url: str, job: Any) -> Any:
    """Run one write job (a function of a connection) in its own transaction, as the service's writer does."""
    db = Database(db_url)
    try:
        return db.write_sync(job)
    finally:
        db.close()


def group_row(db_url: str) -> dict[str, Any]:
    return dict(rows(db_url, error_groups, error_groups.c.fingerprint == FP)[0]._mapping)


def test_a_regression_clears_the_acknowledgement_and_the_snooze_so_the_group_alerts_again(db_url: str) -> None:
    fail(db_url, T0)
    run_job(db_url, attend(FP, Attend("acknowledge", "alice", T0, note="looking")))
    run_job(db_url, attend(FP, Attend("snooze", "alice", T0, until=T0 + timedelta(days=1))))
    # More failures of an open group keep it acknowledged and snoozed: that is what acknowledging is for.
    assert fail(db_url, T0 + timedelta(minutes=1)) == "open"
    row = group_row(db_url)
    assert (row["acknowledged_by"], row["acknowledge_note"], row["acknowledged_at"]) == ("alice", "looking", T0)
    assert row["snoozed_until"] == T0 + timedelta(days=1)
    assert silenced(row, T0 + timedelta(minutes=2))

    # Resolving does not withdraw them; the regression does, in the same upsert.
    run_job(db_url, set_status(FP, "resolved", T0 + timedelta(minutes=3), actor="alice"))
    assert silenced(group_row(db_url), T0 + timedelta(minutes=4))
    assert fail(db_url, T0 + timedelta(minutes=5)) == "regressed"
    row = group_row(db_url)
    assert [row[name] for name in ("acknowledged_at", "acknowledged_by", "acknowledge_note")] == [None, None, None]
    assert (row["snoozed_until"], row["snooze_until_total"]) == (None, None)
    assert not silenced(row, T0 + timedelta(minutes=6))


def test_a_growth_snooze_ends_when_the_group_has_grown_by_n(db_url: str) -> None:
    fail(db_url, T0, times=3)
    run_job(db_url, attend(FP, Attend("snooze", "bob", T0, grows_by=2)))
    row = group_row(db_url)
    assert (row["total"], row["snooze_until_total"], row["snoozed_until"]) == (3, 5, None)
    fail(db_url, T0 + timedelta(minutes=1))
    assert silenced(group_row(db_url), T0 + timedelta(minutes=1))
    fail(db_url, T0 + timedelta(minutes=2))
    assert group_row(db_url)["total"] == 5
    assert not silenced(group_row(db_url), T0 + timedelta(minutes=2))


@pytest.mark.parametrize(
    ("fields", "now", "expected"),
    [
        ({}, T0, False),
        ({"acknowledged_at": T0}, T0 + timedelta(days=365), True),
        ({"snoozed_until": T0 + timedelta(hours=1)}, T0 + timedelta(minutes=59), True),
        ({"snoozed_until": T0 + timedelta(hours=1)}, T0 + timedelta(hours=1), False),
        ({"snooze_until_total": 11}, T0, True),
        ({"snooze_until_total": 10}, T0, False),
    ],
)
def test_silenced(fields: dict[str, Any], now: datetime, expected: bool) -> None:
    row = {"total": 10, "acknowledged_at": None, "snoozed_until": None, "snooze_until_total": None, **fields}
    assert silenced(row, now) is expected


def test_the_api_acknowledges_snoozes_expires_on_the_clock_and_audits(db_url: str) -> None:
    clock = ManualClock(T0)
    fail(db_url, T0, times=2)
    with (
        serve(db_url, CONFIG, plugins=[], clock=clock, worker_concurrency=0) as service,
        httpx2.Client(base_url=service.url, timeout=10) as http,
    ):
        operator, viewer = service.auth("operator"), service.auth("viewer")

        def post(action: str, body: Any = None, fingerprint: str = FP) -> httpx2.Response:
            return http.post(f"{GROUPS}/{fingerprint}/{action}", json=body, headers=operator)

        def shown() -> dict[str, Any]:
            [item] = http.get(GROUPS, headers=viewer).json()["items"]
            assert http.get(f"{GROUPS}/{FP}", headers=viewer).json() == item  # the list and the group agree
            return dict(item)

        assert http.post(f"{GROUPS}/{FP}/acknowledge", headers=viewer).status_code == 403
        acked = post("acknowledge", {"note": "Bob is on it"})
        assert acked.status_code == 200, acked.text
        assert acked.json() == shown()
        group = shown()
        assert (group["acknowledged_by"], group["acknowledge_note"], group["status"]) == (
            "operator",
            "Bob is on it",
            "open",
        )
        assert datetime.fromisoformat(group["acknowledged_at"]) == T0
        assert group["silenced"] is True
        clock.advance(3600)
        assert post("acknowledge").json()["acknowledge_note"] is None  # no body: acknowledged again, without a note
        assert datetime.fromisoformat(shown()["acknowledged_at"]) == T0 + timedelta(hours=1)
        assert post("unacknowledge").json()["silenced"] is False
        assert shown()["acknowledged_at"] is None

        until = clock() + timedelta(minutes=30)
        for body in ({}, {"until": until.isoformat(), "grows_by": 3}, {"until": T0.isoformat()}, {"grows_by": 0}):
            refused = post("snooze", body)
            assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_snooze"), body
            assert FP in refused.json()["error"]["message"]
        unknown = post("snooze", {"for": "2h"})
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (422, "invalid_request")
        missing = post("snooze", {"grows_by": 1}, fingerprint=OTHER)
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")

        snoozed = post("snooze", {"until": until.isoformat()}).json()
        assert (datetime.fromisoformat(snoozed["snoozed_until"]), snoozed["silenced"]) == (until, True)
        clock.advance(29 * 60)
        assert shown()["silenced"] is True
        clock.advance(60)  # the snooze runs out on the service's clock, not the wall clock
        assert shown()["silenced"] is False
        assert post("snooze", {"grows_by": 3}).json()["snooze_until_total"] == 5  # total 2, plus 3
        assert shown()["snoozed_until"] is None  # a new snooze replaces the old one whole
        assert post("unsnooze").json()["snooze_until_total"] is None

        audit = httpx2.get(f"{service.url}/api/v1/audit", headers=service.auth("admin"), timeout=10).json()["items"]
    actions = [
        (row["action"], row["actor"], row["result"], row["detail"])
        for row in reversed(audit)
        if row["target"].startswith("error_group:")
    ]
    assert actions == [
        ("error_group_acknowledge", "operator", "ok", {"note": "Bob is on it"}),
        ("error_group_acknowledge", "operator", "ok", {}),
        ("error_group_unacknowledge", "operator", "ok", {}),
        ("error_group_snooze", "operator", "not_found", {"grows_by": 1}),
        ("error_group_snooze", "operator", "ok", {"until": until.isoformat()}),
        ("error_group_snooze", "operator", "ok", {"grows_by": 3}),
        ("error_group_unsnooze", "operator", "ok", {}),
    ]
    targets = [row["target"] for row in reversed(audit) if row["action"].startswith("error_group_")]
    assert targets == [f"error_group:{FP}"] * 3 + [f"error_group:{OTHER}"] + [f"error_group:{FP}"] * 3


def test_cli_ack_unack_snooze_unsnooze(db_url: str) -> None:
    fail(db_url, datetime.now(UTC))
    runner = CliRunner()
    with serve(db_url, CONFIG, plugins=[], worker_concurrency=0) as service:
        common = ["--url", service.url, "--token", service.tokens["operator"]]
        acked = runner.invoke(cli, ["errors", "ack", FP, "--note", "on it", *common])
        listed = runner.invoke(cli, ["errors", "ls", *common])
        snoozed = runner.invoke(cli, ["errors", "snooze", FP, "--until", "2h", *common])
        grows = runner.invoke(cli, ["errors", "snooze", FP, "--grows-by", "10", *common])
        both = runner.invoke(cli, ["errors", "snooze", FP, "--until", "2h", "--grows-by", "1", *common])
        naive = runner.invoke(cli, ["errors", "snooze", FP, "--until", "2030-01-01T00:00:00", *common])
        unacked = runner.invoke(cli, ["errors", "unack", FP, *common])
        unsnoozed = runner.invoke(cli, ["errors", "unsnooze", FP, "--json", *common])
    assert acked.exit_code == 0, acked.output
    assert f"{FP} is open  (acknowledged by operator: on it)" in acked.stdout
    assert "(acknowledged by operator: on it)" in listed.stdout
    assert snoozed.exit_code == 0, snoozed.output
    assert "snoozed until 20" in snoozed.stdout
    assert "snoozed until 11 in all" in grows.stdout
    assert both.exit_code != 0
    assert "invalid_snooze" in both.stderr
    assert naive.exit_code != 0
    assert "has no time zone" in naive.stderr
    assert "(snoozed until 11 in all)" in unacked.stdout
    assert '"snooze_until_total": null' in unsnoozed.stdout
