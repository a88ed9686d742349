"""``redrive purge``: delete finished work past its retention now (the maintenance leader also does it hourly)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from redrive.cli.common import DEFAULT_CONFIG, ConfigOpt, fail, load_settings, load_triggers
from redrive.cli.output import out
from redrive.clock import utcnow
from redrive.durations import parse_duration

if TYPE_CHECKING:
    from redrive.node.retention import Purged


def _describe(result: Purged, verb: str) -> str:
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(result.by_status.items())) or "none"
    return (
        f"{verb} {result.executions} execution(s) ({statuses}), {result.attempts} attempt(s), "
        f"{result.events} event(s) with their idempotency keys"
    )


def purge_command(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than", help="Purge finished work older than this (e.g. 30d) instead of each trigger's retention."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be purged.")] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Purge succeeded executions, dead letters and unreferenced events past their retention."""
    import asyncio

    from sqlalchemy import select

    from redrive.db.database import Database
    from redrive.db.schema import triggers
    from redrive.node.retention import count, plan, purge

    settings = load_settings(config=config)
    seconds = None
    if older_than is not None:
        try:
            seconds = parse_duration(older_than)
        except ValueError as exc:
            fail(f"--older-than: {exc}")
    # Without --older-than each trigger keeps its own windows, so the trigger file must be there: purging at the
    # defaults because it was not found could delete what a longer declared retention keeps.
    declared = {t.name: t.retention for t in load_triggers(settings.config).triggers} if seconds is None else {}
    db = Database(settings.database_url)
    try:
        ids = dict(db.read_sync(lambda c: c.execute(select(triggers.c.name, triggers.c.id)).all()))
        retentions = {ids[name]: retention for name, retention in declared.items() if name in ids}
        purge_plan = plan(retentions, utcnow(), seconds)
        if dry_run:
            out.print(_describe(db.read_sync(count(purge_plan)), "would purge"))
            return
        result = asyncio.run(purge(lambda job: asyncio.to_thread(db.write_sync, job), purge_plan))
        out.print(_describe(result, "purged"))
    finally:
        db.close()
