"""Parse human durations (``250ms``, ``30s``, ``10m``, ``2h``, ``1d`` or plain seconds) into seconds, and rates
(``50/s``, ``600/m``) into events per second."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")


def parse_duration(value: object) -> float:
    """Return seconds for a duration string or number; raise ValueError with the accepted forms otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '250ms', '30s', '10m', '2h', '1d'")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError as exc:
            raise ValueError(f"{value!r} is too large for a duration") from exc
    elif isinstance(value, str) and (match := _DURATION.match(value.strip())):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]  # overflows to inf, refused below
    else:
        raise ValueError(f"{value!r} is not a duration; use seconds or a string like '250ms', '30s', '10m', '2h', '1d'")
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*/\s*(s|m|h)$")


def parse_rate(value: object) -> float:
    """Return events per second for ``50/s``, ``600/m``, ``1000/h`` or a plain number per second."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        rate = float(value)
    elif isinstance(value, str) and (match := _RATE.match(value.strip())):
        rate = float(match.group(1)) / _UNITS[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a rate; use a number per second or a string like '50/s', '600/m', '100/h'")
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"{value!r} is not a positive rate")
    return rate
