"""`redrive errors ls|resolve|ignore|ack|unack|snooze|unsnooze`: error groups (through the HTTP API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from redrive.cli.common import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, call, client, fail, group
from redrive.cli.output import escape, out
from redrive.durations import parse_duration

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
            f"{item['count']} in {since}, {item['total']} in all, {item['dlq']} in the DLQ{escape(attention(item))}",
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


def attention(group: dict[str, Any]) -> str:
    """What silences the group's repeated alerts, as ``  (acknowledged by ops: note; snoozed until ...)``, or ''."""
    parts = []
    if group.get("acknowledged_at"):
        note = f": {group['acknowledge_note']}" if group.get("acknowledge_note") else ""
        parts.append(f"acknowledged by {group['acknowledged_by']}{note}")
    if group.get("snoozed_until"):
        parts.append(f"snoozed until {group['snoozed_until']}")
    if group.get("snooze_until_total") is not None:
        parts.append(f"snoozed until {group['snooze_until_total']} in all")
    if parts and not group.get("silenced"):
        parts.append("the snooze has run out")
    return f"  ({'; '.join(parts)})" if parts else ""


def _attend(
    fingerprint: str, action: str, body: dict[str, Any] | None, url: str | None, token: str | None, as_json: bool
) -> None:
    with client(url, token) as api:
        group = call(api.attend_error_group, fingerprint, action, body)
    if as_json:
        out.print_json(data=group)
    else:
        said = attention(group) or "  (neither acknowledged nor snoozed)"
        out.print(f"{fingerprint} is {group['status']}{escape(said)}: {escape(group['title'])}", highlight=False)


@app.command("ack")
def ack(
    fingerprint: Fingerprint,
    note: Annotated[str | None, typer.Option(help="Why, or who is on it.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge a group: its repeated alerts stop, it stays open; a regression clears the acknowledgement."""
    _attend(fingerprint, "acknowledge", {"note": note}, url, token, as_json)


@app.command("unack")
def unack(
    fingerprint: Fingerprint, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Withdraw a group's acknowledgement."""
    _attend(fingerprint, "unacknowledge", None, url, token, as_json)


@app.command("snooze")
def snooze(
    fingerprint: Fingerprint,
    until: Annotated[
        str | None, typer.Option(help="A time (ISO 8601 with a zone) or a duration from now (30m, 2h, 1d).")
    ] = None,
    grows_by: Annotated[int | None, typer.Option(help="Until the group counts this many more failures.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Snooze a group until a time or until it grows by N failures (give exactly one); a regression ends it."""
    body = {"until": _time(until) if until is not None else None, "grows_by": grows_by}
    _attend(fingerprint, "snooze", body, url, token, as_json)


@app.command("unsnooze")
def unsnooze(
    fingerprint: Fingerprint, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """End a group's snooze now."""
    _attend(fingerprint, "unsnooze", None, url, token, as_json)


def _time(value: str) -> str:
    # A duration counts from this machine's clock; a time is passed on as written (the server checks it is ahead).
    try:
        return (datetime.now(UTC) + timedelta(seconds=parse_duration(value))).isoformat()
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--until {value!r} is neither a time (2026-12-24T18:00:00+00:00) nor a duration (30m, 2h, 1d)")
    if when.tzinfo is None:
        fail(f"--until {value!r} has no time zone; add one (+00:00 or Z)")
    return when.isoformat()
