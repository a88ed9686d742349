"""`redrive executions ls|show`: inspect executions through the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from redrive.cli.common import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, call, client, group
from redrive.cli.output import out, print_table
from redrive.states import ExecutionStatus

app = group("Inspect executions (through the HTTP API).")


def utc_time(iso: str) -> str:
    """An ISO 8601 time as ``YYYY-MM-DD HH:MM:SS.mmm`` in UTC."""
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@app.command("ls")
def ls(
    status: Annotated[ExecutionStatus | None, typer.Option(help="Only executions in this state.")] = None,
    trigger: Annotated[str | None, typer.Option(help="Trigger name.")] = None,
    fingerprint: Annotated[
        str | None, typer.Option(help="Error group fingerprint (16 hex digits, from `redrive errors ls`).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List executions, newest first."""
    with client(url, token) as api:
        rows = call(api.list_executions, status=status, trigger=trigger, fingerprint=fingerprint, limit=limit)
    if as_json:
        out.print_json(data=rows)
        return
    print_table(
        ("id", "trigger", "status", "attempts", "code", "updated"),
        (
            (
                str(row["id"]),
                row["trigger"],
                row["status"],
                str(row["attempt_count"]),
                row["error_code"] or "",
                row["updated_at"],
            )
            for row in rows
        ),
    )


@app.command("show")
def show(
    execution_id: Annotated[int, typer.Argument(help="Execution id.")],
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one execution with its attempts and event."""
    with client(url, token) as api:
        execution = call(api.get_execution, execution_id)
    if as_json:
        out.print_json(data=execution)
        return
    out.print(
        f"[bold]execution {execution['id']}[/] {execution['trigger']} ({execution['kind']}): "
        f"[bold]{execution['status']}[/] after {execution['attempt_count']} attempt(s)",
        highlight=False,
    )
    print_table(
        ("#", "started (UTC)", "duration ms", "outcome", "code", "message"),
        (
            (
                str(a["number"]),
                utc_time(a["started_at"]),
                f"{a['duration_ms']:.1f}",
                a["outcome"] if not a.get("note") else f"{a['outcome']} ({a['note']})",
                a["error_code"] or "",
                a["message"] or "",
            )
            for a in execution["attempts"]
        ),
    )
    for attempt in execution["attempts"]:
        out.print(f"[bold]attempt {attempt['number']} sent[/] (as stored then, secrets masked):", highlight=False)
        out.print_json(data=attempt.get("request") or {"note": "not recorded"})
    out.print("[bold]event payload[/]:", highlight=False)
    out.print_json(data=execution["event"]["payload"])
