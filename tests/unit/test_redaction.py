"""Unit tests for redrive.observe.redaction: configured secrets, URL passwords, secret query values and secret keys."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redrive.observe import redaction
from redrive.observe.redaction import REDACTED, Redactor, is_secret_key

# Characters a URL userinfo password or a query value may hold (unreserved and percent-encoded).
URL_SAFE = string.ascii_letters + string.digits + "-._~%"
# Any text but NUL, which the secret property below uses to stand for the redaction marker.
TEXT = st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]))


def test_configured_secrets_are_masked_everywhere() -> None:
    redactor = Redactor(["s3cr3t-value", "another-one"])
    text = "key=s3cr3t-value; again s3cr3t-value and another-one."
    assert redactor.text(text) == f"key={REDACTED}; again {REDACTED} and {REDACTED}."


def test_a_secret_containing_another_is_masked_whole() -> None:
    redactor = Redactor(["abcdef", "abcdef-123456"])
    assert redactor.text("x abcdef-123456 y abcdef") == f"x {REDACTED} y {REDACTED}"


def test_empty_secrets_are_ignored() -> None:
    assert Redactor(["", "abcdef"]).text("plain text") == "plain text"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://alice:secret@host/x", f"https://alice:{REDACTED}@host/x"),
        ("GET postgresql://app:pa55w0rd@db:5432/app failed", f"GET postgresql://app:{REDACTED}@db:5432/app failed"),
        ("redis://:onlypass@cache:6379", f"redis://:{REDACTED}@cache:6379"),
        ("two: http://a:b@h1/ and ftp://c:d@h2/", f"two: http://a:{REDACTED}@h1/ and ftp://c:{REDACTED}@h2/"),
    ],
)
def test_url_passwords_are_masked(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "https://h/cb?token=abc123&api_key=k-9&sig=zzz&page=2",
            f"https://h/cb?token={REDACTED}&api_key={REDACTED}&sig={REDACTED}&page=2",
        ),
        ("/hook?access_token=ya29.a0&x=1", f"/hook?access_token={REDACTED}&x=1"),
        ("?client_secret=s&password=p#frag", f"?client_secret={REDACTED}&password={REDACTED}#frag"),
        ("?apikey=A&X-Signature=B&APIKEY=C", f"?apikey={REDACTED}&X-Signature={REDACTED}&APIKEY={REDACTED}"),
        ('"url": "https://h/?token=abc"', f'"url": "https://h/?token={REDACTED}"'),
        ("a form body: user=ann&token=t0k", f"a form body: user=ann&token={REDACTED}"),  # no ``?``: the ``&`` is enough
    ],
)
def test_secret_query_values_are_masked(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello world",
        "the token is missing",
        "https://example.com/path?page=2&q=hello&design=blue&key=visible",
        "a=b&c=d",
        "mailto:someone@example.com",
        "user@example.com said: see http://example.com/a/b",
        "messages.upsert for 5511999999999@s.whatsapp.net",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor(["not-present-secret"]).text(text) == text


@settings(database=None)
@given(secret=TEXT.filter(lambda s: len(s) >= 6), before=TEXT, after=TEXT)
def test_a_configured_secret_never_survives(secret: str, before: str, after: str) -> None:
    out = Redactor([secret]).text(before + secret + after)
    # The marker's own characters may line up with neighbours into the secret's spelling (a secret "[redac" sits
    # inside "[redacted]"); that reveals nothing, so what must hold is that no original characters spell it.
    assert secret not in out.replace(REDACTED, "\0")


@settings(database=None)
@given(
    # Upper case, so that no character is shared with the lower-case marker and the plain property holds.
    secret=st.text(alphabet=string.ascii_uppercase + string.digits + "-_.+/=", min_size=6),
    before=st.text(),
    after=st.text(),
)
def test_a_realistic_secret_never_appears_in_the_output(secret: str, before: str, after: str) -> None:
    assert secret not in Redactor([secret]).text(before + secret + after + secret)


@settings(database=None)
@given(user=st.text(alphabet=string.ascii_letters + string.digits, max_size=10), password=st.text(URL_SAFE, min_size=1))
def test_any_url_password_is_masked(user: str, password: str) -> None:
    out = Redactor().text(f"calling https://{user}:{password}@host.example/x?y=1 now")
    assert out == f"calling https://{user}:{REDACTED}@host.example/x?y=1 now"


@settings(database=None)
@given(
    name=st.sampled_from(["token", "access_token", "api_key", "apikey", "sig", "signature", "client_secret", "passwd"]),
    value=st.text(URL_SAFE, min_size=1),
)
def test_any_secret_query_value_is_masked(name: str, value: str) -> None:
    assert Redactor().text(f"https://h/p?a=1&{name}={value}&b=2") == f"https://h/p?a=1&{name}={REDACTED}&b=2"


SECRET_KEYS = [
    "Authorization",
    "authorization",
    "AUTHORIZATION",
    "Proxy-Authorization",
    "apikey",
    "ApiKey",
    "api_key",
    "X-Api-Key",
    "x-api-key",
    "access_token",
    "refresh_token",
    "client_secret",
    "password",
    "Password",
    "smtp_passwd",
    "X-Hub-Signature-256",
    "x-hub-signature-256",
    "Stripe-Signature",
    "webhook-signature",
    "Cookie",
    "cookie",
    "Set-Cookie",
    "private_key",
    "credentials",
]
VISIBLE_KEYS = [
    "idempotency_key",
    "messageId",
    "key",
    "remoteJid",
    "content-type",
    "user-agent",
    "webhook-id",
    "author",
    "keyboard",
    "monkey",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys_are_recognised(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", VISIBLE_KEYS)
def test_ordinary_keys_are_not_secret(key: str) -> None:
    assert not is_secret_key(key)


def test_the_names_kept_are_bounded_and_still_answered_after_a_fresh_start() -> None:
    # A sender chooses its own header names: the answers kept for them must not grow without bound.
    for n in range(redaction._KNOWN_MAX + 10):
        assert not is_secret_key(f"x-sender-{n}")
    assert len(redaction._KNOWN) <= redaction._KNOWN_MAX
    assert is_secret_key("Authorization")
    assert Redactor().tree({"X-Api-Key": "k", 7: "seven"}) == {"X-Api-Key": REDACTED, 7: "seven"}


def test_tree_replaces_values_under_secret_keys_whole() -> None:
    tree = {key: f"value-of-{key}" for key in SECRET_KEYS + VISIBLE_KEYS}
    redacted = Redactor().tree(tree)
    assert redacted == {key: REDACTED for key in SECRET_KEYS} | {key: f"value-of-{key}" for key in VISIBLE_KEYS}


def test_tree_redacts_nested_values_and_every_string() -> None:
    tree = {
        "event": "messages.upsert",
        "data": {"key": {"id": "ABC123"}, "password": {"nested": "anything"}, "count": 3},
        "hooks": [{"url": "https://u:pw@h/x"}, {"token": ["t1", "t2"]}, ("s3cr3t-value", 1)],
        "note": "the api key is s3cr3t-value",
        "flags": [True, None, 1.5],
        7: "int keys are fine",
    }
    assert Redactor(["s3cr3t-value"]).tree(tree) == {
        "event": "messages.upsert",
        "data": {"key": {"id": "ABC123"}, "password": REDACTED, "count": 3},
        "hooks": [{"url": f"https://u:{REDACTED}@h/x"}, {"token": REDACTED}, [REDACTED, 1]],
        "note": f"the api key is {REDACTED}",
        "flags": [True, None, 1.5],
        7: "int keys are fine",
    }


def test_tree_keeps_none_under_a_secret_key() -> None:
    # None reveals only that no secret was sent, which is useful when debugging a missing header.
    assert Redactor().tree({"authorization": None, "apikey": ""}) == {"authorization": None, "apikey": REDACTED}


@pytest.mark.parametrize("leaf", [None, 0, 1.5, True, b"bytes"])
def test_tree_leaves_non_strings_alone(leaf: object) -> None:
    assert Redactor(["abcdef"]).tree(leaf) == leaf


def test_tree_does_not_change_its_input() -> None:
    tree = {"headers": {"authorization": "Bearer abcdef"}, "list": ["abcdef"]}
    Redactor(["abcdef"]).tree(tree)
    assert tree == {"headers": {"authorization": "Bearer abcdef"}, "list": ["abcdef"]}


def test_an_excerpt_masks_secret_keyed_values_written_out_in_it() -> None:
    # What a target echoes back: a request line, header lines and a JSON body.
    echoed = (
        "POST /send?token=q1 HTTP/1.1\nHost: example.com\nAuthorization: Basic YWxpY2U6cA==\nX-Api-Token: Bearer t1\n\n"
        '{"apikey":"k1","text":"my token is safe to show","n":1, "client_secret": "s\\"1", "passes": "ok"}'
    )
    masked = Redactor().excerpt(echoed)
    assert masked == (
        "POST /send?token=[redacted] HTTP/1.1\nHost: example.com\nAuthorization: [redacted]\n"
        "X-Api-Token: [redacted]\n\n"
        '{"apikey":"[redacted]","text":"my token is safe to show","n":1, "client_secret": "[redacted]", "passes": "ok"}'
    )
    # Plain text keeps its keyed lines: only excerpts, which may echo a request, are read this way.
    assert Redactor().text("Authorization: Basic YWxpY2U6cA==") == "Authorization: Basic YWxpY2U6cA=="
