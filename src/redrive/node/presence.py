"""Presence on PostgreSQL: whether any other process listens on this database's channels.

Wake-ups and live-stream changes go to the other processes through ``NOTIFY`` (``redrive.queue.notify``). A process
alone on its database has no one to tell, and every ``NOTIFY`` still cost it a round trip on a connection of its
own, a transaction, and, for the stream, the trip back through its own listener: about 6% of a lone process's
instructions per event. So a process that knows it is alone keeps both at home: its worker is woken directly, as
always, and the stream hub delivers its changes at once. As soon as another process is known, both go through
``NOTIFY`` again, so that every process's stream sees every change in one order.

Who is there is learnt from hellos on the presence channel, each payload a process's node id:

- when its listener (re)connects, a process says ``<id>?``, asking every other process to answer;
- every process answers an asking hello, and a hello from a process it did not know, with ``<id>``;
- every process says ``<id>`` at each heartbeat, and counts another as present for ``ttl`` after its last hello.

Until its own asking hello has come back through the listener, and ``grace`` more has passed for the answers (each
sent after its sender heard the question, so after the echo), a process assumes it is not alone. Nothing here is
needed for correctness: a wake-up that is not sent is the worker's poll's, and a stream client that missed changes
resumes by id or is told to reset, as after any lost ``NOTIFY``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

PRESENCE_CHANNEL = "redrive_presence"
GRACE = 2.0  # seconds after its asking hello came back during which a process waits for the others' answers
ASKING = "?"


class Presence:
    """This process's view of the other processes listening on its database (see the module docstring)."""

    def __init__(
        self, node: str, ttl: float, *, grace: float = GRACE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._node = node
        self._ttl = ttl
        self._grace = grace
        self._clock = clock
        self._heard: dict[str, float] = {}  # another process's id -> when its last hello came
        self._company_until = -math.inf  # the last hello heard, plus ttl
        self._assumed_until = math.inf  # the asking hello's echo, plus grace (inf: not back yet)
        self._outbox: str | None = None  # the hello to send next, if any
        self.poke: Callable[[], None] = lambda: None  # tells the notifier that ``drain`` has a hello

    def shared(self) -> bool:
        """Whether another process may be listening: its wake-ups and stream changes must go through ``NOTIFY``."""
        now = self._clock()
        return now < self._company_until or now < self._assumed_until

    def connected(self) -> None:
        """The listener (re)connected: ask the others to say hello, and assume company until they could have."""
        self._assumed_until = math.inf
        self._say(asking=True)

    def beat(self) -> None:
        """The heartbeat: say hello, so the others keep counting this process."""
        self._say(asking=False)

    def heard(self, payload: str) -> None:
        """A hello on the presence channel (any process's, this one's included)."""
        node = payload.removesuffix(ASKING)
        asking = node != payload
        now = self._clock()
        if node == self._node:
            if asking and self._assumed_until == math.inf:
                self._assumed_until = now + self._grace
            return
        known = self._heard.get(node, -math.inf) + self._ttl > now
        self._heard = {n: at for n, at in self._heard.items() if at + self._ttl > now}  # the gone are forgotten
        self._heard[node] = now
        self._company_until = max(self._company_until, now + self._ttl)
        if asking or not known:
            self._say(asking=False)

    def drain(self) -> list[str]:
        """The hello to send, if one is due (the notifier's source for the presence channel)."""
        hello, self._outbox = self._outbox, None
        return [] if hello is None else [hello]

    def _say(self, *, asking: bool) -> None:
        if asking or self._outbox is None:  # an asking hello answers as well as a plain one
            self._outbox = self._node + (ASKING if asking else "")
        self.poke()
