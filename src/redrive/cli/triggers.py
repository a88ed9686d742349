"""`redrive triggers ls|pause|resume`: triggers at run time (through the HTTP API)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from redrive.cli.common import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, call, client, group
from redrive.cli.output import out, print_table

app = group("Triggers at run time: counters, pause, resume.")
Name = Annotated[str, typer.Argument(help="Trigger name.")]


@app.command("ls")
def ls(url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List triggers with their live counters."""
    with client(url, token) as api:
        triggers = call(api.list_triggers)
    if as_json:
        out.print_json(data=triggers)
        return
    counted = ("pending", "running", "dlq", "failed", "succeeded_today", "events_today")
    rows = []
    for trigger in triggers:
        state = f"paused ({trigger['paused_reason']})" if trigger["paused"] else "active"
        rows.append((trigger["name"], trigger["kind"], state, *(str(trigger["counters"][k]) for k in counted)))
    print_table(("name", "kind", "state", "pending", "running", "dlq", "failed", "ok today", "events today"), rows)


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
