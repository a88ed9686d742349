"""`redrive stats`: the authoritative count in a window, and the summary beside it (through the HTTP API)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from redrive.cli.common import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, call, client
from redrive.cli.output import out, print_table

_FIGURES = (  # what each counts: the field's description in the API docs (GET /openapi.json)
    ("failing now (any age)", "failing_now"),
    ("  dead letters", "dlq_size"),
    ("  permanent failures", "permanent_failures"),
    ("failed attempts", "attempts_failed"),
    ("duplicates dropped", "idempotent_replays"),
    ("key conflicts", "key_conflicts"),
    ("invalid signatures", "invalid_signatures"),
    ("retries", "retries_observed"),
    ("replays", "replays"),
)


def stats(
    since: Annotated[str, typer.Option(help="Window: 15m, 1h, 24h, 7d (at most 7d).")] = "1h",
    kind: Annotated[
        str | None, typer.Option(help="An action kind: http, command, email, python, or a plugin's.")
    ] = None,
    success: Annotated[
        bool | None,
        typer.Option("--success/--failure", help="Only succeeded, or only failing now (not replayed); all by default."),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=30, help="Summary window in UTC days, today included.")] = 1,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Count executions finished in a window (counted in the database) and show the summary."""
    with client(url, token) as api:
        count = call(api.execution_stats, since=since, success=success, kind=kind)
        summary = call(api.stats_summary, days=days)
    if as_json:
        out.print_json(data={"count": count, "summary": summary})
        return
    which = {None: "finished", True: "succeeded", False: "failing now, finished"}[success]
    noun = "execution" if count["count"] == 1 else "executions"
    what = f"{kind} {noun}" if kind else noun
    out.print(f"[bold]{count['count']}[/] {what} {which} in the last {since}", highlight=False)
    _print_summary(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    out.print(f"since {summary['since']} ({summary['days']} UTC day(s), today included):", highlight=False)
    totals = [("created", str(summary["total"]))]
    totals += [(f"  {status}", str(n)) for status, n in summary["by_status"].items()]
    totals += [(label, str(summary[key])) for label, key in _FIGURES]
    print_table(("executions", "count"), totals)
    triggers = []
    for name, row in summary["triggers"].items():
        mark = f"{row['daily_watermark']}{' HIT' if row['watermark_hit'] else ''}" if row["daily_watermark"] else ""
        triggers.append((name, str(row["count"]), mark, "yes" if row["paused"] else ""))
    print_table(("trigger", "events today", "watermark", "paused"), triggers)
    for warning in summary["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}", highlight=False)
