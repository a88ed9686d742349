"""The Destinations page with more destinations than it shows at once: the totals of every one at the top, the open
one first though its name sorts last, ``PAGE`` cards a page with first and next page buttons, a state filter, and
a request for transitions only for the cards that have some to show (it made one per destination, every 5 s), among
them a closed one that recovered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import Seeded, shown, signed_in
from sqlalchemy import create_engine, insert
from streamlit.testing.v1 import AppTest

from redrive.dashboard.client import DashboardClient
from redrive.dashboard.pages.destinations import PAGE
from redrive.db.schema import breaker_transitions, destinations
from support import Service, run_service

NOW = datetime(2031, 1, 1, tzinfo=UTC)
CONFIG = "triggers: [{name: t, action: {kind: command, argv: ['true']}}]"
DOWN = "https://zz-down.example:443"
CLOSED = [f"https://customer-{n:02}.example:443" for n in range(60)]
RECOVERED = CLOSED[3]  # closed again after an outage: its card charts the transitions
ORDER = [DOWN, *CLOSED, "trigger:t"]  # trigger:t is declared and has no row: closed, by name
TOTALS = ("Open", "Half-open", "Closed", "Forced", "Destinations")


@pytest.fixture
def service(db_url: str) -> Iterator[Service]:
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            rows = [(name, "closed", False) for name in CLOSED] + [(DOWN, "open", True)]
            connection.execute(
                insert(destinations),
                [
                    {"name": n, "state": s, "restricted": r, "changed_at": NOW, "window_start": NOW, "updated_at": NOW}
                    for n, s, r in rows
                ],
            )
            connection.execute(
                insert(breaker_transitions),
                [
                    {"destination": RECOVERED, "from_state": a, "to_state": b, "reason": "test", "at": NOW}
                    for a, b in (("closed", "open"), ("open", "half_open"), ("half_open", "closed"))
                ],
            )
    finally:
        engine.dispose()
    with run_service(db_url, CONFIG, worker_concurrency=0) as running:  # no claim: the rows stay as written
        yield running


def cards(at: AppTest) -> list[str]:
    return [m.value.splitlines()[0].removeprefix("### ") for m in at.markdown if m.value.startswith("### ")]


def test_the_open_destination_comes_first_and_the_page_pages_without_asking_for_every_history(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    real = DashboardClient.destination

    def counted(self: DashboardClient, name: str) -> dict[str, Any]:
        asked.append(name)
        return real(self, name)

    monkeypatch.setattr(DashboardClient, "destination", counted)
    at = signed_in(Seeded(service, tmp_path / "unused"), "viewer", page="destinations")
    assert {m.label: m.value for m in at.metric if m.label in TOTALS} == {
        "Open": "1", "Half-open": "0", "Closed": "61", "Forced": "0", "Destinations": "62"
    }  # fmt: skip
    assert cards(at) == ORDER[:PAGE]
    assert asked == [DOWN, RECOVERED]  # the open one's and the recovered one's; the other closed ones have none
    assert [len(frame.value) for frame in at.dataframe] == [3]  # the recovered one's transitions
    assert f"Page 1: 1 to {PAGE} of 62" in shown(at)

    at.button(key="dest_next").click().run()
    assert not at.exception, at.exception
    assert cards(at) == ORDER[PAGE:]
    assert f"Page 2: {PAGE + 1} to 62 of 62" in shown(at)
    assert at.button(key="dest_next").disabled
    assert asked == [DOWN, RECOVERED]  # page 2 has no card with a history
    at.button(key="dest_first").click().run()
    assert cards(at) == ORDER[:PAGE]

    at.segmented_control(key="dest_state").set_value("open").run()
    assert not at.exception, at.exception
    assert cards(at) == [DOWN]
    at.segmented_control(key="dest_state").set_value("closed").run()
    assert cards(at) == ORDER[1 : PAGE + 1]
    assert f"Page 1: 1 to {PAGE} of 61" in shown(at)
