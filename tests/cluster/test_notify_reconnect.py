"""Notifications drained for sending when the connection dies are sent after the reconnect, not lost: the live
stream on other nodes would otherwise miss those execution changes without being told to reset."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from cluster_support import CuttableProxy
from sqlalchemy.engine import make_url

from redrive.queue import notify
from redrive.queue.notify import Listener, Notifier
from support import wait_until

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]
CHANNEL = "redrive_test_reconnect"


class Warnings:
    """Stands in for the module's logger: keeps the names of the warnings logged."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def warning(self, event: str, **_: Any) -> None:
        self.events.append(event)

    def exception(self, event: str, **_: Any) -> None:
        self.events.append(event)


@pytest.fixture
def proxy(db_url: str) -> Iterator[CuttableProxy]:
    url = make_url(db_url)
    with CuttableProxy((url.host or "127.0.0.1", url.port or 5432)) as cuttable:
        yield cuttable


async def until(predicate: Any, what: str) -> None:
    """Wait (off the event loop, which the notifier and listener need) until ``predicate`` holds."""
    await asyncio.to_thread(wait_until, predicate, timeout=30, what=what)


def test_a_notification_drained_as_the_connection_dies_is_sent_after_the_reconnect(
    db_url: str, proxy: CuttableProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings = Warnings()
    monkeypatch.setattr(notify, "log", warnings)
    via_proxy = make_url(db_url).set(port=proxy.port).render_as_string(hide_password=False)
    received: list[str] = []
    outbox: list[str] = []

    def drain() -> list[str]:
        taken = outbox[:]
        outbox.clear()
        return taken

    async def scenario() -> None:
        listener = Listener(db_url, {CHANNEL: received.append})
        notifier = Notifier(via_proxy)
        notifier.add_source(CHANNEL, drain)
        listener.start()
        notifier.start()
        try:
            await asyncio.sleep(0.5)  # the listener's LISTEN is in place
            outbox.append("first")
            notifier.poke()
            await until(lambda: received == ["first"], "the first notification")

            proxy.cut()  # the notifier's connection is gone; it finds out on its next send
            outbox.append("second")
            notifier.poke()
            await until(lambda: "notifier_disconnected" in warnings.events, "the notifier to notice")
            assert not outbox  # "second" was drained before the send failed
            proxy.restore()
            await until(lambda: received == ["first", "second"], "the resend")
        finally:
            await notifier.stop()
            await listener.stop()

    asyncio.run(scenario())
