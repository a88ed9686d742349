"""API tokens: random 256-bit secrets with a recognisable prefix, stored only as a SHA-256 digest.

A token reads ``rdv_<43 url-safe characters>``. Its first characters after the prefix find the row (``lookup``);
the digest of the whole token is compared in constant time. SHA-256 suffices (no slow hash) because the secret is
random and 256 bits long: there is nothing to guess. Roles are ordered ``viewer < operator < admin``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from redrive.db.schema import tokens
from redrive.errors import InvalidRole, InvalidTokenName, NotFound, TokenExists
from redrive.failures import audit

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
PREFIX = "rdv_"
_LOOKUP_LENGTH = 12
_SHOWN_LENGTH = len(PREFIX) + 4  # 24 of a token's 256 random bits: enough to tell tokens apart in a log, no more
LOCAL_PROXY_KEY_ENV = "REDRIVE_LOCAL_PROXY_KEY"
CLIENT_ADDRESS_HEADER = "X-Redrive-Client-Address"  # the browser's address, as the mounted dashboard vouches for it
PROXY_KEY_HEADER = "X-Redrive-Proxy-Key"  # carries local_proxy_key(): the proof that the dashboard is vouching


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name and role."""

    token_id: int
    name: str
    role: Role

    def can(self, role: Role) -> bool:
        """True when this principal's role is at least ``role``."""
        return ROLES.index(self.role) >= ROLES.index(role)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_prefix(secret: str | None) -> str | None:
    """The part of a presented token that may be logged: ``rdv_`` and four characters; nothing of anything else."""
    if secret is None:
        return None
    return secret[:_SHOWN_LENGTH] if secret.startswith(PREFIX) else "(not an rdv_ token)"


def local_proxy_key() -> str:
    """The secret with which the mounted dashboard proves that it speaks for a browser (shared with child processes).

    Made on first use and kept in the environment, so the processes one ``redrive up`` starts agree on it; commands
    run as actions never see it (their environment is built, not inherited).
    """
    return os.environ.setdefault(LOCAL_PROXY_KEY_ENV, secrets.token_urlsafe(32))


def new_secret() -> str:
    """A fresh token string."""
    return PREFIX + secrets.token_urlsafe(32)


def create_token(
    name: str, role: str, now: datetime, *, actor: str, expires_at: datetime | None = None
) -> Callable[[Connection], str]:
    """A write job that stores a new token, audited as created by ``actor``, and returns the raw secret (shown once,
    never stored)."""
    if role not in ROLES:
        raise InvalidRole(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name or len(name) > 64:
        raise InvalidTokenName("a token name is 1 to 64 characters")

    def job(connection: Connection) -> str:
        secret = new_secret()
        try:
            with connection.begin_nested():
                connection.execute(
                    tokens.insert().values(
                        name=name,
                        role=role,
                        lookup=secret[len(PREFIX) : len(PREFIX) + _LOOKUP_LENGTH],
                        digest=_digest(secret),
                        created_at=now,
                        expires_at=expires_at,
                    )
                )
        except IntegrityError as exc:
            raise TokenExists(f"a token called {name!r} exists already") from exc
        detail = {"role": role, "expires_at": expires_at}
        audit.record(
            connection, at=now, actor=actor, action="token_create", target=f"token:{name}", result="ok", detail=detail
        )
        return secret

    return job


def authenticate(secret: str, now: datetime) -> Callable[[Connection], Principal | None]:
    """A read job: the principal for ``secret``, or None when it is unknown, revoked or expired."""

    def job(connection: Connection) -> Principal | None:
        if not secret.startswith(PREFIX) or len(secret) < len(PREFIX) + _LOOKUP_LENGTH:
            return None
        row = connection.execute(
            select(
                tokens.c.id, tokens.c.name, tokens.c.role, tokens.c.digest, tokens.c.expires_at, tokens.c.revoked_at
            ).where(tokens.c.lookup == secret[len(PREFIX) : len(PREFIX) + _LOOKUP_LENGTH])
        ).one_or_none()
        if row is None or not hmac.compare_digest(row.digest, _digest(secret)):
            return None
        if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
            return None
        return Principal(row.id, row.name, row.role)

    return job


def touch(token_id: int, now: datetime) -> Callable[[Connection], None]:
    """A write job that records the token's last use."""

    def job(connection: Connection) -> None:
        connection.execute(update(tokens).where(tokens.c.id == token_id).values(last_used_at=now))

    return job


def list_tokens(connection: Connection) -> list[dict[str, Any]]:
    """Every token's public fields (never the digest)."""
    rows = connection.execute(
        select(
            tokens.c.name,
            tokens.c.role,
            tokens.c.created_at,
            tokens.c.expires_at,
            tokens.c.last_used_at,
            tokens.c.revoked_at,
        ).order_by(tokens.c.id)
    )
    return [dict(row._mapping) for row in rows]


def revoke_token(name: str, now: datetime, *, actor: str) -> Callable[[Connection], None]:
    """A write job that revokes the token called ``name``, audited as done by ``actor``."""

    def job(connection: Connection) -> None:
        revoked = connection.execute(
            update(tokens).where(tokens.c.name == name, tokens.c.revoked_at.is_(None)).values(revoked_at=now)
        ).rowcount
        if not revoked:
            raise NotFound(f"no active token is called {name!r}")
        audit.record(connection, at=now, actor=actor, action="token_revoke", target=f"token:{name}", result="ok")

    return job


def has_tokens(connection: Connection) -> bool:
    """True once any token exists (the first `redrive up` creates an admin token otherwise)."""
    return connection.execute(select(tokens.c.id).limit(1)).first() is not None
