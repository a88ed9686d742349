"""The datagram sockets between the processes of one ``redrive up --processes N`` on SQLite, on real socket pairs:
a stream payload sent by one slot reaches every slot (its sender's too, as a NOTIFY does), a wake-up every other
slot (the sender's worker is woken directly); requests
made in one turn of the event loop go out as one datagram per slot; a full inbox drops instead of blocking."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest

from redrive.node.peers import PeerListener, PeerNotifier, Peers, decode, encode, socket_pairs
from redrive.observe.stream import STREAM_CHANNEL
from redrive.queue.notify import QUEUE_CHANNEL


@pytest.fixture
def group() -> Iterator[Callable[[int], list[Peers]]]:
    """Makes the sockets of a group of ``count`` slots, as the supervisor does; closes them at teardown."""
    made: list[socket.socket] = []

    def make(count: int) -> list[Peers]:
        pairs = socket_pairs(count)
        made.extend(end for pair in pairs for end in pair)
        return [Peers(slot, pairs[slot][0], tuple(outbox for _, outbox in pairs)) for slot in range(count)]

    yield make
    for end in made:
        end.close()


def test_a_datagram_names_its_channel_and_carries_any_payload() -> None:
    assert decode(encode(STREAM_CHANNEL, '[{"id": "a\\u0000b"}]')) == (STREAM_CHANNEL, '[{"id": "a\\u0000b"}]')
    assert decode(encode(QUEUE_CHANNEL, "")) == (QUEUE_CHANNEL, "")


def test_stream_payloads_reach_every_slot_and_wake_ups_the_others_once_per_turn(
    group: Callable[[int], list[Peers]],
) -> None:
    async def scenario() -> dict[int, list[tuple[str, str]]]:
        peers = group(3)
        received: dict[int, list[tuple[str, str]]] = {slot: [] for slot in range(3)}
        everyone = asyncio.Event()

        def note(slot: int, channel: str, payload: str) -> None:
            received[slot].append((channel, payload))
            if [len(got) for got in received.values()] == [1, 2, 2]:
                everyone.set()

        listeners = [
            PeerListener(
                p,
                {
                    QUEUE_CHANNEL: lambda payload, s=p.slot: note(s, QUEUE_CHANNEL, payload),
                    STREAM_CHANNEL: lambda payload, s=p.slot: note(s, STREAM_CHANNEL, payload),
                },
            )
            for p in peers
        ]
        for listener in listeners:
            listener.start()
        outbox = ["first", "second"]
        notifier = PeerNotifier(peers[0])
        notifier.add_source(STREAM_CHANNEL, lambda: [outbox.pop(0)] if outbox else [])
        notifier.start()
        for _ in range(5):  # a burst in one turn of the loop: one queue datagram per slot
            notifier.wake()
        notifier.poke()
        async with asyncio.timeout(5):
            await everyone.wait()
        await notifier.stop()
        for listener in listeners:
            await listener.stop()
        for p in peers:  # every datagram was sent in the one flush: none is left behind the two read
            with pytest.raises(BlockingIOError):
                p.inbox.recv(65536)
        return received

    received = asyncio.run(scenario())
    assert received[0] == [(STREAM_CHANNEL, "first")]
    assert received[1] == received[2] == [(QUEUE_CHANNEL, ""), (STREAM_CHANNEL, "first")]


def test_a_full_inbox_drops_instead_of_blocking_the_sender(group: Callable[[int], list[Peers]]) -> None:
    async def scenario() -> int:
        [peers] = group(1)  # nobody reads this inbox
        notifier = PeerNotifier(peers)
        notifier.add_source(STREAM_CHANNEL, lambda: ["x" * 6000])
        notifier.start()
        for _ in range(200):  # about 1.2 MB: far more than a socket buffer holds
            notifier.poke()
            await asyncio.sleep(0)
        queued = 0
        while True:
            try:
                peers.inbox.recv(65536)
            except BlockingIOError:
                return queued
            queued += 1

    queued = asyncio.run(scenario())
    assert 0 < queued < 200
