"""`redrive tokens create|ls|revoke`: API tokens, managed directly on the database."""

from __future__ import annotations

from typing import Annotated

import typer

from redrive.cli.common import JsonOpt, fail, group, load_settings, local_actor
from redrive.cli.output import out, print_table
from redrive.clock import utcnow

app = group("Manage API tokens (directly on the database).")


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="A unique name for the token.")],
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")],
    expires_in: Annotated[str | None, typer.Option("--expires-in", help="e.g. 30d; never by default.")] = None,
) -> None:
    """Create a token and print it once, alone on stdout."""
    from datetime import timedelta

    from redrive.db.database import Database
    from redrive.durations import parse_duration
    from redrive.errors import RedriveError
    from redrive.observe.logs import stderr_logger
    from redrive.tokens import create_token

    now, actor = utcnow(), local_actor()
    try:
        expires_at = now + timedelta(seconds=parse_duration(expires_in)) if expires_in else None
        job = create_token(name, role, now, actor=actor, expires_at=expires_at)
    except (ValueError, RedriveError) as exc:
        fail(str(exc))
    db = Database(load_settings().database_url)
    try:
        secret = db.write_sync(job)
    except RedriveError as exc:
        fail(exc.message)
    finally:
        db.close()
    stderr_logger().info("token_created", name=name, role=role, expires_at=expires_at, by=actor)
    print(secret)  # alone on stdout so scripts can capture it


@app.command("ls")
def ls(as_json: JsonOpt = False) -> None:
    """List tokens (names, roles, dates; never secrets)."""
    from redrive.db.database import Database
    from redrive.tokens import list_tokens

    db = Database(load_settings().database_url)
    try:
        rows = db.read_sync(list_tokens)
    finally:
        db.close()
    printable = [{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()} for row in rows]
    if as_json:
        out.print_json(data=printable)
        return
    keys = ("name", "role", "created_at", "expires_at", "last_used_at", "revoked_at")
    print_table(
        ("name", "role", "created", "expires", "last used", "revoked"),
        (tuple(str(row[k] or "") for k in keys) for row in printable),
    )


@app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Revoke a token; requests with it fail from now on."""

    from redrive.db.database import Database
    from redrive.errors import RedriveError
    from redrive.observe.logs import stderr_logger
    from redrive.tokens import revoke_token

    actor = local_actor()
    db = Database(load_settings().database_url)
    try:
        db.write_sync(revoke_token(name, utcnow(), actor=actor))
    except RedriveError as exc:
        fail(exc.message)
    finally:
        db.close()
    stderr_logger().info("token_revoked", name=name, by=actor)
    out.print(f"revoked {name}")
