"""The destinations list's order and pages, decided without I/O.

An operator looks for the destinations that need attention, so they come first whatever the number of the others:
rank 0 open (or forced open), 1 half-open, 2 forced closed, 3 closed; by name within a rank. Ranks 0 to 2 are
restricted rows (``Destination.restricted``), a few read from their partial index; the closed rank is read a page at
a time by name.

A page ends at a ``Position`` (its last destination's rank and name), handed to the caller as an opaque cursor: names
hold ``/``, ``:`` and anything else, so it is URL-safe base64 of a small JSON array. A destination whose rank changes
between two pages may show on both or on neither; the summary counts it once.

No name is compared here: "by name" is the database's order (its collation: code points on SQLite and under
PostgreSQL's C collation, not under en_US), the order its primary key is walked in, so the database compares every
name, a cursor's too. Compared here, by code point, a cursor could point back at an earlier page under another
collation, and paging would go round for ever.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redrive.destinations.breaker import HALF_OPEN, OPEN, Destination
from redrive.states import BreakerState

OPEN_RANK, HALF_OPEN_RANK, FORCED_CLOSED_RANK, CLOSED_RANK = 0, 1, 2, 3
RANKS: dict[BreakerState | None, frozenset[int]] = {
    None: frozenset(range(4)),
    "open": frozenset({OPEN_RANK}),
    "half_open": frozenset({HALF_OPEN_RANK}),
    "closed": frozenset({FORCED_CLOSED_RANK, CLOSED_RANK}),
}
"""The ranks each ``state`` filter keeps (None: no filter)."""
SHOWN_AS: tuple[BreakerState, ...] = ("open", "half_open", "closed", "closed")
"""The state each rank counts as in the summary."""
CURSOR_MAX_LENGTH = 4096
"""No cursor is longer: a name has at most 255 characters, each at most 12 as escaped JSON (a surrogate pair)."""


def rank(state: str, forced: str | None) -> int:
    """Where a destination with this breaker ``state`` and override ``forced`` sorts: 0 needs attention most."""
    if forced == OPEN or state == OPEN:
        return OPEN_RANK
    if state == HALF_OPEN:
        return HALF_OPEN_RANK
    return CLOSED_RANK if forced is None else FORCED_CLOSED_RANK


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page stopped: its last destination's rank and name; the next page starts after it."""

    rank: int
    name: str


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One page of the list: at most ``limit`` destinations after ``after`` (None: the first page) whose state is
    ``state`` (None: any)."""

    limit: int = 100
    after: Position | None = None
    state: BreakerState | None = None

    @property
    def ranks(self) -> frozenset[int]:
        """The ranks the page may hold."""
        return RANKS[self.state]

    @property
    def attention_after(self) -> str | None:
        """The name the page resumes after in the cursor's rank, when that is one of 0 to 2 (None: another)."""
        return self.after.name if self.after is not None and self.after.rank < CLOSED_RANK else None

    @property
    def closed_after(self) -> str | None:
        """The name the closed rank resumes after (None: from its start)."""
        return self.after.name if self.after is not None and self.after.rank == CLOSED_RANK else None


def encode(position: Position) -> str:
    """The cursor naming ``position``: URL-safe, ASCII whatever the name holds."""
    raw = json.dumps([position.rank, position.name], separators=(",", ":")).encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(cursor: str) -> Position:
    """The position ``cursor`` names; ValueError when it is not one ``encode`` made."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        value = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # nested too deep
        raise ValueError("not base64 of JSON") from exc
    if not (isinstance(value, list) and len(value) == 2):
        raise ValueError("not a [rank, name] pair")
    found_rank, name = value
    if type(found_rank) is not int or not OPEN_RANK <= found_rank <= CLOSED_RANK or not isinstance(name, str):
        raise ValueError("not a [rank, name] pair")
    return Position(found_rank, name)


def attention(rows: Iterable[tuple[Destination, bool]], query: PageQuery) -> list[Destination]:
    """Of the restricted ``rows`` (by name, each with whether its name comes after ``query.attention_after``), those
    of ranks 0 to 2 the page may hold, by rank then name: at most one more than it shows (that one says another page
    follows)."""
    kept = [d for d, later in rows if _belongs(rank(d.state, d.forced), later, query)]
    kept.sort(key=lambda d: rank(d.state, d.forced))  # stable: by name within a rank
    return kept[: query.limit + 1]


def _belongs(found: int, later: bool, query: PageQuery) -> bool:
    """Whether a restricted row of rank ``found`` belongs on the page (``later``: its name comes after the cursor's)."""
    if found == CLOSED_RANK or found not in query.ranks:
        return False
    return query.after is None or found > query.after.rank or (found == query.after.rank and later)


def cut(ordered: Sequence[Destination], limit: int) -> tuple[list[Destination], Position | None]:
    """The page shown (the first ``limit`` of ``ordered``) and where the next starts (None: this is the last)."""
    if len(ordered) <= limit:
        return list(ordered), None
    last = ordered[limit - 1]
    return list(ordered[:limit]), Position(rank(last.state, last.forced), last.name)


def summary(restricted: Iterable[Destination], rows: int) -> dict[str, int]:
    """Every destination by the state it counts as: those of ranks 0 to 2 are all among the ``restricted`` rows, the
    rest of the ``rows`` are closed; ``forced`` counts the overrides of either kind, already counted in their state."""
    counts = {"open": 0, "half_open": 0, "closed": 0, "forced": 0}
    for d in restricted:
        counts[SHOWN_AS[rank(d.state, d.forced)]] += 1
        counts["forced"] += d.forced is not None
    return {**counts, "closed": rows - counts["open"] - counts["half_open"], "total": rows}
