"""Unit tests for redrive.durations: the accepted forms, their value in seconds, and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redrive.durations import parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("5", 5.0),
        ("1.5", 1.5),
        ("1.5h", 5400.0),
        ("0", 0.0),
        ("0ms", 0.0),
        (" 30s ", 30.0),
        (5, 5.0),
        (1.5, 1.5),
        (0, 0.0),
    ],
)
def test_accepted_forms(value: object, seconds: float) -> None:
    result = parse_duration(value)
    assert result == seconds
    assert type(result) is float


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "cannot be negative"),
        (-0.5, "cannot be negative"),
        ("-1", "is not a duration"),
        ("-5s", "is not a duration"),
        ("1x", "is not a duration"),
        ("30 s", "is not a duration"),
        ("30S", "is not a duration"),
        ("1e3", "is not a duration"),
        (".5s", "is not a duration"),
        ("", "is not a duration"),
        ("s", "is not a duration"),
        (None, "is not a duration"),
        ([30], "is not a duration"),
        (True, "must be a number of seconds"),
        (False, "must be a number of seconds"),
    ],
)
def test_refused_forms(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_duration(value)
    if "negative" not in message:
        assert "'250ms', '30s', '10m', '2h', '1d'" in str(caught.value), "the error lists the accepted forms"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "1" + "0" * 400], ids=["nan", "inf", "400-digits"])
def test_non_finite_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_huge_integer_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(10**400)


@settings(database=None)
@given(st.integers(min_value=0, max_value=10**9), st.sampled_from([("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]))
def test_integer_with_unit(amount: int, unit: tuple[str, float]) -> None:
    suffix, scale = unit
    assert parse_duration(f"{amount}{suffix}") == pytest.approx(amount * scale)


@settings(database=None)
@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_numbers_are_seconds(value: float) -> None:
    assert parse_duration(value) == value
