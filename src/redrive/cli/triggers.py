"""`redrive triggers ls|pause|resume`: triggers at run time (through the HTTP API)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from redrive.cli.common import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, call, client, out

app = typer.Typer(no_args_is_help=True, help="Triggers at run time: counters, pause, resume.")
Name = Annotated[str, typer.Argument(help="Trigger name.")]


@app.command("ls")
def ls(url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List triggers with their live counters."""
    with client(url, token) as api:
        triggers = call(api.list_triggers)
    if as_json:
        out.print_json(data=triggers)
        return
    table = Table("name", "kind", "state", "pending", "running", "dlq", "failed", "ok today", "events today")
    for trigger in triggers:
        counters = trigger["counters"]
        state = f"paused ({trigger['paused_reason']})" if trigger["paused"] else "active"
        table.add_row(
            trigger["name"],
            trigger["kind"],
            state,
            *(str(counters[k]) for k in ("pending", "running", "dlq", "failed", "succeeded_today", "events_today")),
        )
    out.print(table)


def _show(trigger: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(data=trigger)
    else:
        state = f"paused ({trigger['paused_reason']})" if trigger["paused"] else "running"
        out.print(f"{trigger['name']} is {state}", highlight=False)


@app.command("pause")
def pause(name: Name, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Pause a trigger: events are still stored; executions wait until it is resumed."""
    with client(url, token) as api:
        _show(call(api.set_trigger_paused, name, True), as_json)


@app.command("resume")
def resume(name: Name, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Resume a trigger: its waiting executions run, oldest first."""
    with client(url, token) as api:
        _show(call(api.set_trigger_paused, name, False), as_json)
