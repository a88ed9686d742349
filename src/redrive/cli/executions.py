"""`redrive executions ls|show`: inspect executions through the HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer

from redrive.cli.common import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, call, client, group
from redrive.cli.output import out, print_table

app = group("Inspect executions (through the HTTP API).")


@app.command("ls")
def ls(
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
    with client(url, token) as api:
        rows = call(api.list_executions, status=status, trigger=trigger, limit=limit)
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
        ("#", "outcome", "code", "duration ms", "message"),
        (
            (str(a["number"]), a["outcome"], a["error_code"] or "", f"{a['duration_ms']:.1f}", a["message"] or "")
            for a in execution["attempts"]
        ),
    )
    out.print_json(data=execution["event"]["payload"])
