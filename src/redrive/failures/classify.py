"""Turn raw action outcomes into a classified :class:`Failure`.

An attempt ends in an HTTP status, a process exit code, an SMTP reply, or an exception. The functions here map
each shape to a ``Failure`` that says whether trying again can help (``transient``) or not (``permanent``), with
a stable ``code`` for grouping and a one-sentence ``message`` for humans. A ``None`` result means success.

An exception is classified by the ``redrive_classify`` hook: plugins answer first, then :class:`BuiltinClassifier`
(registered last) applies the action kind's own rules (``ActionKind.classify``; the HTTP client's live in
``redrive.actions.http_failures``, SMTP's in ``redrive.actions.email``) and finally :func:`classify_raised`.

Everything is pure: no I/O, no clock reads (the caller passes ``now``), no global state.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Literal

from redrive.action_errors import PermanentError, TransientError
from redrive.hookspecs import hookimpl

__all__ = [
    "MAX_RETRY_AFTER",
    "BuiltinClassifier",
    "Category",
    "Failure",
    "classify_exit",
    "classify_http_status",
    "classify_raised",
    "classify_smtp",
    "clip",
    "parse_retry_after",
    "permanent",
    "smtp_reply",
    "transient",
    "with_reply",
]

Category = Literal["transient", "permanent"]

MAX_RETRY_AFTER = 86400.0
"""Longest wait (seconds) we honour from a ``Retry-After`` header: 24 hours."""

_MAX_TEXT = 300  # cap on any server- or exception-provided text we copy into a message
_MAX_REASON = 100
_TRANSIENT_HTTP = frozenset({408, 425, 429})
_EX_TEMPFAIL = 75


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an attempt failed and whether trying again can help."""

    category: Category
    code: str
    message: str
    retry_after: float | None = None
    pause_trigger: bool = False


def permanent(code: str, message: str) -> Failure:
    """Build a permanent failure (retrying cannot help)."""
    return Failure("permanent", code, message)


def transient(code: str, message: str) -> Failure:
    """Build a transient failure (a later attempt may succeed)."""
    return Failure("transient", code, message)


def clip(text: str, limit: int = _MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Parse an RFC 9110 ``Retry-After`` value into seconds from ``now``, capped at ``MAX_RETRY_AFTER``."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        # delta-seconds; a very long digit string is simply "a lot" (and int() refuses > 4300 digits)
        return MAX_RETRY_AFTER if len(value) > 9 else min(float(int(value)), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime form or a "-0000" zone: HTTP-dates are always UTC
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    delta = (when - now).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_AFTER)


def _status_text(status: int, reason: str) -> str:
    if reason.strip():
        phrase = clip(reason, _MAX_REASON)
    else:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
    return f"HTTP {status} {phrase}".rstrip()


def classify_http_status(
    status: int, *, reason: str = "", retry_after: str | None = None, now: datetime
) -> Failure | None:
    """Classify an HTTP response status; ``None`` means success (2xx)."""
    if 200 <= status <= 299:
        return None
    code = f"http_{status}"
    text = _status_text(status, reason)
    wait = parse_retry_after(retry_after, now)
    if 300 <= status <= 399:
        return Failure("permanent", code, f"{text} from the target; redirects are not followed", wait)
    if status == 410:
        return Failure("permanent", code, f"{text} from the target; it no longer accepts deliveries", wait, True)
    if status in _TRANSIENT_HTTP or 500 <= status <= 599:
        return Failure("transient", code, f"{text} from the target", wait)
    if 400 <= status <= 499:
        return Failure("permanent", code, f"{text} from the target", wait)
    return Failure("permanent", code, f"{text} from the target is not a valid final status", wait)


def classify_raised(exc: BaseException) -> Failure:
    """The rules for any exception, whatever raised it: ``TransientError``/``PermanentError`` say what they are;
    timeouts and broken connections are transient; anything else is a permanent ``action_error``."""
    if isinstance(exc, TransientError | PermanentError):
        category: Category = "transient" if isinstance(exc, TransientError) else "permanent"
        code = exc.code or exc.default_code
        retry_after = min(exc.retry_after, MAX_RETRY_AFTER) if exc.retry_after is not None else None
        return Failure(category, code, clip(exc.message), retry_after)
    if isinstance(exc, TimeoutError):
        return transient("timeout", "The action timed out")
    # Raw socket errors are wrapped by the clients, but classify them alike if they leak through.
    if isinstance(exc, socket.gaierror):
        return transient("dns_failure", "DNS lookup for the target failed")
    if isinstance(exc, ConnectionRefusedError):
        return transient("connection_refused", "Connection refused by the target")
    if isinstance(exc, ConnectionError):
        return transient("connection_error", clip(f"Connection to the target failed: {type(exc).__name__}"))
    return permanent("action_error", clip(f"{type(exc).__name__}: {exc}"))


class BuiltinClassifier:
    """The built-in rules as a ``redrive_classify`` plugin that runs last: the action kind's own rules
    (``ActionKind.classify``), then :func:`classify_raised`. It always answers, so classification always ends."""

    def __init__(self, kinds: Mapping[str, Callable[[BaseException], Failure | None] | None]) -> None:
        self._kinds = dict(kinds)

    @hookimpl(trylast=True)
    def redrive_classify(self, kind: str, exc: BaseException) -> Failure:
        """The kind's rules, then the rules for any exception."""
        rules = self._kinds.get(kind)
        return (rules(exc) if rules is not None else None) or classify_raised(exc)


def classify_exit(returncode: int | None, *, timed_out: bool) -> Failure | None:
    """Classify a command's exit; ``None`` means success (exit 0). Negative codes mean killed by a signal."""
    if timed_out:
        return transient("command_timeout", "The command did not finish within its timeout and was killed")
    if returncode is None:
        return permanent("exit_unknown", "The command ended without an exit status")
    if returncode == 0:
        return None
    if returncode == _EX_TEMPFAIL:
        return transient("exit_75", "The command exited with 75 (EX_TEMPFAIL): a temporary failure")
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return transient(f"signal_{name}", f"The command was killed by signal {name}")
    if returncode == 126:
        return permanent("exit_126", "The command exited with 126: the program is not executable")
    if returncode == 127:
        return permanent("exit_127", "The command exited with 127: command not found")
    return permanent(f"exit_{returncode}", f"The command exited with status {returncode}")


def with_reply(prefix: str, message: str) -> str:
    """``prefix: reply`` with the reply clipped, or just the prefix when the reply is empty."""
    reply = clip(message.strip())
    return f"{prefix}: {reply}" if reply else prefix


def classify_smtp(code: int, message: str) -> Failure | None:
    """Classify an SMTP reply; ``None`` means the server accepted (2xx/3xx)."""
    if 200 <= code <= 399:
        return None
    text = with_reply(f"SMTP server replied {code}", message)
    if 400 <= code <= 499:
        return transient(f"smtp_{code}", text)
    if 500 <= code <= 599:
        return permanent(f"smtp_{code}", text)
    return permanent("smtp_protocol", with_reply(f"Invalid SMTP reply code {code}", message))


def smtp_reply(code: int, message: str) -> Failure:
    """Classify the reply an SMTP exception carries; a non-error code there is a protocol error."""
    failure = classify_smtp(code, message)
    if failure is not None:
        return failure
    return permanent("smtp_protocol", with_reply(f"SMTP error raised on a non-error reply {code}", message))
