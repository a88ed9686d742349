"""Presence, decided by hellos and a clock: a process assumes company until its asking hello came back and the grace
for answers passed; it counts another process for ``ttl`` after its last hello; it answers asking hellos and
newcomers, and only those; its stream hub delivers at home exactly while it is alone, and never ahead of its own
changes still on their way."""

from __future__ import annotations

import asyncio

from redrive.node.presence import Presence
from redrive.observe.stream import StreamEvent, StreamHub

TTL, GRACE = 15.0, 2.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def presence(clock: Clock) -> tuple[Presence, list[str]]:
    """A presence for node ``me`` whose hellos are collected as the notifier would send them (drained at each poke)."""
    p = Presence("me", TTL, grace=GRACE, clock=clock)
    sent: list[str] = []
    p.poke = lambda: sent.extend(p.drain())
    return p, sent


def test_company_is_assumed_until_the_asking_hello_came_back_and_the_grace_passed() -> None:
    clock = Clock()
    p, sent = presence(clock)
    assert p.shared()  # before the listener connected
    p.connected()
    assert sent == ["me?"]
    clock.now += 60
    assert p.shared()  # the question is not back: answers may still come
    p.heard("me?")
    clock.now += GRACE - 0.01
    assert p.shared()
    clock.now += 0.02
    assert not p.shared()
    p.heard("me")  # its own plain hello changes nothing
    assert not p.shared()


def test_another_process_counts_for_ttl_after_its_last_hello() -> None:
    clock = Clock()
    p, _ = presence(clock)
    p.connected()
    p.heard("me?")
    p.heard("other")
    clock.now += TTL - 1
    p.heard("other")  # its heartbeat
    clock.now += TTL - 0.01
    assert p.shared()
    clock.now += 0.02
    assert not p.shared()


def test_asking_hellos_and_newcomers_are_answered_and_known_processes_are_not() -> None:
    clock = Clock()
    p, sent = presence(clock)
    p.connected()
    p.heard("me?")
    sent.clear()
    p.heard("other")
    assert sent == ["me"]  # a newcomer
    p.heard("other")
    assert sent == ["me"]  # known: no answer
    p.heard("other?")
    assert sent == ["me", "me"]  # it asks (its listener reconnected)
    clock.now += TTL + 1
    p.heard("other")
    assert sent == ["me", "me", "me"]  # gone for longer than ttl: a newcomer again
    p.beat()
    assert sent == ["me", "me", "me", "me"]


def test_an_asking_hello_waiting_to_be_sent_is_not_turned_into_a_plain_one() -> None:
    p = Presence("me", TTL, grace=GRACE, clock=Clock())
    p.connected()
    p.heard("other")  # an answer is due too, before the notifier drained
    assert p.drain() == ["me?"]
    assert p.drain() == []


def test_the_stream_hub_delivers_at_home_exactly_while_alone() -> None:
    clock = Clock()
    p, _ = presence(clock)
    pokes: list[None] = []
    hub = StreamHub("me", poke=lambda: pokes.append(None), shared=p.shared)
    subscriber = hub.subscribe()
    p.connected()
    hub.publish("execution", {"n": 1})  # company assumed: through the notifier
    assert (subscriber.qsize(), len(pokes)) == (0, 1)
    for payload in hub.drain():
        hub.receive(payload)  # back through the listener
    assert subscriber.qsize() == 1
    p.heard("me?")
    clock.now += GRACE + 1
    hub.publish("execution", {"n": 2})  # alone: at home
    assert (subscriber.qsize(), len(pokes), hub.drain()) == (2, 1, [])
    p.heard("other")
    hub.publish("execution", {"n": 3})
    assert (subscriber.qsize(), len(pokes), len(hub.drain())) == (2, 2, 1)


def hub_with_company() -> tuple[Clock, Presence, StreamHub, asyncio.Queue[StreamEvent | None]]:
    """A hub, its presence (its question back, one other process heard) and a subscriber."""
    clock = Clock()
    p, _ = presence(clock)
    hub = StreamHub("me", poke=lambda: None, shared=p.shared)
    subscriber = hub.subscribe()
    p.connected()
    p.heard("me?")
    p.heard("other")
    return clock, p, hub, subscriber


def test_a_change_does_not_overtake_one_still_on_its_way_back() -> None:
    clock, p, hub, subscriber = hub_with_company()
    hub.publish("execution", {"status": "running"})
    sent = hub.drain()  # on the wire when the other process is forgotten
    clock.now += TTL + 1
    assert not p.shared()
    hub.publish("execution", {"status": "succeeded"})  # waits here: "running" is not back yet
    assert (subscriber.qsize(), hub.drain()) == (0, [])
    for payload in sent:
        hub.receive(payload)
    hub.publish("execution", {"status": "retried"})  # nothing of this node's on its way: at once
    assert [subscriber.get_nowait().data["status"] for _ in range(3)] == ["running", "succeeded", "retried"]


def test_alone_under_load_a_process_stops_sending_and_what_waited_goes_back_out_with_company() -> None:
    clock, p, hub, subscriber = hub_with_company()
    hub.publish("execution", {"n": 0})
    on_the_wire = hub.drain()
    clock.now += TTL + 1  # alone, with a change always on its way as long as each waits for the last
    for n in range(1, 4):
        hub.publish("execution", {"n": n})
        assert hub.drain() == []  # nothing more is sent
        for payload in on_the_wire:
            hub.receive(payload)
        on_the_wire = []
    assert [subscriber.get_nowait().data["n"] for _ in range(4)] == [0, 1, 2, 3]
    # A change waiting at home when company comes back goes out first, in order.
    p.heard("other")
    hub.publish("execution", {"n": 4})
    sent = hub.drain()
    clock.now += TTL + 1
    hub.publish("execution", {"n": 5})  # alone: waits behind 4
    p.heard("other")
    hub.publish("execution", {"n": 6})  # company again: 5 and 6 go out, in order
    for payload in [*sent, *hub.drain()]:
        hub.receive(payload)
    assert [subscriber.get_nowait().data["n"] for _ in range(3)] == [4, 5, 6]


def test_changes_lost_with_the_listener_hold_nothing_back() -> None:
    clock = Clock()
    p, _ = presence(clock)
    hub = StreamHub("me", poke=lambda: None, shared=p.shared)
    subscriber = hub.subscribe()
    hub.publish("execution", {"n": 1})
    assert len(hub.drain()) == 1  # sent before the listener was there: never heard back
    p.connected()
    p.heard("me?")
    clock.now += GRACE + 1
    hub.publish("execution", {"n": 2})
    assert subscriber.qsize() == 0  # the first may still come back
    hub.lost()  # the listener (re)connected: it will not
    hub.publish("execution", {"n": 3})
    assert [subscriber.get_nowait().data["n"] for _ in range(2)] == [2, 3]


def test_a_change_too_large_to_send_is_not_waited_for() -> None:
    clock = Clock()
    p, _ = presence(clock)
    hub = StreamHub("me", poke=lambda: None, shared=p.shared)
    subscriber = hub.subscribe()
    hub.publish("execution", {"blob": "x" * 8000})  # over PostgreSQL's payload limit: dropped, never comes back
    p.connected()
    p.heard("me?")
    clock.now += GRACE + 1
    hub.publish("execution", {"n": 1})  # behind the large one, which is still in the outbox
    assert hub.drain() == []
    assert subscriber.get_nowait().data == {"n": 1}
    hub.publish("execution", {"n": 2})
    assert subscriber.get_nowait().data == {"n": 2}
