"""Parse human durations (``250ms``, ``30s``, ``10m``, ``2h``, ``1d`` or plain seconds) into seconds."""

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
