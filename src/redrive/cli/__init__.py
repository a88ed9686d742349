"""The ``redrive`` command: run the service, manage its database, send events, operate failures.

One module per resource; each registers its sub-commands here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from sqlalchemy.exc import OperationalError

from redrive import __version__
from redrive.cli import dashboard as dashboard_cli
from redrive.cli import errors as errors_cli
from redrive.cli import executions, tokens
from redrive.cli import plugins as plugins_cli
from redrive.cli import purge as purge_cli
from redrive.cli import replay as replay_cli
from redrive.cli import stats as stats_cli
from redrive.cli import triggers as triggers_cli
from redrive.cli.common import (
    DEFAULT_URL,
    ConfigOpt,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    call,
    client,
    fail,
    load_settings,
    load_triggers,
    out,
    plugins_or_exit,
    read_data,
)
from redrive.errors import RedriveError

if TYPE_CHECKING:
    from redrive.node.process import Role

app = typer.Typer(no_args_is_help=True, help="redrive: reliable event-driven automation.", add_completion=False)
config_app = typer.Typer(no_args_is_help=True, help="Validate trigger files.")
app.add_typer(config_app, name="config")
app.add_typer(executions.app, name="executions")
app.add_typer(tokens.app, name="tokens")
app.command("replay")(replay_cli.replay)
app.add_typer(replay_cli.dlq_app, name="dlq")
app.add_typer(replay_cli.replays_app, name="replays")
app.add_typer(replay_cli.audit_app, name="audit")
app.command("stats")(stats_cli.stats)
app.add_typer(errors_cli.app, name="errors")
app.add_typer(triggers_cli.app, name="triggers")
app.command("purge")(purge_cli.purge_command)
app.command("dashboard")(dashboard_cli.dashboard)
app.add_typer(plugins_cli.app, name="plugins")


def _show_version(value: bool) -> None:
    if value:
        out.print(f"redrive {__version__}", highlight=False)
        raise typer.Exit


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """redrive: reliable event-driven automation."""


HostOpt = Annotated[str | None, typer.Option(help="Bind address [env: REDRIVE_HOST].")]
PortOpt = Annotated[int | None, typer.Option(help="Port [env: REDRIVE_PORT].")]


def _run(role: Role, config: Path | None, host: str | None, port: int | None) -> None:
    from redrive.node.serve import run_server

    settings = load_settings(config=config, host=host, port=port)
    plugins = plugins_or_exit()
    triggers = load_triggers(settings.config, plugins)
    try:
        run_server(settings, triggers, role, plugins=plugins)
    except OperationalError as exc:
        waited = "" if settings.is_sqlite else f" (gave up after REDRIVE_DATABASE_WAIT={settings.database_wait:g}s)"
        fail(f"cannot reach the {settings.database_url.split('://')[0]} database{waited}: {exc.orig}", code=1)
    except RedriveError as exc:
        fail(exc.message, code=1)


@app.command()
def up(config: ConfigOpt = None, host: HostOpt = None, port: PortOpt = None) -> None:
    """Migrate the database, then serve the API and run a worker in this process (one node)."""
    _run("all", config, host, port)


@app.command()
def serve(config: ConfigOpt = None, host: HostOpt = None, port: PortOpt = None) -> None:
    """Migrate the database, then serve the API only (workers run elsewhere; needs PostgreSQL to share work)."""
    _run("api", config, host, port)


@app.command()
def worker(config: ConfigOpt = None, host: HostOpt = None, port: PortOpt = None) -> None:
    """Migrate the database, then run a worker; HTTP serves only /healthz, /readyz and /metrics."""
    _run("worker", config, host, port)


@app.command()
def migrate() -> None:
    """Bring the database (REDRIVE_DATABASE_URL) to the newest schema."""
    from redrive.db.migrate import upgrade

    settings = load_settings()
    try:
        upgrade(settings.database_url)
    except OperationalError as exc:
        fail(f"cannot migrate {settings.database_url.split('://')[0]} database: {exc.orig}")
    except RedriveError as exc:
        fail(exc.message)
    out.print("database is at the newest schema")


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="The trigger file to validate.")]) -> None:
    """Validate a trigger file; exit 2 listing every problem."""
    triggers = load_triggers(file)
    out.print(f"[green]✓[/] {escape(str(file))}: {len(triggers.triggers)} trigger(s) valid", highlight=False)


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
    payload = read_data(data)
    with client(url, token) as api:
        result = call(api.send_event, trigger, payload, key)
    if as_json:
        out.print_json(data=result)
    else:
        state = "duplicate of" if result["duplicate"] else "accepted as"
        out.print(f"{state} event {result['event_id']}, execution {result['execution_id']}")


def main() -> None:
    """Entry point of the ``redrive`` script: the installed plugins add their commands, then the command runs."""
    try:
        plugins_cli.add_plugin_commands(app, plugins_or_exit())
    except typer.Exit as stop:  # outside a command, typer does not turn its Exit into the exit status
        raise SystemExit(stop.exit_code) from None
    app()
