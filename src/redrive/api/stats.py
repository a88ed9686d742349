"""``/api/v1/executions/stats``, ``/api/v1/stats`` and ``/api/v1/stats/timeseries``: counts read from indexes.

The app includes this router before the executions router, so ``/executions/stats`` is not taken for an id.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from redrive.api.auth import AUTH_RESPONSES, ViewerDep
from redrive.api.deps import StateDep, known_kind
from redrive.api.figures import ExecutionsCount, Summary, Timeseries
from redrive.api.state import ServiceState
from redrive.errors import InvalidWindow
from redrive.observe.stats import (
    FINISHED,
    MAX_DAYS,
    Key,
    Window,
    count_executions,
    statuses_for,
    summary,
    timeseries,
    zero_filled,
)
from redrive.observe.windows import WindowError, bucket_starts, parse_bucket, parse_window

router = APIRouter(prefix="/api/v1", tags=["stats"])
WINDOW_RESPONSES = {
    **AUTH_RESPONSES,
    422: {"description": "invalid_window: `since` or `bucket` breaks the rule; invalid_request: another parameter."},
}
Since = Annotated[str, Query(description="A window: a whole number and s, m, h or d, above zero, at most 7d.")]


def _window(value: str) -> timedelta:
    try:
        return parse_window(value)
    except WindowError as exc:
        raise InvalidWindow(str(exc)) from exc


def window_start(state: ServiceState, since: str) -> datetime:
    """Now minus the window ``since``, or a 422 ``invalid_window`` saying the rule."""
    return state.now() - _window(since)


@router.get("/executions/stats", responses=WINDOW_RESPONSES, response_model=ExecutionsCount)
async def executions_stats(
    state: StateDep,
    caller: ViewerDep,
    since: Since = "1h",
    success: Annotated[
        bool | None, Query(description="true: succeeded; false: failing now (failed or failed_retryable); absent: all.")
    ] = None,
    kind: Annotated[str | None, Query(description="An action kind (http, command, email, python, a plugin's).")] = None,
) -> dict[str, Any]:
    """The authoritative count of executions finished in the window, counted in the database (see ``count``)."""
    count = await state.db.read(
        count_executions(statuses_for(success), window_start(state, since), known_kind(state, kind))
    )
    return {"since": since, "success": success, "kind": kind, "count": count}


@router.get(
    "/stats",
    responses={**AUTH_RESPONSES, 422: {"description": "invalid_request: `days` is not 1 to 30."}},
    response_model=Summary,
)
async def stats_summary(
    state: StateDep,
    caller: ViewerDep,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="Whole UTC days, today included.")] = 1,
) -> dict[str, Any]:
    """Executions failing now, dead letters and permanent failures; failed attempts, retries, replays, duplicates,
    conflicts and refused signatures in the window; per-trigger volume today. Each field says what it counts."""
    return await state.db.read(summary(list(state.triggers), Window(days, state.now())))


def _keys(state: ServiceState, by: str) -> list[str]:
    """The keys every bucket shows, zero when absent."""
    if by == "status":
        return list(FINISHED)
    if by == "kind":
        return sorted(state.registry.kinds)
    if by == "trigger":
        return sorted(t.name for t in state.triggers)
    return ["failed"]


@router.get("/stats/timeseries", responses=WINDOW_RESPONSES, response_model=Timeseries)
async def stats_timeseries(
    state: StateDep,
    caller: ViewerDep,
    since: Since = "24h",
    bucket: Annotated[str, Query(description="Bucket width, e.g. 1m, 5m, 1h.")] = "5m",
    by: Key = "status",
    fingerprint: Annotated[str | None, Query(description="One error group's failed attempts instead.")] = None,
) -> dict[str, Any]:
    """Counts per time bucket by finished time, every bucket present (zero-filled)."""
    until = state.now()
    start = until - _window(since)
    try:
        width = parse_bucket(bucket)
        starts = bucket_starts(start, until, width)
    except WindowError as exc:
        raise InvalidWindow(str(exc)) from exc
    seconds = int(width.total_seconds())
    found = await state.db.read(timeseries(start, until, seconds, by, fingerprint))
    buckets = zero_filled(starts, seconds, found, _keys(state, "fingerprint" if fingerprint else by))
    return {"since": since, "bucket": bucket, "by": "fingerprint" if fingerprint else by, "buckets": buckets}
