"""The destinations list's order, cursors and summary (``redrive.destinations.paging``), pure: open and forced open
first, half-open, forced closed, closed; a cursor names any name and refuses what ``encode`` did not make; the
summary counts the attention ranks from the restricted rows and the rest as closed."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redrive.destinations.breaker import Destination
from redrive.destinations.keys import MAX_LENGTH
from redrive.destinations.paging import (
    CLOSED_RANK,
    CURSOR_MAX_LENGTH,
    PageQuery,
    Position,
    attention,
    cut,
    decode,
    encode,
    rank,
    summary,
)

T0 = datetime(2031, 1, 1, tzinfo=UTC)


def row(name: str, state: str = "closed", forced: str | None = None) -> Destination:
    return replace(Destination.new(name, T0), state=state, forced=forced)


def test_the_ranks_put_what_needs_attention_first() -> None:
    assert [rank("open", None), rank("closed", "open"), rank("half_open", None)] == [0, 0, 1]
    assert [rank("closed", "closed"), rank("closed", None)] == [2, 3]


@given(st.integers(0, 3), st.text(max_size=255))
def test_a_cursor_names_any_position_and_stays_url_safe(found: int, name: str) -> None:
    cursor = encode(Position(found, name))
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode(cursor) == Position(found, name)


def test_the_longest_name_makes_a_cursor_the_api_takes() -> None:
    assert len(encode(Position(CLOSED_RANK, "\U0001f600" * MAX_LENGTH))) <= CURSOR_MAX_LENGTH


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor!",
        "e30",  # {}
        base64.urlsafe_b64encode(b'[4, "x"]').decode(),
        base64.urlsafe_b64encode(b'[false, "x"]').decode(),
        base64.urlsafe_b64encode(b"[3, 4]").decode(),
        base64.urlsafe_b64encode(b'[3, "x", 1]').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(b"[" * 1500 + b"]" * 1500).decode(),  # deeper than the JSON decoder goes
    ],
)
def test_a_cursor_encode_did_not_make_is_refused(cursor: str) -> None:
    with pytest.raises(ValueError, match=r"^not (base64 of JSON|a \[rank, name\] pair)$"):
        decode(cursor)


def test_the_attention_ranks_sort_by_rank_then_name_and_resume_after_the_cursor() -> None:
    by_name = [row("a", "half_open"), row("a-limited"), row("b", "open"), row("c", forced="closed")]
    by_name.append(row("d", "closed", "open"))  # a-limited: restricted but closed, the closed rank's
    rows = [(d, True) for d in by_name]
    assert [d.name for d in attention(rows, PageQuery(10))] == ["b", "d", "a", "c"]
    assert [d.name for d in attention(rows, PageQuery(1))] == ["b", "d"]  # one more: a page follows
    assert [d.name for d in attention(rows, PageQuery(10, state="closed"))] == ["c"]
    assert attention(rows, PageQuery(10, Position(CLOSED_RANK, "a"))) == []
    # After the cursor: the database said which names come after its name (``later``); the next ranks all do.
    after_b = [(d, d.name > "b") for d in by_name]
    assert [d.name for d in attention(after_b, PageQuery(10, Position(0, "b")))] == ["d", "a", "c"]
    after_a = [(d, d.name > "a") for d in by_name]
    assert [d.name for d in attention(after_a, PageQuery(10, Position(1, "a")))] == ["c"]


def test_a_page_ends_where_the_next_starts() -> None:
    rows = [row("b", "open"), row("a", "half_open"), row("c")]
    assert cut(rows, 3) == (rows, None)
    assert cut(rows, 2) == (rows[:2], Position(1, "a"))


def test_the_summary_counts_every_destination_by_its_state() -> None:
    restricted = [row("o", "open"), row("f", "closed", "open"), row("h", "half_open"), row("c", forced="closed")]
    restricted.append(row("limited"))
    counted = summary(restricted, rows=12)
    assert counted == {"open": 2, "half_open": 1, "closed": 9, "forced": 2, "total": 12}
