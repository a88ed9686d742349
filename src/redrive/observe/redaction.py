"""Keep secrets out of everything redrive writes down: logs, stored headers, error messages, excerpts.

Three rules, applied everywhere: a value under a secret-looking key (``Authorization``, ``apikey``, ``*token*``,
``*secret*``, ``*password*``, signature headers, cookies) is replaced whole; URL passwords and secret-looking query
parameters inside any text are masked; configured secrets (values substituted from ``${VAR}``) are masked wherever
they appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

REDACTED = "[redacted]"

_SECRET_KEY = re.compile(
    r"authorization|api[-_]?key|token|secret|passw(or)?d|signature|cookie|credential|private[-_]?key",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]*@")
_SECRET_QUERY = re.compile(
    r"(?P<head>[?&](?:[a-z0-9_-]*(?:token|secret|passw(?:or)?d|api[-_]?key|signature|sig))=)[^&#\s\"']*",
    re.IGNORECASE,
)

# Inside free text (a response body, a command's output): a JSON string member and a "Name: value" line, whose
# value is masked when the name looks secret. Both are linear scans; the name is checked by ``is_secret_key``.
_SECRET_WORDS = ("author", "key", "token", "secret", "passw", "signature", "cookie", "credential")  # covers _SECRET_KEY
_JSON_MEMBER = re.compile(r'"(?P<key>[^"\\\n]{1,100})"(?P<sep>\s*:\s*)"(?:[^"\\\n]|\\.)*"')
_NAMED_LINE = re.compile(r"^(?P<key>[ \t]*[\w-]{1,100})(?P<sep>[ \t]*:[ \t]*)\S.*$", re.MULTILINE)


def _mask_json_member(match: re.Match[str]) -> str:
    if not is_secret_key(match["key"]):
        return match[0]
    return f'"{match["key"]}"{match["sep"]}"{REDACTED}"'


def _mask_named_line(match: re.Match[str]) -> str:
    return f"{match['key']}{match['sep']}{REDACTED}" if is_secret_key(match["key"]) else match[0]


# Values that hold no text to mask; checked by exact type first, the common case in logs and payloads.
_PLAIN = frozenset({int, float, bool, type(None), datetime})  # a log line's ``ts`` among them


# The same few field and header names come by again and again: each name's answer is kept (a plain dict, read
# inline by ``Redactor._mapping``: a call per key, even to a cache, was a visible share of every log line's cost).
_KNOWN: dict[Any, bool] = {}
_KNOWN_MAX = 4096  # names kept at most: past it the dict starts afresh (a sender's own header names are unbounded)


def is_secret_key(key: str) -> bool:
    """True for a field or header name whose value is a secret."""
    found = _KNOWN.get(key)
    if found is None:
        found = _remember(key)
    return found


def _remember(key: Any) -> bool:
    """Decide ``key`` (only a string can be secret) and keep the answer."""
    if len(_KNOWN) >= _KNOWN_MAX:
        _KNOWN.clear()
    found = _KNOWN[key] = isinstance(key, str) and _SECRET_KEY.search(key) is not None
    return found


class Redactor:
    """Masks secrets in text and in JSON-like trees; built once with the configured secret values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def text(self, value: str) -> str:
        """Mask URL passwords, secret query parameters and configured secrets inside ``value``."""
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        # Each pattern needs characters a substring test finds far faster than the pattern's scan: a password in a
        # URL needs its ``@``, a query parameter its ``?`` or ``&``. Most texts (every URL redrive sends to, every
        # rendered leaf) have none of them.
        if "://" in value and "@" in value:
            value = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", value)
        if "=" in value and ("?" in value or "&" in value):
            value = _SECRET_QUERY.sub(rf"\g<head>{REDACTED}", value)
        return value

    def excerpt(self, value: str) -> str:
        """``text``, and also the values of secret-looking keys written out in it: ``"apikey": "..."`` in JSON,
        ``Authorization: ...`` as a header line. For what a target or command sent back, which may echo a request."""
        value = self.text(value)
        lowered = value.lower()  # substring tests are far cheaper than the key pattern over a long body
        if not any(word in lowered for word in _SECRET_WORDS):  # the common case: nothing secret-looking named
            return value
        return _NAMED_LINE.sub(_mask_named_line, _JSON_MEMBER.sub(_mask_json_member, value))

    def tree(self, value: Any) -> Any:
        """Redact a JSON-like tree: secret keys replaced whole, every string masked."""
        kind = type(value)
        if kind is str:
            return self.text(value)
        if kind in _PLAIN:
            return value
        if isinstance(value, str):
            return self.text(value)
        if kind is dict or isinstance(value, Mapping):
            return self._mapping(value)
        if isinstance(value, list | tuple):
            return [self.tree(item) for item in value]
        return value

    def _mapping(self, value: Mapping[Any, Any]) -> dict[Any, Any]:
        # Every log line, stored header set and sent request comes through here: the keys' answers are read from
        # ``_KNOWN`` and scalars and strings are handled inline, not by a call each.
        redacted: dict[Any, Any] = {}
        known = _KNOWN
        for key, item in value.items():
            kind = type(item)
            secret = known.get(key)
            if secret is None:
                secret = _remember(key)
            if secret and item is not None:
                redacted[key] = REDACTED
            elif kind is str:
                redacted[key] = self.text(item)
            elif kind in _PLAIN:
                redacted[key] = item
            else:
                redacted[key] = self.tree(item)
        return redacted
