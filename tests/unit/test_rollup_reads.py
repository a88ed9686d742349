"""How a window is cut for the rollups: whole buckets tile the middle exactly, the raw edges are under a minute."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from redrive.observe import rollups, stats
from redrive.observe.rollup_reads import FOREVER, at, cover, seconds, split
from redrive.observe.rollups import DAY, HOUR, MINUTE, TIMED, bucket_of

MOMENTS = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))


@given(start=st.integers(0, 10**6), length=st.integers(0, 10**6))
def test_cover_tiles_the_range_with_aligned_buckets(start: int, length: int) -> None:
    first, end = start * MINUTE, (start + length) * MINUTE
    pieces = cover(first, end)
    assert sum(e - s for _, s, e in pieces) == end - first
    assert all(s % grain == 0 and e % grain == 0 for grain, s, e in pieces)
    assert all(a[2] == b[1] for a, b in itertools.pairwise(pieces))  # contiguous, oldest first
    assert sum(1 for grain, *_ in pieces if grain == MINUTE) <= 2 * 4  # minutes only up to a five-minute edge


def test_a_week_is_days_in_the_middle_and_finer_grains_at_the_ends() -> None:
    start = 3 * DAY + 5 * HOUR + 7 * MINUTE
    grains = [grain for grain, *_ in cover(start, start + 7 * DAY)]
    assert grains == [MINUTE, 300, HOUR, DAY, HOUR, 300, MINUTE]
    assert cover(start, FOREVER)[-1] == (DAY, 4 * DAY, FOREVER)  # an open window: whole days to the end
    assert cover(HOUR, 2 * HOUR, [MINUTE]) == [(MINUTE, HOUR, 2 * HOUR)]  # only the grains allowed


@given(since=MOMENTS, span=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=8)))
def test_split_leaves_less_than_a_minute_raw_at_each_end(since: datetime, span: timedelta) -> None:
    until = since + span
    window = split(since, until)
    if window.whole is None:
        assert window.head == (since, until)
        assert span < timedelta(minutes=2)
        return
    start, end = window.whole
    assert start % MINUTE == 0
    assert end % MINUTE == 0
    assert start < end
    head_end = window.head[1] if window.head else since
    assert head_end == at(start)
    assert head_end - since < timedelta(minutes=1)
    assert window.tail == at(end)
    assert timedelta(0) <= until - at(end) < timedelta(minutes=1)


@given(moment=MOMENTS)
def test_buckets_hold_their_moment(moment: datetime) -> None:
    for grain in TIMED:
        bucket = bucket_of(moment, grain)
        assert bucket % grain == 0
        assert bucket <= seconds(moment) < bucket + grain


def test_the_finished_rollup_holds_only_the_statuses_the_timeseries_counts() -> None:
    # stats.timeseries reads every ``finished`` row unfiltered: that is only right while the two sets agree.
    assert set(stats.FINISHED) == rollups.SETTLED
