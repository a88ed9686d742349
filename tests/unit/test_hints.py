"""Unit tests for redrive.failures.hints: every engine error code gets specific advice and a valid one-click remedy."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redrive.failures.fingerprint import normalise
from redrive.failures.hints import Hint, Remedy, hint_for

GENERIC = hint_for("no_such_code")

# Every code redrive.failures.classify and the actions produce (exit_N, signal_N, smtp_NNN and http_NNN by example).
ENGINE_CODES = [
    "http_301",
    "http_302",
    "http_308",
    "http_400",
    "http_401",
    "http_403",
    "http_404",
    "http_408",
    "http_410",
    "http_413",
    "http_422",
    "http_429",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "http_599",
    "dns_failure",
    "tls_error",
    "connection_refused",
    "connect_timeout",
    "connect_error",
    "connection_error",
    "timeout",
    "invalid_url",
    "invalid_method",
    "invalid_header",
    "template_error",
    "target_forbidden",
    "action_error",
    "command_timeout",
    "exit_1",
    "exit_2",
    "exit_75",
    "exit_126",
    "exit_127",
    "exit_137",
    "exit_255",
    "signal_SIGKILL",
    "signal_SIGTERM",
    "signal_SIGSEGV",
    "argv_nul",
    "invalid_env",
    "invalid_cwd",
    "spawn_error",
    "smtp_421",
    "smtp_450",
    "smtp_451",
    "smtp_535",
    "smtp_550",
    "smtp_552",
    "smtp_554",
    "smtp_auth",
    "smtp_connect_error",
    "smtp_timeout",
    "smtp_protocol",
    "smtp_error",
    "invalid_message",
]


@pytest.mark.parametrize("code", ENGINE_CODES)
def test_every_engine_code_has_a_specific_hint(code: str) -> None:
    assert hint_for(code) != GENERIC


@pytest.mark.parametrize("code", [*ENGINE_CODES, "no_such_code"])
def test_hints_are_well_formed(code: str) -> None:
    hint = hint_for(code)
    assert isinstance(hint, Hint)
    assert hint.remedy in get_args(Remedy)
    assert hint.title
    assert hint.title == hint.title.strip()
    assert len(hint.title) <= 40
    assert hint.advice.endswith(".")
    assert 20 <= len(hint.advice) <= 120
    assert hint.advice.count(". ") <= 1  # one or two sentences


@pytest.mark.parametrize(
    ("code", "title", "remedy", "advice_mentions"),
    [
        ("http_401", "Credentials rejected", "replay_group", "API key or token"),
        ("http_404", "Wrong URL", "replay_group", "url template"),
        ("http_410", "Target gone", "fix_config", "paused"),
        ("http_413", "Payload too large for the target", "fix_config", "body"),
        ("http_429", "Rate limited", "pause_trigger", "Retry-After"),
        ("http_503", "Upstream outage", "replay_group", "recover"),
        ("http_301", "Redirect not followed", "fix_config", "final URL"),
        ("dns_failure", "Host name does not resolve", "fix_config", "host name"),
        ("tls_error", "TLS handshake failed", "fix_config", "certificate"),
        ("connection_refused", "Connection refused", "replay_group", "port"),
        ("connect_timeout", "Target unreachable", "replay_group", "firewall"),
        ("timeout", "Request timed out", "raise_timeout", "timeout"),
        ("command_timeout", "Command timed out", "raise_timeout", "timeout"),
        ("exit_126", "Program not executable", "fix_config", "execute"),
        ("exit_127", "Command not found", "fix_config", "PATH"),
        ("exit_137", "Command killed (out of memory?)", "replay_group", "out-of-memory"),
        ("exit_75", "Temporary failure (EX_TEMPFAIL)", "replay_group", "retried"),
        ("exit_3", "Command failed", "none", "stderr"),
        ("smtp_451", "Mail server busy (temporary)", "replay_group", "retried"),
        ("smtp_550", "Mail rejected", "fix_config", "refused"),
        ("smtp_auth", "SMTP login refused", "fix_config", "password"),
        ("smtp_connect_error", "Mail server unreachable", "replay_group", "SMTP host"),
        ("template_error", "Template failed to render", "fix_config", "missing from the payload"),
        ("target_forbidden", "Private address refused", "fix_config", "allow_private"),
        ("invalid_url", "Invalid URL", "fix_config", "url template"),
        ("invalid_header", "Invalid request line or header", "fix_config", "headers"),
        ("argv_nul", "NUL byte in an argument", "fix_config", "NUL"),
    ],
)
def test_catalog_entries(code: str, title: str, remedy: Remedy, advice_mentions: str) -> None:
    hint = hint_for(code)
    assert (hint.title, hint.remedy) == (title, remedy)
    assert advice_mentions in hint.advice


@pytest.mark.parametrize(
    ("code", "same_as"),
    [
        ("http_403", "http_401"),
        ("connect_error", "connect_timeout"),
        ("signal_SIGKILL", "exit_137"),
        ("invalid_method", "invalid_header"),
        ("invalid_cwd", "invalid_env"),
        ("smtp_535", "smtp_auth"),
        ("http_502", "http_500"),
        ("exit_2", "exit_1"),
        ("smtp_421", "smtp_452"),
    ],
)
def test_codes_sharing_a_cause_share_a_hint(code: str, same_as: str) -> None:
    assert hint_for(code) == hint_for(same_as)


def test_exact_codes_win_over_their_family() -> None:
    family = hint_for("exit_3")
    assert {hint_for("exit_75"), hint_for("exit_126"), hint_for("exit_127"), hint_for("exit_137")}.isdisjoint({family})
    assert hint_for("http_429") != hint_for("http_400")
    assert hint_for("signal_SIGKILL") != hint_for("signal_SIGTERM")


MISSING_MAILBOX = "SMTP server replied 550: 5.1.1 <bob@example.com>: Recipient address rejected: User unknown"
POLICY = "SMTP server replied 554: 5.7.1 Message rejected: sender not authorised (SPF fail)"


@pytest.mark.parametrize("code", ["smtp_550", "smtp_554", "smtp_553"])
def test_enhanced_status_5_1_1_means_the_mailbox_does_not_exist(code: str) -> None:
    hint = hint_for(code, MISSING_MAILBOX)
    assert hint.title == "Mailbox does not exist"
    assert "recipient template" in hint.advice
    assert hint.remedy == "fix_config"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("smtp_550", POLICY),
        ("smtp_554", POLICY),
        ("smtp_550", "SMTP server replied 550: 5.7.26 Unauthenticated email is not accepted (DMARC)"),
        ("smtp_554", "SMTP server replied 554: 5.7.0 Relay access denied."),
    ],
)
def test_enhanced_status_5_7_x_means_policy(code: str, message: str) -> None:
    hint = hint_for(code, message)
    assert hint.title == "Refused by mail policy"
    assert "credentials" in hint.advice
    assert "sender" in hint.advice


@pytest.mark.parametrize(
    "message",
    [
        "",
        "SMTP server replied 550: Requested action not taken",
        "SMTP server replied 550: 5.1.10 Recipient address has null MX",  # not 5.1.1
        "SMTP server replied 550: 15.1.1 is not a status code",
        "SMTP server replied 550: 5.1.1.2 is not a status code",
    ],
)
def test_smtp_5xx_without_a_known_enhanced_status_gets_the_general_hint(message: str) -> None:
    assert hint_for("smtp_550", message) == hint_for("smtp_550")
    assert hint_for("smtp_550", message).title == "Mail rejected"


def test_enhanced_status_survives_normalising() -> None:
    # Error groups store the normalised message as their title and ask for hints with it.
    assert hint_for("smtp_550", normalise(MISSING_MAILBOX)).title == "Mailbox does not exist"
    assert hint_for("smtp_554", normalise(POLICY)).title == "Refused by mail policy"


def test_enhanced_status_at_the_end_of_a_sentence() -> None:
    assert hint_for("smtp_550", "mailbox unknown (5.1.1).").title == "Mailbox does not exist"


def test_enhanced_status_only_refines_permanent_smtp_replies() -> None:
    assert hint_for("smtp_451", "4.7.1 try later; 5.7.1 would be final") == hint_for("smtp_451")
    assert hint_for("smtp_auth", MISSING_MAILBOX) == hint_for("smtp_auth")
    assert hint_for("http_550", MISSING_MAILBOX) == hint_for("http_503")


@pytest.mark.parametrize(
    "code",
    ["no_such_code", "", "http_", "http_5000", "http_50", "exit_", "exit_unknown", "exit_-1", "smtp_6", "HTTP_500"],
)
def test_unknown_codes_get_the_generic_hint(code: str) -> None:
    hint = hint_for(code)
    assert hint == GENERIC
    assert hint.remedy == "none"
    assert hint.advice


def test_hint_is_frozen() -> None:
    with pytest.raises(AttributeError):
        GENERIC.title = "x"  # type: ignore[misc]


@settings(database=None)
@given(st.text(max_size=30), st.text(max_size=200))
def test_hint_for_never_raises(code: str, message: str) -> None:
    hint = hint_for(code, message)
    assert hint.remedy in get_args(Remedy)
    assert hint.advice
