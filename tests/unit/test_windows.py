"""Unit tests for redrive.observe.windows: window and bucket syntax, limits, alignment and bucket layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redrive.observe.windows import (
    MAX_BUCKET,
    MAX_BUCKETS,
    MAX_WINDOW,
    MIN_BUCKET,
    WindowError,
    bucket_starts,
    floor_time,
    parse_bucket,
    parse_window,
)

T0 = datetime(2025, 1, 15, 12, 34, 56, 789000, tzinfo=UTC)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# --- parse_window ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("24h", timedelta(hours=24)),
        ("168h", timedelta(days=7)),
        ("7d", timedelta(days=7)),
        ("604800s", timedelta(days=7)),
        ("10080m", timedelta(days=7)),
        ("1s", timedelta(seconds=1)),
        ("30s", timedelta(seconds=30)),
        ("007d", timedelta(days=7)),  # leading zeros are still a whole number
    ],
)
def test_parse_window_accepts(value: str, expected: timedelta) -> None:
    assert parse_window(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "0h",
        "0s",
        "000m",
        "8d",
        "169h",
        "604801s",
        "10081m",
        "1x",
        "1w",
        "",
        "1H",
        "1D",
        "99999999999d",
        "9" * 5000 + "d",  # beyond int()'s digit limit: still a WindowError, never a bare ValueError
        " 1h",
        "1h ",
        "1h\n",
        "1 h",
        "-1h",
        "+1h",
        "1.5h",
        "1e3s",
        "h",
        "1",
        "1hh",
        "1h1m",
        "١h",  # ARABIC-INDIC DIGIT ONE
        "１h",  # FULLWIDTH DIGIT ONE
    ],
)
def test_parse_window_rejects(value: str) -> None:
    with pytest.raises(WindowError) as caught:
        parse_window(value)
    assert type(caught.value) is WindowError


def test_window_error_states_the_rule_with_examples() -> None:
    with pytest.raises(WindowError) as caught:
        parse_window("8d")
    message = str(caught.value)
    assert message.startswith("since must look like '15m', '1h', '24h', '7d'")
    assert "a whole number > 0 followed by s, m, h or d" in message
    assert "at most 7 days" in message
    assert "(got '8d')" in message


def test_window_error_is_a_value_error() -> None:
    assert issubclass(WindowError, ValueError)


def test_window_error_clips_a_huge_rejected_value() -> None:
    with pytest.raises(WindowError) as caught:
        parse_window("9" * 5000 + "d")
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("maximum", "ok", "too_long", "said"),
    [
        (timedelta(hours=1), "60m", "61m", "at most 1 hour"),
        (timedelta(days=30), "30d", "31d", "at most 30 days"),
        (timedelta(minutes=90), "90m", "2h", "at most 90 minutes"),
    ],
)
def test_parse_window_custom_maximum(maximum: timedelta, ok: str, too_long: str, said: str) -> None:
    assert parse_window(ok, maximum=maximum) == maximum
    with pytest.raises(WindowError, match=said):
        parse_window(too_long, maximum=maximum)


@settings(database=None)
@given(st.integers(min_value=0, max_value=10**30), st.sampled_from(sorted(UNITS)))
def test_parse_window_accepts_exactly_the_numbers_in_range(number: int, unit: str) -> None:
    seconds = number * UNITS[unit]
    if 0 < seconds <= MAX_WINDOW.total_seconds():
        assert parse_window(f"{number}{unit}") == timedelta(seconds=seconds)
    else:
        with pytest.raises(WindowError):
            parse_window(f"{number}{unit}")


@settings(database=None)
@given(st.text(max_size=30))
def test_parse_window_only_raises_window_error(value: str) -> None:
    try:
        window = parse_window(value)
    except WindowError:
        return
    assert timedelta(0) < window <= MAX_WINDOW


# --- parse_bucket ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1s", timedelta(seconds=1)),
        ("10s", timedelta(seconds=10)),
        ("1m", timedelta(minutes=1)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("24h", timedelta(days=1)),
        ("1d", timedelta(days=1)),
        ("86400s", timedelta(days=1)),
    ],
)
def test_parse_bucket_accepts(value: str, expected: timedelta) -> None:
    assert parse_bucket(value) == expected


@pytest.mark.parametrize("value", ["0s", "0m", "2d", "25h", "86401s", "1w", "", "5M", " 5m", "5m ", "99999999999s"])
def test_parse_bucket_rejects(value: str) -> None:
    with pytest.raises(WindowError, match=r"^bucket must look like '10s', '1m', '5m', '1h', '1d'.*1 second to 1 day"):
        parse_bucket(value)


def test_bucket_limits() -> None:
    assert parse_bucket("1s") == MIN_BUCKET
    assert parse_bucket("1d") == MAX_BUCKET


# --- floor_time --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "expected"),
    [
        (timedelta(seconds=1), datetime(2025, 1, 15, 12, 34, 56, tzinfo=UTC)),
        (timedelta(seconds=10), datetime(2025, 1, 15, 12, 34, 50, tzinfo=UTC)),
        (timedelta(minutes=1), datetime(2025, 1, 15, 12, 34, tzinfo=UTC)),
        (timedelta(minutes=5), datetime(2025, 1, 15, 12, 30, tzinfo=UTC)),
        (timedelta(minutes=15), datetime(2025, 1, 15, 12, 30, tzinfo=UTC)),
        (timedelta(hours=1), datetime(2025, 1, 15, 12, tzinfo=UTC)),
        (timedelta(hours=6), datetime(2025, 1, 15, 12, tzinfo=UTC)),
        (timedelta(days=1), datetime(2025, 1, 15, tzinfo=UTC)),
    ],
)
def test_floor_time(bucket: timedelta, expected: datetime) -> None:
    assert floor_time(T0, bucket) == expected


def test_floor_time_keeps_an_aligned_moment() -> None:
    moment = datetime(2025, 1, 15, 12, 30, tzinfo=UTC)
    assert floor_time(moment, timedelta(minutes=5)) == moment


def test_floor_time_aligns_to_the_epoch_not_to_the_hour() -> None:
    bucket = timedelta(minutes=13)
    floored = floor_time(T0, bucket)
    assert (floored - datetime(1970, 1, 1, tzinfo=UTC)) % bucket == timedelta(0)
    assert floored <= T0 < floored + bucket
    assert floored == datetime(2025, 1, 15, 12, 23, tzinfo=UTC)  # minute 28_949_063 since the epoch = 13 * 2_226_851


def test_floor_time_aligns_in_utc_and_keeps_the_zone() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    floored = floor_time(T0.astimezone(india), timedelta(days=1))
    assert floored == datetime(2025, 1, 15, tzinfo=UTC)  # UTC midnight, not Indian midnight
    assert floored.tzinfo == india


def test_floor_time_naive_is_utc() -> None:
    naive = T0.replace(tzinfo=None)
    assert floor_time(naive, timedelta(hours=1)) == datetime(2025, 1, 15, 12)


def test_floor_time_before_the_epoch() -> None:
    moment = datetime(1969, 12, 31, 23, 59, 30, tzinfo=UTC)
    assert floor_time(moment, timedelta(minutes=1)) == datetime(1969, 12, 31, 23, 59, tzinfo=UTC)


@pytest.mark.parametrize("bucket", [timedelta(0), timedelta(seconds=-5)])
def test_floor_time_rejects_empty_or_negative_buckets(bucket: timedelta) -> None:
    with pytest.raises(WindowError):
        floor_time(T0, bucket)


# --- bucket_starts -----------------------------------------------------------------------------------------


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2025, 1, 15, hour, minute, second, tzinfo=UTC)


def test_bucket_starts_cover_the_range_aligned() -> None:
    starts = bucket_starts(at(12, 3), at(12, 58), timedelta(minutes=15))
    assert starts == [at(12, 0), at(12, 15), at(12, 30), at(12, 45)]


def test_bucket_starts_include_the_bucket_holding_until() -> None:
    assert bucket_starts(at(12, 0), at(13, 0), timedelta(minutes=30)) == [at(12, 0), at(12, 30), at(13, 0)]


def test_bucket_starts_for_one_instant() -> None:
    assert bucket_starts(at(12, 7, 30), at(12, 7, 30), timedelta(minutes=5)) == [at(12, 5)]


def test_bucket_starts_for_a_week_of_ten_minute_buckets() -> None:
    until = at(12, 0)
    starts = bucket_starts(until - MAX_WINDOW, until, timedelta(minutes=10))
    assert len(starts) == 7 * 24 * 6 + 1
    assert starts[0] == until - MAX_WINDOW
    assert starts[-1] == until


def test_a_week_of_five_minute_buckets_is_over_the_cap() -> None:
    with pytest.raises(WindowError, match="2017 buckets of 5 minutes"):
        bucket_starts(at(12, 0) - MAX_WINDOW, at(12, 0), timedelta(minutes=5))


def test_bucket_starts_cap() -> None:
    bucket = timedelta(seconds=1)
    assert len(bucket_starts(at(12, 0), at(12, 0) + bucket * (MAX_BUCKETS - 1), bucket)) == MAX_BUCKETS
    with pytest.raises(WindowError, match="2001 buckets of 1 second is more than the 2000 allowed"):
        bucket_starts(at(12, 0), at(12, 0) + bucket * MAX_BUCKETS, bucket)


def test_bucket_starts_cap_is_checked_before_building_the_list() -> None:
    with pytest.raises(WindowError):
        bucket_starts(datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC), timedelta(seconds=1))


def test_bucket_starts_rejects_a_reversed_range() -> None:
    with pytest.raises(WindowError, match="before it starts"):
        bucket_starts(at(13, 0), at(12, 0), timedelta(minutes=5))


@settings(database=None)
@given(
    since=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    span=st.timedeltas(min_value=timedelta(0), max_value=MAX_WINDOW),
    bucket_seconds=st.sampled_from([1, 10, 60, 300, 900, 3600, 21600, 86400]),
)
def test_bucket_starts_properties(since: datetime, span: timedelta, bucket_seconds: int) -> None:
    bucket = timedelta(seconds=bucket_seconds)
    until = since + span
    try:
        starts = bucket_starts(since, until, bucket)
    except WindowError:
        assert span // bucket + 1 >= MAX_BUCKETS
        return
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert all((start - epoch) % bucket == timedelta(0) for start in starts)
    assert all(later - earlier == bucket for earlier, later in pairwise(starts))
    assert starts[0] <= since < starts[0] + bucket
    assert starts[-1] <= until < starts[-1] + bucket
