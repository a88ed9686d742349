"""`redrive replay`, `redrive dlq ls|replay`, `redrive replays show|cancel`, `redrive audit ls`, over the HTTP API."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from redrive.cli.common import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, call, client, group
from redrive.cli.output import console, err, escape, out, print_table

if TYPE_CHECKING:
    from redrive.client import RedriveClient

dlq_app = group("The dead-letter queue: list and replay failed_retryable executions.")
replays_app = group("Bulk replay jobs.")
audit_app = group("The audit log (admin).")

POLL = 0.5
TriggerOpt = Annotated[str | None, typer.Option("--trigger", "-t", help="Trigger name.")]
CodeOpt = Annotated[str | None, typer.Option("--code", help="Error code, e.g. http_503.")]


def replay(
    execution_id: Annotated[int, typer.Argument(help="Execution id.")],
    force: Annotated[bool, typer.Option("--force", help="Also replay a permanently failed execution (admin).")] = False,
    preview: Annotated[bool, typer.Option("--preview", help="Show what a replay would do; change nothing.")] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay one dead-lettered execution (a new execution for the same event)."""
    with client(url, token) as api:
        result = call(api.replay_preview if preview else api.replay_execution, execution_id, force=force)
    if as_json:
        out.print_json(data=result)
    elif preview:
        verdict = (
            "[green]replayable[/]" if result["replayable"] else f"[red]not replayable[/]: {escape(result['reason'])}"
        )
        out.print(f"execution {execution_id} ({result['trigger']}, {result['status']}): {verdict}", highlight=False)
        out.print(f"target: {escape(result['target'] or '-')}", highlight=False)
        out.print(f"originally ran at {result['originally_ran_at']}; replayed {result['replay_count']} time(s)")
    else:
        out.print(f"execution {execution_id} replayed as execution {result['new_execution_id']}")


@dlq_app.command("ls")
def dlq_ls(
    trigger: TriggerOpt = None,
    code: CodeOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List dead-lettered (failed_retryable) executions, newest first."""
    with client(url, token) as api:
        rows = call(api.list_executions, status="failed_retryable", trigger=trigger, code=code, limit=limit)
    if as_json:
        out.print_json(data=rows)
        return
    print_table(
        ("id", "trigger", "code", "attempts", "failed at", "message"),
        (
            (
                str(row["id"]),
                row["trigger"],
                row["error_code"] or "",
                str(row["attempt_count"]),
                row["finished_at"] or "",
                row["error_message"] or "",
            )
            for row in rows
        ),
    )


@dlq_app.command("replay")
def dlq_replay(
    trigger: TriggerOpt = None,
    code: CodeOpt = None,
    fingerprint: Annotated[str | None, typer.Option(help="An error group's fingerprint.")] = None,
    since: Annotated[str | None, typer.Option(help="Created at or after (ISO 8601 with a zone).")] = None,
    until: Annotated[str | None, typer.Option(help="Created before (ISO 8601 with a zone).")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Replay permanent failures instead (admin).")] = False,
    limit: Annotated[int | None, typer.Option(min=1, max=100_000, help="Replay at most this many.")] = None,
    rate: Annotated[float | None, typer.Option(help="Replays per second (default 10, max 500).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count and sample the matches; change nothing.")] = False,
    wait: Annotated[bool, typer.Option(help="Follow the job until it ends (Ctrl-C offers to cancel it).")] = True,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay the dead-lettered executions matching a filter, paced, as one audited background job."""
    filters: dict[str, Any] = {"trigger": trigger, "code": code, "fingerprint": fingerprint, "since": since}
    filters |= {"until": until, "limit": limit, "status": "failed" if failed else None}
    with client(url, token) as api:
        job = call(api.bulk_replay, filters, rate=rate, dry_run=dry_run)
        if dry_run:
            _print_dry_run(job, as_json)
            return
        if wait:
            job = _follow(api, job, show=not as_json)
    _show_job(job, as_json)
    if wait and job["status"] != "done":
        raise typer.Exit(1)


def _print_dry_run(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(data=result)
        return
    out.print(f"dry run: {result['matched']} execution(s) would be replayed; nothing changed")
    if result["sample"]:
        print_table(
            ("id", "trigger", "code", "attempts", "created"),
            (
                (str(row["id"]), row["trigger"], row["error_code"] or "", str(row["attempt_count"]), row["created_at"])
                for row in result["sample"]
            ),
        )


def _follow(api: RedriveClient, job: dict[str, Any], *, show: bool) -> dict[str, Any]:
    """Poll the job until it ends, with a progress bar when ``show``; Ctrl-C offers to cancel it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("bulk replay {task.fields[id]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console(), disable=not show, transient=True) as progress:
            task = progress.add_task("replay", total=job["matched"] or 1, id=job["id"])
            while job["status"] == "running":
                time.sleep(POLL)
                job = call(api.get_bulk_replay, job["id"])
                progress.update(task, completed=job["replayed"] + job["skipped"])
    except KeyboardInterrupt:
        return _interrupted(api, job)
    return job


def _interrupted(api: RedriveClient, job: dict[str, Any]) -> dict[str, Any]:
    try:
        stop = not sys.stdin.isatty() or typer.confirm(f"\ncancel bulk replay {job['id']} on the server?", default=True)
    except (KeyboardInterrupt, typer.Abort):
        stop = False
    if not stop:
        err.print(f"bulk replay {job['id']} keeps running; follow it with: redrive replays show {job['id']}")
        raise typer.Exit(130)
    return dict(call(api.cancel_bulk_replay, job["id"]))


def _show_job(job: dict[str, Any], as_json: bool) -> None:
    """A bulk replay as JSON for scripts, or as progress lines for people."""
    if as_json:
        out.print_json(data=job)
    else:
        _print_job(job)


def _print_job(job: dict[str, Any]) -> None:
    out.print(
        f"[bold]bulk replay {job['id']}[/] ({job['trigger']}, {job['rate']:g}/s, by {job['created_by']}): "
        f"[bold]{job['status']}[/]: {job['replayed']} of {job['matched']} replayed, {job['skipped']} skipped",
        highlight=False,
    )
    out.print(f"new executions: {job['succeeded']} succeeded, {job['failed']} failed, {job['pending']} pending")
    if job.get("error"):
        err.print(f"[red]error:[/] {escape(job['error'])}", highlight=False)
    if job.get("stale"):
        err.print(f"[yellow]no progress since {job['last_progress_at']}: its process may have stopped[/]")


@replays_app.command("show")
def replays_show(
    bulk_id: Annotated[int, typer.Argument(help="Bulk replay id.")],
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a bulk replay's progress."""
    with client(url, token) as api:
        job = call(api.get_bulk_replay, bulk_id)
    _show_job(job, as_json)


@replays_app.command("cancel")
def replays_cancel(
    bulk_id: Annotated[int, typer.Argument(help="Bulk replay id.")],
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a running bulk replay; replays already made stay."""
    with client(url, token) as api:
        job = call(api.cancel_bulk_replay, bulk_id)
    _show_job(job, as_json)


def audit_detail(detail: dict[str, Any]) -> str:
    """An audit row's detail on one line: a bulk replay's filter and rate first, then the other facts."""
    facts = {key: value for key, value in detail.items() if value not in (None, "", {}, [])}
    parts = []
    if isinstance(facts.get("filter"), dict):
        shown = " ".join(f"{key}={value}" for key, value in facts.pop("filter").items() if value is not None)
        parts.append(f"filter: {shown}")
    if "rate" in facts:
        parts.append(f"rate {facts.pop('rate'):g}/s")
    parts += [f"{key}={value}" for key, value in facts.items()]
    return ", ".join(parts)


@audit_app.command("ls")
def audit_ls(
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    before: Annotated[int | None, typer.Option(help="Rows older than this id (the previous page's cursor).")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the audit log, newest first (needs an admin token)."""
    with client(url, token) as api:
        page = call(api.list_audit, limit=limit, before=before)
    if as_json:
        out.print_json(data=page)
        return
    print_table(
        ("id", "at", "actor", "action", "target", "result", "detail"),
        (
            (str(r["id"]), r["at"], r["actor"], r["action"], r["target"] or "-", r["result"], audit_detail(r["detail"]))
            for r in page["items"]
        ),
    )
    if page["next_cursor"] is not None:
        out.print(f"more: --before {page['next_cursor']}")
