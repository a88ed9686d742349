"""Unit tests for redrive.failures.classify: HTTP statuses, Retry-After, exceptions, exit codes and SMTP replies."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import aiohttp
import aiosmtplib
import pytest
from aiohttp.client_reqrep import ConnectionKey
from hypothesis import given, settings
from hypothesis import strategies as st

from redrive.actions.email import classify_smtp_exception
from redrive.failures.classify import (
    MAX_RETRY_AFTER,
    Failure,
    classify_exit,
    classify_http_status,
    classify_smtp,
    parse_retry_after,
    permanent,
    transient,
)
from redrive.plugins import builtin_registry


def classify_exception(exc: BaseException) -> Failure:
    """An exception of an ``http`` action, classified as the worker does: through the registry."""
    return builtin_registry().classify("http", exc)


NOW = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def key(host: str = "hooks.example.com", port: int = 443) -> ConnectionKey:
    return ConnectionKey(host, port, True, True, None, None, None)


# --- helpers -----------------------------------------------------------------------------------------------


def test_permanent_and_transient_helpers() -> None:
    assert permanent("template_error", "Template failed") == Failure("permanent", "template_error", "Template failed")
    assert transient("x", "y") == Failure("transient", "x", "y", retry_after=None, pause_trigger=False)


def test_failure_is_frozen() -> None:
    failure = permanent("a", "b")
    with pytest.raises(AttributeError):
        failure.code = "c"  # type: ignore[misc]


# --- Retry-After -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("120", 120.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("86400", 86400.0),
        ("86401", MAX_RETRY_AFTER),
        ("999999999999999999999999", MAX_RETRY_AFTER),
        ("9" * 5000, MAX_RETRY_AFTER),
        ("-5", None),
        ("+5", None),
        ("1.5", None),
        ("120s", None),
        ("garbage", None),
        ("١٢٠", None),  # non-ASCII digits are not delta-seconds
        (http_date(NOW + timedelta(seconds=90)), 90.0),
        (http_date(NOW - timedelta(days=3)), 0.0),
        (http_date(NOW), 0.0),
        (http_date(NOW + timedelta(days=30)), MAX_RETRY_AFTER),
        ("Wed, 15 Jan 2025 12:05:00 GMT", 300.0),
        ("Wed Jan 15 12:01:00 2025", 60.0),  # asctime form has no zone: HTTP-dates are UTC
        ("Wednesday, 15-Jan-25 12:00:30 GMT", 30.0),  # obsolete RFC 850 form
        ("Wed, 15 Jan 2025 12:00:10 -0000", 10.0),
        ("Wed, 31 Feb 2025 12:00:00 GMT", None),
        ("Wed, 15 Jan 99999 12:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_date_relative_to_other_zone_now() -> None:
    now = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert parse_retry_after(http_date(NOW + timedelta(seconds=45)), now) == 45.0


def test_parse_retry_after_naive_now_is_utc() -> None:
    assert parse_retry_after(http_date(NOW + timedelta(seconds=5)), NOW.replace(tzinfo=None)) == 5.0


@settings(database=None)
@given(st.text(max_size=60))
def test_parse_retry_after_never_raises_and_stays_in_range(value: str) -> None:
    result = parse_retry_after(value, NOW)
    assert result is None or 0.0 <= result <= MAX_RETRY_AFTER


@settings(database=None)
@given(st.integers(min_value=0, max_value=10**40))
def test_parse_retry_after_delta_seconds(seconds: int) -> None:
    assert parse_retry_after(str(seconds), NOW) == min(float(seconds), MAX_RETRY_AFTER)


# --- HTTP status -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_success(status: int) -> None:
    assert classify_http_status(status, now=NOW) is None


@pytest.mark.parametrize(
    ("status", "category", "pause", "phrase"),
    [
        (301, "permanent", False, "Moved Permanently"),
        (302, "permanent", False, "Found"),
        (400, "permanent", False, "Bad Request"),
        (401, "permanent", False, "Unauthorized"),
        (404, "permanent", False, "Not Found"),
        (408, "transient", False, "Request Timeout"),
        (410, "permanent", True, "Gone"),
        (413, "permanent", False, ""),  # phrase differs across Python versions
        (425, "transient", False, "Too Early"),
        (429, "transient", False, "Too Many Requests"),
        (500, "transient", False, "Internal Server Error"),
        (502, "transient", False, "Bad Gateway"),
        (503, "transient", False, "Service Unavailable"),
        (504, "transient", False, "Gateway Timeout"),
        (599, "transient", False, ""),
        (100, "permanent", False, "Continue"),
        (600, "permanent", False, ""),
        (0, "permanent", False, ""),
    ],
)
def test_http_status_table(status: int, category: str, pause: bool, phrase: str) -> None:
    failure = classify_http_status(status, now=NOW)
    assert failure is not None
    assert failure.category == category
    assert failure.code == f"http_{status}"
    assert failure.pause_trigger is pause
    assert failure.retry_after is None
    assert failure.message.startswith(f"HTTP {status} {phrase}".rstrip())


def test_503_message_reads_as_a_sentence() -> None:
    failure = classify_http_status(503, now=NOW)
    assert failure == Failure("transient", "http_503", "HTTP 503 Service Unavailable from the target")


def test_redirect_message_says_redirects_are_not_followed() -> None:
    failure = classify_http_status(301, now=NOW)
    assert failure is not None
    assert "redirects are not followed" in failure.message


def test_reason_from_the_server_is_used_and_capped() -> None:
    failure = classify_http_status(500, reason="Database\n  on fire", now=NOW)
    assert failure is not None
    assert failure.message == "HTTP 500 Database on fire from the target"
    long = classify_http_status(500, reason="x" * 5000, now=NOW)
    assert long is not None
    assert len(long.message) < 200


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "30", 30.0),
        (503, "120", 120.0),
        (503, http_date(NOW + timedelta(minutes=10)), 600.0),
        (503, http_date(NOW - timedelta(minutes=10)), 0.0),
        (429, "604800", MAX_RETRY_AFTER),
        (429, "soon", None),
        (429, None, None),
        (404, "60", 60.0),  # parsed whenever present; only retries act on it
    ],
)
def test_retry_after_is_carried(status: int, header: str | None, expected: float | None) -> None:
    failure = classify_http_status(status, retry_after=header, now=NOW)
    assert failure is not None
    assert failure.retry_after == expected


# --- HTTP client exceptions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "category", "code"),
    [
        (
            aiohttp.ClientConnectorDNSError(key(), socket.gaierror(-2, "Name or service not known")),
            "transient",
            "dns_failure",
        ),
        (
            aiohttp.ClientConnectorError(key(), socket.gaierror(-3, "Temporary failure")),
            "transient",
            "dns_failure",
        ),
        (socket.gaierror(-2, "Name or service not known"), "transient", "dns_failure"),
        (
            aiohttp.ClientConnectorCertificateError(
                key(), ssl.SSLCertVerificationError(1, "certificate verify failed")
            ),
            "transient",
            "tls_error",
        ),
        (
            aiohttp.ClientConnectorSSLError(key(), ssl.SSLError(1, "wrong version number")),
            "transient",
            "tls_error",
        ),
        (ssl.SSLError(1, "handshake failure"), "transient", "tls_error"),
        (
            aiohttp.ServerFingerprintMismatch(b"\x00" * 32, b"\x01" * 32, "hooks.example.com", 443),
            "transient",
            "tls_error",
        ),
        (aiohttp.ConnectionTimeoutError("Connection timeout to host"), "transient", "connect_timeout"),
        (
            aiohttp.ClientConnectorError(key(), TimeoutError(110, "Connection timed out")),
            "transient",
            "connect_timeout",
        ),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), "transient", "timeout"),
        (aiohttp.ServerTimeoutError("Timeout"), "transient", "timeout"),
        (TimeoutError(), "transient", "timeout"),
        (
            aiohttp.ClientConnectorError(key(), ConnectionRefusedError(111, "Connection refused")),
            "transient",
            "connection_refused",
        ),
        (ConnectionRefusedError(111, "Connection refused"), "transient", "connection_refused"),
        (aiohttp.ClientConnectorError(key(), OSError(113, "No route to host")), "transient", "connect_error"),
        (aiohttp.ServerDisconnectedError(), "transient", "connection_error"),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), "transient", "connection_error"),
        (aiohttp.ClientPayloadError("Response payload is not completed"), "transient", "connection_error"),
        (
            aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
            "transient",
            "connection_error",
        ),
        (ConnectionResetError(104, "Connection reset by peer"), "transient", "connection_error"),
        (aiohttp.InvalidURL("not a url"), "permanent", "invalid_url"),
        (aiohttp.InvalidUrlClientError("http://"), "permanent", "invalid_url"),
        (aiohttp.NonHttpUrlClientError("ftp://files.example.com/x"), "permanent", "invalid_url"),
        (ValueError("boom"), "permanent", "action_error"),
        (RuntimeError(), "permanent", "action_error"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_classify_exception(exc: BaseException, category: str, code: str) -> None:
    assert str(exc) is not None  # the instance is well-formed
    failure = classify_exception(exc)
    assert (failure.category, failure.code) == (category, code)
    assert failure.retry_after is None
    assert failure.pause_trigger is False
    assert failure.message


def test_connector_errors_name_the_host() -> None:
    failure = classify_exception(
        aiohttp.ClientConnectorError(key("api.example.com", 8443), ConnectionRefusedError(111, "refused"))
    )
    assert failure.message == "Connection refused by api.example.com:8443"
    dns = classify_exception(aiohttp.ClientConnectorDNSError(key("nope.invalid"), socket.gaierror(-2, "x")))
    assert dns.message == "DNS lookup failed for nope.invalid"


def test_invalid_url_message_does_not_leak_credentials() -> None:
    failure = classify_exception(aiohttp.InvalidURL("https://user:s3cret@host/?token=abc"))
    assert "s3cret" not in failure.message
    assert "abc" not in failure.message


def test_unknown_exception_message_and_cap() -> None:
    assert classify_exception(ValueError("boom")).message == "ValueError: boom"
    assert len(classify_exception(RuntimeError("y" * 10_000)).message) <= 300


# --- command exits -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returncode", "timed_out", "category", "code"),
    [
        (1, False, "permanent", "exit_1"),
        (2, False, "permanent", "exit_2"),
        (75, False, "transient", "exit_75"),
        (126, False, "permanent", "exit_126"),
        (127, False, "permanent", "exit_127"),
        (137, False, "permanent", "exit_137"),
        (-9, False, "transient", "signal_SIGKILL"),
        (-15, False, "transient", "signal_SIGTERM"),
        (-200, False, "transient", "signal_200"),
        (None, False, "permanent", "exit_unknown"),
        (None, True, "transient", "command_timeout"),
        (-9, True, "transient", "command_timeout"),
        (0, True, "transient", "command_timeout"),
    ],
)
def test_classify_exit(returncode: int | None, timed_out: bool, category: str, code: str) -> None:
    failure = classify_exit(returncode, timed_out=timed_out)
    assert failure is not None
    assert (failure.category, failure.code) == (category, code)


def test_exit_zero_is_success() -> None:
    assert classify_exit(0, timed_out=False) is None


@pytest.mark.parametrize(("returncode", "words"), [(126, "not executable"), (127, "command not found")])
def test_exit_specific_messages(returncode: int, words: str) -> None:
    failure = classify_exit(returncode, timed_out=False)
    assert failure is not None
    assert words in failure.message


# --- SMTP replies ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [220, 221, 250, 251, 354])
def test_smtp_success(code: int) -> None:
    assert classify_smtp(code, "OK") is None


@pytest.mark.parametrize(
    ("code", "category"),
    [
        (421, "transient"),
        (450, "transient"),
        (451, "transient"),
        (550, "permanent"),
        (553, "permanent"),
        (554, "permanent"),
    ],
)
def test_smtp_codes(code: int, category: str) -> None:
    failure = classify_smtp(code, "  5.1.1 mailbox unavailable \r\n")
    assert failure is not None
    assert (failure.category, failure.code) == (category, f"smtp_{code}")
    assert failure.message == f"SMTP server replied {code}: 5.1.1 mailbox unavailable"


@pytest.mark.parametrize("code", [-1, 0, 199, 600])
def test_smtp_invalid_codes(code: int) -> None:
    failure = classify_smtp(code, "Malformed SMTP response line")
    assert failure is not None
    assert (failure.category, failure.code) == ("permanent", "smtp_protocol")


def test_smtp_reply_text_is_capped() -> None:
    failure = classify_smtp(550, "z" * 2000)
    assert failure is not None
    assert len(failure.message) <= 330
    assert failure.message.endswith("…")


@pytest.mark.parametrize(
    ("exc", "category", "code"),
    [
        (aiosmtplib.SMTPResponseException(421, "Service not available"), "transient", "smtp_421"),
        (aiosmtplib.SMTPResponseException(550, "No such user"), "permanent", "smtp_550"),
        (aiosmtplib.SMTPResponseException(250, "OK"), "permanent", "smtp_protocol"),
        (aiosmtplib.SMTPResponseException(-1, "Malformed SMTP response line"), "permanent", "smtp_protocol"),
        (
            aiosmtplib.SMTPSenderRefused(553, "Sender address rejected", "a@example.com"),
            "permanent",
            "smtp_553",
        ),
        (aiosmtplib.SMTPDataError(554, "Message rejected"), "permanent", "smtp_554"),
        (aiosmtplib.SMTPHeloError(451, "Try again"), "transient", "smtp_451"),
        (aiosmtplib.SMTPConnectResponseError(421, "Too busy"), "transient", "smtp_421"),
        (aiosmtplib.SMTPConnectResponseError(554, "No SMTP service here"), "permanent", "smtp_554"),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [
                    aiosmtplib.SMTPRecipientRefused(450, "Mailbox busy", "a@example.com"),
                    aiosmtplib.SMTPRecipientRefused(550, "No such user", "b@example.com"),
                ]
            ),
            "transient",
            "smtp_450",
        ),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "No such user", "b@x.org")]),
            "permanent",
            "smtp_550",
        ),
        (aiosmtplib.SMTPRecipientsRefused([]), "permanent", "smtp_error"),
        (aiosmtplib.SMTPRecipientRefused(551, "User not local", "c@example.com"), "permanent", "smtp_551"),
        (
            aiosmtplib.SMTPAuthenticationError(535, "Authentication credentials invalid"),
            "permanent",
            "smtp_auth",
        ),
        (aiosmtplib.SMTPAuthenticationError(530, "Authentication required"), "permanent", "smtp_auth"),
        (
            aiosmtplib.SMTPAuthenticationError(454, "Temporary authentication failure"),
            "transient",
            "smtp_454",
        ),
        (
            aiosmtplib.SMTPConnectError("Error connecting to smtp.example.com on port 587"),
            "transient",
            "smtp_connect_error",
        ),
        (aiosmtplib.SMTPServerDisconnected("Connection lost"), "transient", "smtp_connect_error"),
        (ConnectionRefusedError(111, "Connection refused"), "transient", "smtp_connect_error"),
        (OSError(101, "Network is unreachable"), "transient", "smtp_connect_error"),
        (
            aiosmtplib.SMTPConnectTimeoutError("Timed out connecting to smtp.example.com"),
            "transient",
            "smtp_timeout",
        ),
        (
            aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"),
            "transient",
            "smtp_timeout",
        ),
        (aiosmtplib.SMTPTimeoutError("Timed out"), "transient", "smtp_timeout"),
        (TimeoutError(), "transient", "smtp_timeout"),
        (
            aiosmtplib.SMTPNotSupported("SMTP STARTTLS extension not supported by server"),
            "permanent",
            "smtp_error",
        ),
        (aiosmtplib.SMTPException("Something odd"), "permanent", "smtp_error"),
        (RuntimeError("boom"), "permanent", "smtp_error"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_classify_smtp_exception(exc: BaseException, category: str, code: str) -> None:
    assert str(exc) is not None  # the instance is well-formed
    failure = classify_smtp_exception(exc)
    assert (failure.category, failure.code) == (category, code)
    assert failure.message


def test_smtp_exception_message_carries_the_server_reply() -> None:
    failure = classify_smtp_exception(aiosmtplib.SMTPResponseException(550, "5.1.1 <bob@example.com> unknown"))
    assert failure.message == "SMTP server replied 550: 5.1.1 <bob@example.com> unknown"
    auth = classify_smtp_exception(aiosmtplib.SMTPAuthenticationError(535, "5.7.8 bad credentials"))
    assert auth.message == "SMTP authentication was refused (535): 5.7.8 bad credentials"
