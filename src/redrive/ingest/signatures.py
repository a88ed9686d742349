"""Inbound webhook signatures: the four built-in schemes (a plugin, like any other scheme) and the guarded check.

Each scheme's ``verify(config, body, headers, now)`` takes the exact raw bytes received, the request headers (lower-case
names) and the time, and returns nothing when a configured secret signed the delivery; otherwise it raises
``InvalidSignature`` with a reason that is safe to show and to log (it never holds a secret or a computed
signature). ``verify_delivery`` makes sure nothing else escapes, whatever the headers hold.

Schemes:

- ``standard-webhooks``: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` (space-separated
  ``v1,<base64>``); the signature is computed by the ``standardwebhooks`` library from a ``whsec_`` secret.
- ``github``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``.
- ``stripe``: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]``, HMAC-SHA256 of ``{t}.{body}``.
- ``hmac``: a named header holding an HMAC (sha1, sha256 or sha512) of ``message`` (``{body}`` by default, may
  include ``{timestamp}`` read from ``timestamp_header``), hex or base64, after an optional prefix.

Schemes with a timestamp refuse deliveries more than ``tolerance`` seconds (300 by default) away from ``now``, in
either direction. Every configured secret is tried, so a secret can be rotated without downtime; comparisons run in
constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from redrive.errors import InvalidSignature
from redrive.extensions import SignatureScheme
from redrive.hookspecs import hookimpl

DEFAULT_TOLERANCE = 300
_MIN_SECRET = 6  # shorter values are not masked by the redactor (too likely to appear by chance): refuse them
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


class SigningSecrets(BaseModel):
    """A block that holds ``secret`` or ``secrets`` (newest first, for rotation): inbound ``verify`` blocks and the
    outbound ``sign`` block of the http action share it, so both refuse the same mistakes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: str | None = Field(None, description="The signing secret.")
    secrets: list[str] | None = Field(None, description="Several secrets, any of which may sign (rotation).")

    @model_validator(mode="after")
    def _one_way_of_giving_secrets(self) -> SigningSecrets:
        if (self.secret is None) == (self.secrets is None):
            raise ValueError("give either 'secret' or 'secrets' (a list, for rotation), not both and not neither")
        for secret in self.all_secrets:
            if len(secret) < _MIN_SECRET:
                raise ValueError(f"a signing secret must be at least {_MIN_SECRET} characters long")
        if not self.all_secrets:
            raise ValueError("'secrets' must hold at least one secret")
        return self

    @property
    def all_secrets(self) -> list[str]:
        """Every secret that may have signed a delivery, in the order given."""
        return [self.secret] if self.secret is not None else list(self.secrets or [])


class _Timed(SigningSecrets):
    tolerance: int = Field(DEFAULT_TOLERANCE, ge=1, le=3600, description="Seconds a timestamp may be off.")


class StandardWebhooksVerify(_Timed):
    scheme: Literal["standard-webhooks"]

    @model_validator(mode="after")
    def _secrets_decode(self) -> StandardWebhooksVerify:
        check_standard_webhooks_secrets(self.all_secrets)
        return self


def check_standard_webhooks_secrets(secrets: list[str]) -> None:
    """Raise ValueError unless every secret is one the ``standardwebhooks`` library accepts ('whsec_' + base64)."""
    for secret in secrets:
        try:
            Webhook(secret)
        except (EmptyWebhookSecretError, binascii.Error, ValueError):
            raise ValueError("a standard-webhooks secret must be 'whsec_' followed by base64") from None


class GithubVerify(SigningSecrets):
    scheme: Literal["github"]


class StripeVerify(_Timed):
    scheme: Literal["stripe"]


class HmacVerify(_Timed):
    scheme: Literal["hmac"]
    header: str = Field(pattern=_HEADER_NAME, description="The header holding the signature.")
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = Field("", description="Text before the signature in the header, such as 'sha256=' or 'v0='.")
    timestamp_header: str | None = Field(None, pattern=_HEADER_NAME, description="A header holding unix seconds.")
    message: str = Field("{body}", description="What is signed: '{body}', optionally with '{timestamp}' around it.")

    @model_validator(mode="after")
    def _message_shape(self) -> HmacVerify:
        if self.message.count("{body}") != 1:
            raise ValueError("'message' must contain '{body}' exactly once")
        if "{timestamp}" in self.message and self.timestamp_header is None:
            raise ValueError("'message' uses '{timestamp}': name the header that holds it in 'timestamp_header'")
        if self.timestamp_header is not None and "{timestamp}" not in self.message:
            # An unsigned timestamp could be replaced at will: the tolerance would protect nothing.
            raise ValueError("'timestamp_header' is set: 'message' must sign it, e.g. '{timestamp}.{body}'")
        rest = self.message.replace("{body}", "").replace("{timestamp}", "")
        if "{" in rest or "}" in rest:
            raise ValueError("'message' may only use the placeholders '{body}' and '{timestamp}'")
        return self


def secret_values(config: BaseModel, fields: tuple[str, ...]) -> set[str]:
    """Every text form of the secrets a verify block holds in ``fields``, for the redactor (a ``whsec_`` secret
    with and without its prefix)."""
    values: set[str] = set()
    for name in fields:
        value = getattr(config, name, None)
        if isinstance(value, str):
            values.add(value)
        elif isinstance(value, list | tuple):
            values |= {item for item in value if isinstance(item, str)}
    values |= {s.removeprefix("whsec_") for s in values if s.startswith("whsec_")}
    return values


def verify_delivery(
    scheme: SignatureScheme, config: BaseModel, body: bytes, headers: Mapping[str, str], now: float
) -> None:
    """Return when ``scheme`` accepts the delivery; raise InvalidSignature (and nothing else) otherwise."""
    try:
        scheme.verify(config, body, headers, now)
    except InvalidSignature:
        raise
    except (ValueError, TypeError, binascii.Error, OverflowError) as exc:  # a header shape the parsing missed
        raise InvalidSignature("the signature headers are malformed") from exc


@hookimpl
def redrive_signature_schemes() -> list[SignatureScheme]:
    """The four built-in schemes."""
    return [
        SignatureScheme("standard-webhooks", StandardWebhooksVerify, _standard_webhooks, "header:webhook-id"),
        SignatureScheme("github", GithubVerify, _github, "header:X-GitHub-Delivery"),
        SignatureScheme("stripe", StripeVerify, _stripe),
        SignatureScheme("hmac", HmacVerify, _hmac),
    ]


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if not value:
        raise InvalidSignature(f"the {name} header is missing")
    return value.strip()


def _timestamp(value: str, name: str, now: float, tolerance: int) -> int:
    if not _TIMESTAMP.fullmatch(value):
        raise InvalidSignature(f"the {name} is not a unix timestamp in seconds")
    timestamp = int(value)
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature(f"the {name} is more than {tolerance} seconds away from now; the delivery is refused")
    return timestamp


def _matches(expected: list[bytes], given: list[bytes]) -> None:
    # Every pair is compared (constant time each); no early exit that would reveal which secret matched.
    found = False
    for candidate in given:
        for digest in expected:
            found |= hmac.compare_digest(digest, candidate)
    if not found:
        raise InvalidSignature("no signature matches a configured secret")


def _hmac_digest(secret: str, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(secret.encode(), message, _ALGORITHMS[algorithm]).digest()


def _standard_webhooks(config: StandardWebhooksVerify, body: bytes, headers: Mapping[str, str], now: float) -> None:
    msg_id = _required(headers, "webhook-id")
    timestamp = _timestamp(_required(headers, "webhook-timestamp"), "webhook-timestamp", now, config.tolerance)
    given = []
    for part in _required(headers, "webhook-signature").split():
        version, comma, signature = part.partition(",")
        if not comma:
            raise InvalidSignature("webhook-signature must hold 'v1,<base64>' entries separated by spaces")
        if version == "v1":
            given.append(_b64(signature, "webhook-signature"))
    if not given:
        raise InvalidSignature("webhook-signature holds no v1 signature")
    try:
        text = body.decode("utf-8")  # the library signs text; strict UTF-8 round-trips to the very bytes received
    except UnicodeDecodeError:
        raise InvalidSignature("the body is not UTF-8, so it cannot carry a standard-webhooks signature") from None
    at = datetime.fromtimestamp(timestamp, UTC)
    expected = [
        base64.b64decode(Webhook(secret).sign(msg_id, at, text).partition(",")[2]) for secret in config.all_secrets
    ]
    _matches(expected, given)


def _github(config: GithubVerify, body: bytes, headers: Mapping[str, str], now: float) -> None:
    value = _required(headers, "X-Hub-Signature-256")
    algorithm, _, signature = value.partition("=")
    if algorithm != "sha256" or not _HEX_SHA256.fullmatch(signature):
        raise InvalidSignature("X-Hub-Signature-256 must be 'sha256=' followed by 64 hex digits")
    _matches([_hmac_digest(s, body) for s in config.all_secrets], [bytes.fromhex(signature)])


def _stripe(config: StripeVerify, body: bytes, headers: Mapping[str, str], now: float) -> None:
    timestamps, given = [], []
    for item in _required(headers, "Stripe-Signature").split(","):
        key, equals, value = item.strip().partition("=")
        if not equals:
            raise InvalidSignature("Stripe-Signature must be comma-separated 'key=value' pairs")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            if not _HEX_SHA256.fullmatch(value):
                raise InvalidSignature("a v1 signature in Stripe-Signature must be 64 hex digits")
            given.append(bytes.fromhex(value))
    if len(timestamps) != 1 or not given:
        raise InvalidSignature("Stripe-Signature must hold one 't=' timestamp and at least one 'v1=' signature")
    timestamp = _timestamp(timestamps[0], "Stripe-Signature timestamp", now, config.tolerance)
    signed = f"{timestamp}.".encode() + body
    _matches([_hmac_digest(s, signed) for s in config.all_secrets], given)


def _hmac(config: HmacVerify, body: bytes, headers: Mapping[str, str], now: float) -> None:
    value = _required(headers, config.header)
    if not value.startswith(config.prefix):
        raise InvalidSignature(f"the {config.header} header does not start with {config.prefix!r}")
    encoded = value[len(config.prefix) :]
    if config.encoding == "hex":
        if not re.fullmatch(r"[0-9a-fA-F]+", encoded):
            raise InvalidSignature(f"the {config.header} header is not hexadecimal")
        given = bytes.fromhex(encoded) if len(encoded) % 2 == 0 else b""
    else:
        given = _b64(encoded, config.header)
    before, _, after = config.message.partition("{body}")
    if config.timestamp_header is not None:
        raw = _required(headers, config.timestamp_header)
        stamp = str(_timestamp(raw, config.timestamp_header, now, config.tolerance))
        before, after = before.replace("{timestamp}", stamp), after.replace("{timestamp}", stamp)
    signed = before.encode() + body + after.encode()
    _matches([_hmac_digest(s, signed, config.algorithm) for s in config.all_secrets], [given])


def _b64(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignature(f"a signature in {name} is not valid base64") from None
