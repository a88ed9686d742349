"""The ``redrive`` command: run the service, manage its database, send events, operate failures.

One module per resource; each registers its sub-commands here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from redrive import __version__
from redrive.cli import alerts as alerts_cli
from redrive.cli import dashboard as dashboard_cli
from redrive.cli import destinations as destinations_cli
from redrive.cli import errors as errors_cli
from redrive.cli import executions, tokens
from redrive.cli import plugins as plugins_cli
from redrive.cli import purge as purge_cli
from redrive.cli import replay as replay_cli
from redrive.cli import stats as stats_cli
from redrive.cli import triggers as triggers_cli
from redrive.cli.common import (
    DEFAULT_CONFIG,
    DEFAULT_URL,
    ConfigOpt,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    call,
    client,
    fail,
    group,
    load_settings,
    load_triggers,
    plugins_or_exit,
    read_data,
)
from redrive.cli.output import err, escape, out

if TYPE_CHECKING:
    from redrive.node.process import Role

app = group("redrive: reliable event-driven automation.")
config_app = group("Validate trigger files.")
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
app.add_typer(alerts_cli.app, name="alerts")
app.add_typer(destinations_cli.app, name="destinations")
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
ProcessesOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Processes sharing the port and the work, each an API and a worker [env: REDRIVE_PROCESSES; default: "
        "one per CPU core]; 1 runs everything in this process.",
    ),
]


def _run(role: Role, config: Path, host: str | None, port: int | None, processes: int | None = None) -> None:
    from sqlalchemy.exc import OperationalError

    from redrive.cli.processes import default_count
    from redrive.cli.serve import run_server
    from redrive.errors import RedriveError

    settings = load_settings(config=config, host=host, port=port, processes=processes)
    plugins = plugins_or_exit()
    triggers = load_triggers(settings.config, plugins)
    count = 1 if role != "all" else settings.processes or default_count()
    try:
        code = run_server(settings, triggers, role, plugins=plugins, processes=count)
    except OperationalError as exc:
        waited = "" if settings.is_sqlite else f" (gave up after REDRIVE_DATABASE_WAIT={settings.database_wait:g}s)"
        fail(f"cannot reach the {settings.database_url.split('://')[0]} database{waited}: {exc.orig}", code=1)
    except RedriveError as exc:
        fail(exc.message, code=1)
    if code:
        raise typer.Exit(code)


@app.command()
def up(
    config: ConfigOpt = DEFAULT_CONFIG, host: HostOpt = None, port: PortOpt = None, processes: ProcessesOpt = None
) -> None:
    """Migrate the database, then serve the API and run a worker: in one process per CPU core sharing the port and
    the work (each a node), or in this process alone with --processes 1."""
    _run("all", config, host, port, processes)


@app.command()
def serve(config: ConfigOpt = DEFAULT_CONFIG, host: HostOpt = None, port: PortOpt = None) -> None:
    """Migrate the database, then serve the API only (workers run elsewhere; needs PostgreSQL to share work)."""
    _run("api", config, host, port)


@app.command()
def worker(config: ConfigOpt = DEFAULT_CONFIG, host: HostOpt = None, port: PortOpt = None) -> None:
    """Migrate the database, then run a worker; HTTP serves only /healthz, /readyz and /metrics."""
    _run("worker", config, host, port)


@app.command()
def migrate() -> None:
    """Bring the database (REDRIVE_DATABASE_URL) to the newest schema."""
    from sqlalchemy.exc import OperationalError

    from redrive.db.migrate import upgrade
    from redrive.errors import RedriveError

    settings = load_settings()
    try:
        upgrade(settings.database_url)
    except OperationalError as exc:
        fail(f"cannot migrate {settings.database_url.split('://')[0]} database: {exc.orig}")
    except RedriveError as exc:
        fail(exc.message)
    out.print("database is at the newest schema")


@config_app.command("check")
def config_check(
    file: Annotated[
        Path, typer.Argument(envvar="REDRIVE_CONFIG", show_envvar=True, help="The trigger file to validate.")
    ] = DEFAULT_CONFIG,
) -> None:
    """Validate a trigger file as `redrive up` would load it; exit 2 listing every problem."""
    config = load_triggers(file, starting=False)
    names = ", ".join(t.name for t in config.triggers)
    alerting = f", {len(config.alerts)} alert rule(s), {len(config.channels)} channel(s)" if config.alerts else ""
    out.print(
        f"[green]✓[/] {escape(str(file))}: no problems in {len(config.triggers)} trigger(s) ({escape(names)})"
        f"{alerting}; checked: YAML, names, sources, signatures, filters, actions and their templates, retry, limits, "
        "retention, alert rules and channels, ${VAR} expansion",
        highlight=False,
    )


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


def _builtin_commands() -> set[str]:
    def named(name: str | None, callback: object) -> str:  # typer names an unnamed command after its function
        return name or getattr(callback, "__name__", "").replace("_", "-")

    commands = {named(c.name, c.callback) for c in app.registered_commands}
    return commands | {named(g.name, g.typer_instance) for g in app.registered_groups}


def main() -> None:
    """Entry point of the ``redrive`` script: run the command; the installed plugins add theirs first unless the
    command is one of redrive's own (asking them costs whatever they import, on every call)."""
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    if command not in _builtin_commands():
        from redrive.errors import PluginError
        from redrive.plugins import command_plugins

        try:
            # Read like PluginSettings reads it; pydantic-settings is not worth importing for one string here.
            plugins_cli.add_plugin_commands(app, command_plugins(os.environ.get("REDRIVE_PLUGINS")))
        except PluginError as exc:  # one line naming the plugin, never a traceback
            err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
            raise SystemExit(2) from None
        except typer.Exit as stop:  # outside a command, typer does not turn its Exit into the exit status
            raise SystemExit(stop.exit_code) from None
    app()
