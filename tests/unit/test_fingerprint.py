"""Unit tests for redrive.failures.fingerprint: what normalising removes and keeps, and what makes two
failures one group."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redrive.failures.fingerprint import MAX_NORMALISED, fingerprint, normalise

TEMPLATE = (
    "Order {order} for {customer} ({email}) failed at {when}: POST https://api.example.com/v1/orders/{order}?{query} "
    "via {address} answered {quoted} (request {request}, trace {trace}, took {ms}ms)"
)
# Ten occurrences of one cause: only ids, numbers, times, addresses and quoted values change.
OCCURRENCES = [
    ("1", "cus_123abc", "bob@example.com", "2025-01-15T12:00:00Z", "attempt=1", "10.0.0.1:443", "'card declined'",
     "9f8e7d6c5b4a3f2e", "550e8400-e29b-41d4-a716-446655440000", "12"),
    ("42", "cus_Nf9xq2LpQ7", "alice.smith+tag@mail.example.org", "2025-01-15T12:00:00.123+01:00", "a=1&b=2",
     "192.168.1.20:8080", '"insufficient funds"', "0a1b2c3d4e5f", "123e4567-E89B-12D3-A456-426614174000", "7"),
    ("987654", "msg_p5jXN8AQM9LWM0D4loKWxJek", "x@y.io", "Wed, 15 Jan 2025 12:00:00 GMT", "token=abc123&sig=ff00",
     "[2001:db8::1]:443", "'expired'", "deadbeef0123", "00000000-0000-0000-0000-000000000000", "1500"),
    ("3", "cus_AbCdEfGh12345678", "ops@example.net", "2024-12-31", "", "127.0.0.1", "''", "0xDEADBEEF",
     "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "0"),
    ("1000000", "cus_zz99", "b@c.de", "2025-06-01 08:30:15", "q=hello%20world", "8.8.8.8:53", "'x'", "abc123def456",
     "6ba7b811-9dad-11d1-80b4-00c04fd430c8", "99"),
    ("77", "cus_777aaa", "first.last@sub.example.com", "Mon, 2 Jun 2025 23:59:59 +0200", "page=2", "[::1]:8443",
     "'what a \"nice\" day'", "ABCDEF0123456789", "f47ac10b-58cc-4372-a567-0e02b2c3d479", "3"),
    ("5", "cus_q1w2e3r4", "z@z.zz", "2025-01-15T23:59:59", "id=550e8400", "172.16.0.1:1", "\"\"", "1234abcd",
     "9c858901-8a57-4791-81fe-4c455b099bc9", "250"),
    ("600", "cus_9x9x9x", "u_1@example.com", "1999-12-31T23:59:59-05:00", "x", "203.0.113.9:65535", "'rejected'",
     "cafebabe42", "c9bf9e57-1685-4c89-bafb-ff5af830be8a", "1"),
    ("12345", "cus_ABC123def", "someone@example.co.uk", "Fri, 31 Jan 2025 00:00:00 UTC", "a[]=1&a[]=2",
     "[fe80::1ff:fe23:4567:890a]:80", "'über'", "0x0", "a8098c1a-f86e-11da-bd1a-00112444be1e", "60000"),
    ("31", "cus_r2d2c3po", "q@q.example", "2025-01-15T00:00Z", "utm_source=mail", "100.64.0.1:3000",
     "'line one line two'", "0123456789abcdef0123456789abcdef", "3f333df6-90a4-4fda-8dd3-9485d27cee36", "45"),
]  # fmt: skip
FIELDS = ("order", "customer", "email", "when", "query", "address", "quoted", "request", "trace", "ms")
MESSAGES = [TEMPLATE.format(**dict(zip(FIELDS, values, strict=True))) for values in OCCURRENCES]


def test_ten_occurrences_of_one_cause_share_one_fingerprint() -> None:
    assert len(set(MESSAGES)) == 10
    assert {fingerprint("orders", "http", "http_502", message) for message in MESSAGES} == {
        fingerprint("orders", "http", "http_502", MESSAGES[0])
    }
    assert normalise(MESSAGES[0]) == (
        "Order <n> for <id> (<email>) failed at <time>: POST https://api.example.com/v1/orders/<n>?<query> "
        "via <ip> answered <str> (request <hex>, trace <uuid>, took <n>ms)"
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("trace 550e8400-e29b-41d4-a716-446655440000 lost", "trace 123E4567-E89B-12D3-A456-426614174000 lost"),
        ("order 1 failed", "order 981273 failed"),
        ("order_1 failed", "order_981273 failed"),
        ("order-1 failed", "order-981273 failed"),
        ("at 2025-01-15T12:00:00Z", "at 2024-02-29T23:59:59.999999+05:30"),
        ("at Wed, 15 Jan 2025 12:00:00 GMT", "at Thu, 1 Feb 2024 08:00:00 +0100"),
        ("at 12:00", "at 23:59:59.5"),
        ("request id 9f8e7d6c5b4a3f2e", "request id 00ab11cd22ef33aa"),
        ("address 0x7f3a2b", "address 0xDEADBEEF"),
        ("missing 'amount'", "missing 'currency'"),
        ('got "abc"', 'got "a longer value"'),
        ("GET https://h.example/p?a=1&b=2 failed", "GET https://h.example/p?token=zzz failed"),
        ("Connection refused by 10.0.0.1:443", "Connection refused by 192.168.10.200:8080"),
        ("Connection refused by [2001:db8::1]:443", "Connection refused by 127.0.0.1:5000"),
        ("to bob@example.com", "to alice+x@mail.example.org"),
        ("customer cus_123abc", "customer cus_Zx9YwQ8"),
        ("message msg_p5jXN8AQM9LWM0D4loKWxJek", "message msg_A1b2C3d4E5f6G7h8I9j0"),
        ("took 1.5s", "took 30s"),
        ("  spaced\tout\n text ", "spaced out text"),
    ],
)
def test_messages_differing_only_in_values_normalise_equal(first: str, second: str) -> None:
    assert normalise(first) == normalise(second)
    assert fingerprint("t", "http", "http_500", first) == fingerprint("t", "http", "http_500", second)


def test_different_causes_get_different_fingerprints() -> None:
    base = ("orders", "http", "connection_refused", "Connection refused by 10.0.0.1:443")
    variants = {
        fingerprint(*base),
        fingerprint("invoices", "http", "connection_refused", base[3]),
        fingerprint("orders", "command", "connection_refused", base[3]),
        fingerprint("orders", "http", "connect_timeout", base[3]),
        fingerprint("orders", "http", "connection_refused", "Connection reset by 10.0.0.1:443"),
        fingerprint("orders", "http", "connection_refused", "Connection refused by 10.0.0.1:443 after TLS"),
    }
    assert len(variants) == 6


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("connection refused", "connection reset"),
        ("5.1.1 <a@b.example>: User unknown", "5.7.1 <a@b.example>: User unknown"),
        ("KeyError: 'amount'", "TypeError: 'amount'"),
        ("tool v1.2.3 crashed", "tool v1.2.4 crashed"),
        ("order123 failed", "order124 failed"),
        ("https://a.example/x?q=1", "https://b.example/x?q=1"),
        ("https://a.example/orders?q=1", "https://a.example/refunds?q=1"),
    ],
)
def test_different_wording_keeps_messages_apart(first: str, second: str) -> None:
    assert normalise(first) != normalise(second)
    assert fingerprint("t", "k", "c", first) != fingerprint("t", "k", "c", second)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("", ""),
        ("HTTP 503 Service Unavailable from the target", "HTTP <n> Service Unavailable from the target"),
        ("GET https://api.example.com/v1/items?page=2&per_page=50", "GET https://api.example.com/v1/items?<query>"),
        ("see https://h.example/p#frag", "see https://h.example/p#frag"),
        ("at http://[::1]:8080/x?y=1 now", "at http://<ip>/x?<query> now"),
        ("id 550e8400-e29b-41d4-a716-446655440000.", "id <uuid>."),
        ("at 2025-01-15T12:00:00.123456Z", "at <time>"),
        ("on 2025-01-15, again", "on <time>, again"),
        ("Retry after Wed, 15 Jan 2025 12:00:00 GMT.", "Retry after <time>."),
        ("at 09:15:00 sharp", "at <time> sharp"),
        ("Could not connect to 10.0.0.1:5432: refused", "Could not connect to <ip>: refused"),
        ("from ::1 and fe80::1%eth0", "from <ip> and <ip>"),
        ("v4 mapped ::ffff:192.0.2.1 here", "v4 mapped <ip> here"),
        ("not an address: 1.2.3.999", "not an address: 1.2.3.999"),
        ("<bob@example.com>: Recipient address rejected", "<<email>>: Recipient address rejected"),
        ("sha 9f8e7d6c5b4a and 0x1F", "sha <hex> and <hex>"),
        ("word deadbeef stays", "word deadbeef stays"),
        ("price_1MoBy5LkdIwHu7ixZhnattbh", "<id>"),
        ("evt cus_123abc", "evt <id>"),
        ("order123 order_123 order-123 123", "order123 order_<n> order-<n> <n>"),
        ("took 1.5s, 250ms, 3 MiB and 10%", "took <n>s, <n>ms, <n> MiB and <n>%"),
        ("SMTP 5.1.1 and version 2.31.0", "SMTP 5.1.1 and version 2.31.0"),
        ("KeyError: 'amount'", "KeyError: <str>"),
        ("can't parse \"a b\" in 'x'", "can't parse <str> in <str>"),
        ("'dict object' has no attribute 'total'", "<str> has no attribute <str>"),
        ("it's the server's fault", "it's the server's fault"),
        ("a\n\tb   c ", "a b c"),
    ],
)
def test_normalise_examples(message: str, expected: str) -> None:
    assert normalise(message) == expected


def test_long_messages_are_cut_between_words() -> None:
    message = " ".join(["word"] * 100)
    normalised = normalise(message)
    assert len(normalised) <= MAX_NORMALISED == 200
    assert normalised == " ".join(["word"] * 40)[:199]


def test_a_single_long_word_is_cut_inside() -> None:
    assert normalise("x" * 500) == "x" * 200


def test_the_cap_applies_after_substitution() -> None:
    message = "failed for " + " ".join(f"550e8400-e29b-41d4-a716-{index:012d}" for index in range(20))
    assert len(message) > 700
    assert normalise(message) == "failed for " + " ".join(["<uuid>"] * 20)


def test_fingerprint_is_sha256_of_the_parts_and_stable() -> None:
    message = "HTTP 503 Service Unavailable from the target"
    material = "orders\0http\0http_503\0HTTP <n> Service Unavailable from the target"
    assert fingerprint("orders", "http", "http_503", message) == hashlib.sha256(material.encode()).hexdigest()[:16]
    # Pinned: a change here regroups every stored failure, so it needs a migration, not just a new value.
    assert fingerprint("orders", "http", "http_503", message) == "28063c0aee36f3cf"


def test_fields_do_not_bleed_into_each_other() -> None:
    assert fingerprint("ab", "c", "d", "e") != fingerprint("a", "bc", "d", "e")


# Fragments that meet at awkward places: placeholders, quotes, separators, near-misses of every pattern.
FRAGMENTS = [
    "https://", "h.example/p", "?", "a=1", "#", "550e8400-e29b-41d4-a716-446655440000", "2025-01-15", "T12:00:00Z",
    "12:00", ":8080", "10.0.0.1", "::1", "fe80::", "[", "]", "deadbeef12", "0x1f", "cus_123abc", "order_", "123",
    "1.5", "s", "ms", "'", '"', " ", "x", "_", "-", ".", ":", "<", ">", "<n>", "<query>", "@", "a@b.example",
    "Wed, 15 Jan 2025", " GMT", "5.1.1", "%eth0", "abcdef", "0", "A", "é", "\n",
]  # fmt: skip
AWKWARD = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join)
AWKWARD_CHARS = st.text(alphabet="0123456789abcdefxAF_-.:/?@'\" <>[]%#=&TZ+,", max_size=300)


@settings(database=None, max_examples=300)
@given(st.one_of(st.text(max_size=400), AWKWARD, AWKWARD_CHARS))
def test_normalise_is_idempotent_and_capped(message: str) -> None:
    normalised = normalise(message)
    assert len(normalised) <= MAX_NORMALISED
    assert normalise(normalised) == normalised


@settings(database=None)
@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20), st.text(max_size=300))
def test_fingerprint_is_sixteen_lowercase_hex_digits(trigger: str, kind: str, code: str, message: str) -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint(trigger, kind, code, message))
