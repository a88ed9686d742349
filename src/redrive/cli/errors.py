"""`redrive errors ls|resolve|ignore`: error groups (through the HTTP API)."""

from __future__ import annotations

from typing import Annotated

import typer

from redrive.cli.common import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, call, client, group
from redrive.cli.output import escape, out

app = group("Error groups: failures grouped by cause, with a hint.")
Fingerprint = Annotated[str, typer.Argument(help="The group's fingerprint (from `redrive errors ls`).")]


@app.command("ls")
def ls(
    since: Annotated[str, typer.Option(help="Window: 15m, 1h, 24h, 7d (at most 7d).")] = "24h",
    status: Annotated[str | None, typer.Option(help="open, resolved, ignored or regressed.")] = None,
    trigger: Annotated[str | None, typer.Option(help="Trigger name.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List error groups seen in the window, most failures first."""
    with client(url, token) as api:
        groups = call(api.list_error_groups, since=since, status=status, trigger=trigger, limit=limit)
    if as_json:
        out.print_json(data=groups)
        return
    if not groups:
        out.print(f"no failures in the last {since}", highlight=False)
    for item in groups:
        hint = item["hint"]
        out.print(
            f"[bold]{item['fingerprint']}[/]  {item['trigger']}  {item['code']}  [bold]{item['status']}[/]  "
            f"{item['count']} in {since}, {item['total']} in all, {item['dlq']} in the DLQ",
            highlight=False,
        )
        out.print(f"  {escape(item['title'])}", highlight=False)
        out.print(
            f"  [dim]hint: {escape(hint['title'])}: {escape(hint['advice'])} ({hint['remedy']})[/]", highlight=False
        )


def _decide(fingerprint: str, decision: str, url: str | None, token: str | None, as_json: bool) -> None:
    with client(url, token) as api:
        group = call(api.decide_error_group, fingerprint, decision)
    if as_json:
        out.print_json(data=group)
    else:
        out.print(f"{fingerprint} is {group['status']}: {group['title']}", highlight=False)


@app.command("resolve")
def resolve(
    fingerprint: Fingerprint, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Mark a group resolved; if it fails again it becomes regressed."""
    _decide(fingerprint, "resolve", url, token, as_json)


@app.command("ignore")
def ignore(
    fingerprint: Fingerprint, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Mark a group ignored."""
    _decide(fingerprint, "ignore", url, token, as_json)
