"""Group failures by cause: normalise a failure message, then hash it with where the failure happened.

Two failures land in one error group when their trigger, action kind, error code and *normalised* message are
equal. Normalising replaces the parts of a message that vary between occurrences of the same cause (ids, times,
addresses, counts) by placeholders, so ``order 123 failed at 10:02:11`` and ``order 456 failed at 11:40:09`` read
the same.

The substitutions run in this order, and the order matters: a broad pattern run early would eat part of a
narrower one (a number inside a UUID or a date, an id inside a query string).

1. URL query strings: ``https://host/path?a=1`` -> ``https://host/path?<query>``. Scheme, host and path stay;
   the later rules still replace addresses, ids and numbers inside them.
2. UUIDs -> ``<uuid>``.
3. Timestamps, dates and times of day (ISO 8601, RFC 2822 / HTTP dates, ``12:00:05``) -> ``<time>``.
4. Email addresses -> ``<email>``.
5. IPv4 and IPv6 addresses, with an optional port -> ``<ip>``.
6. Hex strings of 8+ characters mixing letters and digits, and ``0x`` literals -> ``<hex>``.
7. Ids: ``prefix_`` ids mixing letters and digits (``cus_123abc``) and any run of 16+ ``[A-Za-z0-9_-]`` mixing
   letters and digits (``msg_p5jXN8AQM9LWM0D4loKWxJek``) -> ``<id>``.
8. Numbers standing alone or trailing after ``_`` / ``-`` (``order-123`` -> ``order-<n>``; a unit suffix stays:
   ``1.5s`` -> ``<n>s``) -> ``<n>``. Digits inside words (``order123``, ``v2``) and dotted versions
   (``1.2.3``, SMTP's ``5.1.1``) are kept: they name things rather than count them.
9. Quoted values (``'...'``, ``"..."``) -> ``<str>``. Last, because a quote only counts when it is not glued to a
   word, and the earlier rules turn glued words into placeholders (``5'x'`` -> ``<n>'x'``).

Whitespace then collapses and the result is cut to 200 characters at a word boundary. No placeholder matches any
rule, so normalising twice changes nothing. Everything here is pure.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable

__all__ = ["MAX_NORMALISED", "fingerprint", "normalise"]

MAX_NORMALISED = 200
"""Longest normalised message; enough to tell causes apart, short enough to index and display."""

_SETTLE_ROUNDS = 4

# Most patterns refuse to start after, or end before, a word character or a placeholder's '>' / '<': a value
# glued to a placeholder must be treated as it was when the placeholder was still a word ('x5:00', '<n>5:00'),
# otherwise normalising a second time would find new matches.

_URL_QUERY = re.compile(r"(?i)(?<![\w>])([a-z][a-z0-9+.-]*://[^\s?#'\"<>]*)\?(?:<query>|[^\s#'\"<>]*)")
_UUID = re.compile(r"(?i)(?<![\w>])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![\w<])")
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = re.compile(
    # ISO 8601 date with an optional time and offset: 2025-01-15, 2025-01-15T12:00:00.123+01:00
    r"(?<![\w>])\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?(?![\w<])"
    # RFC 2822 / HTTP date: Wed, 15 Jan 2025 12:00:00 GMT
    rf"|(?<![\w>])(?:{_DAY},? )?\d{{1,2}}[ -]{_MONTH}[ -]\d{{2,4}}(?: \d{{2}}:\d{{2}}(?::\d{{2}})?)?"
    r"(?: (?:[+-]\d{4}|GMT|UTC|UT|[ECMP][SD]T))?(?![\w<])"
    # a time of day on its own: 12:00, 12:00:05.250
    r"|(?<![\w.:>])\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?(?![\w:<])"
)
_EMAIL = re.compile(r"(?<![\w.+>-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?![\w<-])")
_IPV4 = re.compile(r"(?<![\w.:>])(\d{1,3}(?:\.\d{1,3}){3})(?::\d{1,5})?(?!\.?[\w<])")
_IPV6_BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]+)(?:%[\w.-]+)?\](?::\d{1,5})?(?![\w<])")
_IPV6 = re.compile(
    r"(?<![\w:.>])(?=[0-9A-Fa-f:]*[0-9A-Fa-f])([0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3})"
    r"(?:%[\w-]+|(?![\w:<]|\.[\w<]))"
)
_HEX = re.compile(r"(?<![\w>])(?:0[xX][0-9A-Fa-f]+|(?=[0-9A-Fa-f]*\d)(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{8,})(?![\w<])")
_ID = re.compile(
    r"(?<![\w>-])(?:"
    r"[A-Za-z]{2,12}_(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{4,}"
    r"|(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{16,}"
    r")(?![\w<-])"
)
_UNIT = r"(?:ms|us|ns|[smhd]|[kKMGT]i?B|B)"
_NUMBER = re.compile(rf"(?:(?<![\w.])|(?<=_))\d+(?:\.\d+)?(?={_UNIT}?(?!\.?\w))")
_QUOTED = re.compile(r"(?<![\w'\"])(?:'[^']*'|\"[^\"]*\")(?![\w'\"])")
_SPACES = re.compile(r"\s+")


def _ip_or_keep(match: re.Match[str]) -> str:
    try:
        ipaddress.ip_address(match.group(1))
    except ValueError:
        return match.group(0)
    return "<ip>"


_RULES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (_URL_QUERY, r"\1?<query>"),
    (_UUID, "<uuid>"),
    (_TIME, "<time>"),
    (_EMAIL, "<email>"),
    (_IPV6_BRACKETED, _ip_or_keep),
    (_IPV4, _ip_or_keep),
    (_IPV6, _ip_or_keep),
    (_HEX, "<hex>"),
    (_ID, "<id>"),
    (_NUMBER, "<n>"),
)


def _substitute(text: str) -> str:
    text = _SPACES.sub(" ", text)
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    # Replacing one quoted value can pair up the quotes around it ('a 'b' c'), so repeat until none is left;
    # every round removes quote characters, so this ends.
    while (unquoted := _QUOTED.sub("<str>", text)) != text:
        text = unquoted
    return _SPACES.sub(" ", text).strip()


def normalise(message: str) -> str:
    """Replace the variable parts of a failure message by placeholders, in the order the module docstring gives."""
    text = _substitute(message)
    if len(text) <= MAX_NORMALISED:
        return text
    # Cut between words: a cut inside one could expose a new match at the end ('_12' cut from '_12x').
    words = text[: MAX_NORMALISED + 1].rpartition(" ")[0]
    if words:
        return words
    # The first word alone is longer than the cap, so it must be cut inside: settle what the cut exposes.
    text = text[:MAX_NORMALISED]
    for _ in range(_SETTLE_ROUNDS):
        again = _substitute(text)[:MAX_NORMALISED]
        if again == text:
            break
        text = again
    return text


def fingerprint(trigger: str, kind: str, code: str, message: str) -> str:
    """Return the error-group key: 16 hex digits of SHA-256 over trigger, kind, code and the normalised message."""
    material = f"{trigger}\0{kind}\0{code}\0{normalise(message)}"
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:16]
