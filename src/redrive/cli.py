"""The ``redrive`` command: run the service, manage its database, send events, inspect executions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from redrive.client import ApiError, RedriveClient
from redrive.config import RedriveConfig, Settings, load_config
from redrive.errors import ConfigError

app = typer.Typer(no_args_is_help=True, help="redrive: reliable event-driven automation.", add_completion=False)
config_app = typer.Typer(no_args_is_help=True, help="Validate trigger files.")
executions_app = typer.Typer(no_args_is_help=True, help="Inspect executions (through the HTTP API).")
tokens_app = typer.Typer(no_args_is_help=True, help="Manage API tokens (directly on the database).")
app.add_typer(config_app, name="config")
app.add_typer(executions_app, name="executions")
app.add_typer(tokens_app, name="tokens")

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Trigger file [env: REDRIVE_CONFIG].")]
UrlOpt = Annotated[str, typer.Option("--url", envvar="REDRIVE_URL", help="redrive server to talk to.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="REDRIVE_TOKEN", help="API token.", show_default=False)]
DEFAULT_URL = "http://127.0.0.1:8000"


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error to stderr and exit non-zero."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with the CLI's options on top; exit 2 on a bad value."""
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(f"REDRIVE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        fail(f"invalid settings: {problems}")


def load_triggers(path: Path) -> RedriveConfig:
    """Load the trigger file or exit 2 listing every problem."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]✗[/] {problem}", highlight=False)
        fail(f"{len(exc.problems)} problem(s) in the configuration; nothing was started")


@app.command()
def up(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address [env: REDRIVE_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env: REDRIVE_PORT].")] = None,
) -> None:
    """Migrate the database, then serve the API and run a worker in this process."""
    from redrive.serve import run_server

    settings = load_settings(config=config, host=host, port=port)
    triggers = load_triggers(settings.config)
    run_server(settings, triggers)


@app.command()
def migrate() -> None:
    """Bring the database (REDRIVE_DATABASE_URL) to the newest schema."""
    from redrive.db.migrate import upgrade

    settings = load_settings()
    upgrade(settings.database_url)
    out.print("database is at the newest schema")


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="The trigger file to validate.")]) -> None:
    """Validate a trigger file; exit 2 listing every problem."""
    triggers = load_triggers(file)
    out.print(f"[green]✓[/] {file}: {len(triggers.triggers)} trigger(s) valid", highlight=False)


def _read_data(data: str) -> Any:
    text = data
    if data.startswith("@"):
        try:
            text = Path(data[1:]).read_text(encoding="utf-8") if data != "@-" else sys.stdin.read()
        except OSError as exc:
            fail(f"cannot read {data[1:]}: {exc.strerror}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--data is not valid JSON: {exc}")


@app.command()
def send(
    trigger: Annotated[str, typer.Argument(help="Trigger name.")],
    data: Annotated[str, typer.Option("--data", "-d", help="JSON payload, or @file, or @- for stdin.")],
    key: Annotated[str | None, typer.Option("--key", "-k", help="Idempotency key.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send an event to a trigger through the API (needs an operator token)."""
    payload = _read_data(data)
    with RedriveClient(url, token=token) as client:
        result = _call(client.send_event, trigger, payload, key)
    if as_json:
        out.print_json(data=result)
    else:
        state = "duplicate of" if result["duplicate"] else "accepted as"
        out.print(f"{state} event {result['event_id']}, execution {result['execution_id']}")


def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except ApiError as exc:
        fail(f"{exc.message} ({exc.code})")


@executions_app.command("ls")
def executions_ls(
    status: Annotated[
        str | None, typer.Option(help="pending, running, succeeded, failed_retryable, failed, replayed")
    ] = None,
    trigger: Annotated[str | None, typer.Option(help="Trigger name.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List executions, newest first."""
    with RedriveClient(url, token=token) as client:
        rows = _call(client.list_executions, status=status, trigger=trigger, limit=limit)
    if as_json:
        out.print_json(data=rows)
        return
    table = Table("id", "trigger", "status", "attempts", "code", "updated")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["trigger"],
            row["status"],
            str(row["attempt_count"]),
            row["error_code"] or "",
            row["updated_at"],
        )
    out.print(table)


@executions_app.command("show")
def executions_show(
    execution_id: Annotated[int, typer.Argument(help="Execution id.")],
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one execution with its attempts and event."""
    with RedriveClient(url, token=token) as client:
        execution = _call(client.get_execution, execution_id)
    if as_json:
        out.print_json(data=execution)
        return
    out.print(
        f"[bold]execution {execution['id']}[/] {execution['trigger']} ({execution['kind']}): "
        f"[bold]{execution['status']}[/] after {execution['attempt_count']} attempt(s)",
        highlight=False,
    )
    table = Table("#", "outcome", "code", "duration ms", "message")
    for attempt in execution["attempts"]:
        table.add_row(
            str(attempt["number"]),
            attempt["outcome"],
            attempt["error_code"] or "",
            f"{attempt['duration_ms']:.1f}",
            attempt["message"] or "",
        )
    out.print(table)
    out.print_json(data=execution["event"]["payload"])


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option("--name", help="A unique name for the token.")],
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")],
    expires_in: Annotated[str | None, typer.Option("--expires-in", help="e.g. 30d; never by default.")] = None,
) -> None:
    """Create a token and print it once, alone on stdout."""
    from datetime import UTC, datetime, timedelta

    from redrive.db.database import Database
    from redrive.durations import parse_duration
    from redrive.errors import RedriveError
    from redrive.tokens import create_token

    now = datetime.now(UTC)
    try:
        expires_at = now + timedelta(seconds=parse_duration(expires_in)) if expires_in else None
        job = create_token(name, role, now, expires_at=expires_at)
    except (ValueError, RedriveError) as exc:
        fail(str(exc))
    db = Database(load_settings().database_url)
    try:
        secret = db.write_sync(job)
    except RedriveError as exc:
        fail(exc.message)
    finally:
        db.close()
    print(secret)  # alone on stdout so scripts can capture it


@tokens_app.command("ls")
def tokens_ls(as_json: JsonOpt = False) -> None:
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
    table = Table("name", "role", "created", "expires", "last used", "revoked")
    for row in printable:
        table.add_row(
            *(str(row[k] or "") for k in ("name", "role", "created_at", "expires_at", "last_used_at", "revoked_at"))
        )
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Revoke a token; requests with it fail from now on."""
    from datetime import UTC, datetime

    from redrive.db.database import Database
    from redrive.errors import RedriveError
    from redrive.tokens import revoke_token

    db = Database(load_settings().database_url)
    try:
        db.write_sync(revoke_token(name, datetime.now(UTC)))
    except RedriveError as exc:
        fail(exc.message)
    finally:
        db.close()
    out.print(f"revoked {name}")


def main() -> None:
    """Entry point of the ``redrive`` script."""
    app()
