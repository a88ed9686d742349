"""Turn raw action outcomes into a classified :class:`Failure`.

Every action ends in one of four raw shapes: an HTTP status, an exception from the HTTP client, a process
exit code, or an SMTP reply (or exception). The functions here map each shape to a ``Failure`` that says
whether trying again can help (``transient``) or not (``permanent``), with a stable ``code`` for grouping and
a one-sentence ``message`` for humans. A ``None`` result means the outcome was a success.

Everything is pure: no I/O, no clock reads (the caller passes ``now``), no global state.
"""

from __future__ import annotations

import signal
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Literal

import aiohttp
import aiosmtplib

__all__ = [
    "MAX_RETRY_AFTER",
    "Category",
    "Failure",
    "classify_exception",
    "classify_exit",
    "classify_http_status",
    "classify_smtp",
    "classify_smtp_exception",
    "parse_retry_after",
    "permanent",
    "transient",
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


def _clip(text: str, limit: int = _MAX_TEXT) -> str:
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
        phrase = _clip(reason, _MAX_REASON)
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


def _conn_error(exc: aiohttp.ClientConnectorError) -> Failure:
    os_error = exc.os_error
    where = f"{exc.host}:{exc.port}"
    if isinstance(os_error, socket.gaierror):
        return transient("dns_failure", f"DNS lookup failed for {exc.host}")
    if isinstance(os_error, TimeoutError):
        return transient("connect_timeout", f"Timed out connecting to {where}")
    if isinstance(os_error, ConnectionRefusedError):
        return transient("connection_refused", f"Connection refused by {where}")
    detail = os_error.strerror or type(os_error).__name__
    return transient("connect_error", _clip(f"Could not connect to {where}: {detail}"))


def classify_exception(exc: BaseException) -> Failure:
    """Classify an exception raised by an outbound HTTP request (aiohttp / asyncio)."""
    # Order matters: aiohttp's TLS errors are ClientConnectorErrors and its timeouts are TimeoutErrors
    # (hence OSErrors), so subclasses are checked before their bases.
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return transient("dns_failure", f"DNS lookup failed for {exc.host}")
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError | aiohttp.ServerFingerprintMismatch):
        return transient("tls_error", "TLS handshake or certificate verification with the target failed")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return transient("connect_timeout", "Timed out connecting to the target")
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError, SocketTimeoutError, ServerTimeoutError
        return transient("timeout", "The request to the target timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _conn_error(exc)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return transient("connection_error", "The target closed the connection before responding")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return transient("connection_error", "The response body from the target was truncated or malformed")
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.UploadAbortedError):
        return transient("connection_error", _clip(f"Connection to the target failed: {type(exc).__name__}"))
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return permanent("invalid_url", "The target URL is invalid or not an http(s) URL")
    # Raw socket errors should be wrapped by aiohttp, but classify them the same if they leak through.
    if isinstance(exc, socket.gaierror):
        return transient("dns_failure", "DNS lookup for the target failed")
    if isinstance(exc, ConnectionRefusedError):
        return transient("connection_refused", "Connection refused by the target")
    if isinstance(exc, ConnectionError):
        return transient("connection_error", _clip(f"Connection to the target failed: {type(exc).__name__}"))
    return permanent("action_error", _clip(f"{type(exc).__name__}: {exc}"))


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


def _with_reply(prefix: str, message: str) -> str:
    reply = _clip(message.strip())
    return f"{prefix}: {reply}" if reply else prefix


def classify_smtp(code: int, message: str) -> Failure | None:
    """Classify an SMTP reply; ``None`` means the server accepted (2xx/3xx)."""
    if 200 <= code <= 399:
        return None
    text = _with_reply(f"SMTP server replied {code}", message)
    if 400 <= code <= 499:
        return transient(f"smtp_{code}", text)
    if 500 <= code <= 599:
        return permanent(f"smtp_{code}", text)
    return permanent("smtp_protocol", _with_reply(f"Invalid SMTP reply code {code}", message))


def _smtp_reply(code: int, message: str) -> Failure:
    failure = classify_smtp(code, message)
    if failure is not None:
        return failure
    return permanent("smtp_protocol", _with_reply(f"SMTP error raised on a non-error reply {code}", message))


def classify_smtp_exception(exc: BaseException) -> Failure:
    """Classify an exception raised while sending mail with aiosmtplib."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError) and not 400 <= exc.code <= 499:
        return permanent("smtp_auth", _with_reply(f"SMTP authentication was refused ({exc.code})", exc.message))
    if isinstance(exc, aiosmtplib.SMTPResponseException):  # includes SMTPConnectResponseError
        return _smtp_reply(exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        if exc.recipients:
            first = exc.recipients[0]
            return _smtp_reply(first.code, first.message)
        return permanent("smtp_error", "The SMTP server refused the recipients")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return transient("smtp_timeout", _with_reply("Timed out talking to the SMTP server", str(exc)))
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | OSError):
        return transient(
            "smtp_connect_error",
            _with_reply(f"Could not reach the SMTP server ({type(exc).__name__})", str(exc)),
        )
    return permanent("smtp_error", _with_reply(f"SMTP error ({type(exc).__name__})", str(exc)))
