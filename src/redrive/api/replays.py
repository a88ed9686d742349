"""Replays: one execution (``/executions/{id}/replay``, with a preview), bulk jobs (``/replays``), and the audit log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from redrive.api.auth import AdminDep, OperatorDep, ViewerDep
from redrive.api.deps import Cursor, RowId, StateDep
from redrive.api.responses import Json
from redrive.api.state import ServiceState
from redrive.errors import Forbidden, InvalidRequest, NotFound, NotRunning, ReplayInProgress, UnknownTrigger
from redrive.failures import audit, bulk
from redrive.failures.replay import ReplayRequest, build_preview, preview_facts, raise_for, replay
from redrive.states import ExecutionStatus
from redrive.tokens import Principal

log = structlog.get_logger("redrive.replays")
router = APIRouter(prefix="/api/v1")

Responses = dict[int | str, dict[str, Any]]
AUTH: Responses = {
    401: {"description": "unauthenticated: no valid token."},
    403: {"description": "forbidden: the token's role is too weak."},
}
REPLAY_RESPONSES: Responses = {
    **AUTH,
    403: {"description": "forbidden: the role is too weak, or force=true on a failed execution without admin."},
    404: {"description": "not_found: no execution has that id."},
    409: {
        "description": "not_replayable: not dead-lettered (succeeded, pending, running, failed without force, "
        "already replayed); replay_limit: the event's executions were replayed 5 times."
    },
    429: {"description": "rate_limited: the event was replayed less than 60 s ago; see Retry-After."},
}
BULK_RESPONSES: Responses = {
    **AUTH,
    200: {"description": "A dry run: the count and a sample; nothing changed."},
    403: {"description": "forbidden: the role is too weak, or status=failed without admin."},
    404: {"description": "unknown_trigger: no such trigger; not_found: no error group has that fingerprint."},
    409: {"description": "replay_in_progress: a bulk replay of this trigger is running."},
    422: {"description": "invalid_request: the body does not validate (rate, limit, filter)."},
}
JOB_RESPONSES: Responses = {**AUTH, 404: {"description": "not_found: no bulk replay has that id."}}


class FilterIn(BaseModel):
    """Which executions to replay; ``trigger`` is required unless ``fingerprint`` names an error group."""

    model_config = ConfigDict(extra="forbid")

    trigger: str | None = Field(None, description="Trigger name.")
    status: Literal[ExecutionStatus.FAILED_RETRYABLE, ExecutionStatus.FAILED] = Field(
        ExecutionStatus.FAILED_RETRYABLE, description="`failed` (permanent failures) needs the admin role."
    )
    code: str | None = Field(None, description="Error code, e.g. http_503.")
    fingerprint: str | None = Field(None, description="An error group's fingerprint.")
    since: AwareDatetime | None = Field(None, description="Created at or after (ISO 8601 with a zone).")
    until: AwareDatetime | None = Field(None, description="Created before (ISO 8601 with a zone).")
    limit: int = Field(bulk.MAX_LIMIT, ge=1, le=bulk.MAX_LIMIT, description="Replay at most this many.")

    @model_validator(mode="after")
    def _needs_a_trigger(self) -> FilterIn:
        if self.trigger is None and self.fingerprint is None:
            raise ValueError("name a trigger, or a fingerprint (its error group names the trigger)")
        return self


class BulkIn(BaseModel):
    """A bulk replay: a filter, a rate, and whether to only count."""

    model_config = ConfigDict(extra="forbid")

    filter: FilterIn
    dry_run: bool = Field(False, description="Count and sample the matches; change nothing.")
    rate: float = Field(10.0, gt=0, le=bulk.MAX_RATE, description="Replays per second.")


def _request(state: ServiceState, caller: Principal, execution_id: int, force: bool) -> ReplayRequest:
    return ReplayRequest(
        execution_id,
        caller.name,
        state.now(),
        frozenset(state.triggers.ids),
        force,
        caller.can("admin"),
        blocking=frozenset(state.triggers.blocking),
        seeds=state.triggers.seeds,
    )


@router.post("/executions/{execution_id}/replay", tags=["replays"], responses=REPLAY_RESPONSES)
async def replay_execution(
    execution_id: RowId,
    state: StateDep,
    caller: OperatorDep,
    force: Annotated[bool, Query(description="Also replay a permanently failed execution (admin).")] = False,
) -> dict[str, Any]:
    """Replay one dead-lettered execution: a new pending execution for the same event."""
    result = await state.db.write(replay(_request(state, caller, execution_id, force)))
    if result.outcome != "ok":
        log.info("replay_refused", execution_id=execution_id, outcome=result.outcome, force=force, by=caller.name)
    raise_for(result)
    state.wakeup.work_due()
    log.info(
        "execution_replayed",
        execution_id=execution_id,
        new_execution_id=result.new_execution_id,
        force=force,
        by=caller.name,
    )
    return {
        "execution_id": execution_id,
        "new_execution_id": result.new_execution_id,
        "status": ExecutionStatus.REPLAYED,
    }


@router.get(
    "/executions/{execution_id}/replay-preview",
    tags=["replays"],
    responses={**AUTH, 404: {"description": "not_found: no execution has that id."}},
)
async def replay_preview(
    execution_id: RowId,
    state: StateDep,
    caller: OperatorDep,
    force: Annotated[bool, Query(description="Preview a forced replay of a failed execution.")] = False,
) -> dict[str, Any]:
    """What a replay would do now: whether it is allowed, and the action rendered from the current config."""
    facts = await state.db.read(preview_facts(execution_id))
    if facts is None:
        raise NotFound(f"no execution has id {execution_id}")
    trigger = state.triggers.by_id(facts["trigger_id"])
    return build_preview(facts, trigger, state.now(), force=force, may_force=caller.can("admin"))


async def _resolve(state: ServiceState, f: FilterIn) -> bulk.BulkFilter:
    trigger_id: int | None = None
    if f.trigger is not None:
        trigger = state.triggers.by_name(f.trigger)
        if trigger is None:
            raise UnknownTrigger(f"no trigger is called {f.trigger!r}")
        trigger_id = trigger.id
    if f.fingerprint is not None:
        owner = await state.db.read(bulk.fingerprint_trigger(f.fingerprint))
        if owner is None:
            raise NotFound(f"no error group has fingerprint {f.fingerprint!r}")
        if trigger_id is not None and owner != trigger_id:
            raise InvalidRequest(f"the error group {f.fingerprint!r} belongs to another trigger")
        if state.triggers.by_id(owner) is None:
            raise UnknownTrigger(f"the trigger of error group {f.fingerprint!r} is no longer declared")
        trigger_id = owner
    assert trigger_id is not None, "the model requires a trigger or a fingerprint"
    return bulk.BulkFilter(trigger_id, f.status, f.code, f.fingerprint, f.since, f.until, f.limit)


@router.post("/replays", status_code=202, tags=["replays"], responses=BULK_RESPONSES)
async def bulk_replay(body: BulkIn, state: StateDep, caller: OperatorDep) -> Json:
    """Start a bulk replay in the background (202 with the job), or count what it would take (dry run, 200)."""
    f = await _resolve(state, body.filter)
    if body.dry_run:
        return Json(await state.db.read(bulk.dry_run(f)))
    trigger = state.triggers.by_id(f.trigger_id)
    assert trigger is not None
    shown = {**body.filter.model_dump(mode="json"), "trigger": trigger.name}
    now = state.now()
    if f.status == ExecutionStatus.FAILED and not caller.can("admin"):
        refusal = audit.record_job(
            at=now,
            actor=caller.name,
            action="bulk_replay",
            target=None,
            result="forbidden",
            detail={"filter": shown, "rate": body.rate},
        )
        await state.db.write(refusal)
        raise Forbidden("replaying permanently failed executions (status=failed) needs the admin role")
    started = await state.db.write(bulk.create(f, rate=body.rate, actor=caller.name, now=now, shown_filter=shown))
    if isinstance(started, int):
        raise ReplayInProgress(await _in_progress_message(state, started))
    state.bulk_runs.start(
        state.db,
        started,
        runnable=frozenset(state.triggers.ids),
        clock=state.clock,
        wakeup=state.wakeup,
        blocking=frozenset(state.triggers.blocking),
        seeds=state.triggers.seeds,
    )
    return Json(await _job(state, started.id), status_code=202)


async def _in_progress_message(state: ServiceState, running: int) -> str:
    job = await _job(state, running)
    message = (
        f"bulk replay {running} of trigger {job['trigger']} is running ({job['replayed']}/{job['matched']} "
        f"replayed); wait for it or cancel it (POST /api/v1/replays/{running}/cancel)"
    )
    if job["stale"]:
        message += (
            f"; it has made no progress since {job['last_progress_at']} and no runner in this process holds it, "
            "so the process running it has probably stopped: cancel it to start a new one"
        )
    return message


async def _job(state: ServiceState, bulk_id: int) -> dict[str, Any]:
    found = await state.db.read(bulk.describe(bulk_id, state.now(), state.bulk_runs.local))
    if found is None:
        raise NotFound(f"no bulk replay has id {bulk_id}")
    return found


@router.get("/replays/{replay_id}", tags=["replays"], responses=JOB_RESPONSES)
async def bulk_replay_show(replay_id: RowId, state: StateDep, caller: ViewerDep) -> dict[str, Any]:
    """A bulk replay's progress: matched, replayed, skipped, and how its new executions fared."""
    return await _job(state, replay_id)


@router.post(
    "/replays/{replay_id}/cancel",
    tags=["replays"],
    responses={**JOB_RESPONSES, 409: {"description": "not_running: the bulk replay has finished already."}},
)
async def bulk_replay_cancel(replay_id: RowId, state: StateDep, caller: OperatorDep) -> dict[str, Any]:
    """Cancel a running bulk replay (from any node); replays already made stay."""
    found = await state.db.write(bulk.cancel(replay_id, caller.name, state.now()))
    if found is None:
        raise NotFound(f"no bulk replay has id {replay_id}")
    if found != "running":
        raise NotRunning(f"bulk replay {replay_id} is {found} already")
    return await _job(state, replay_id)


@router.get("/audit", tags=["audit"], responses=AUTH)
async def audit_list(
    state: StateDep,
    caller: AdminDep,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 50,
    before: Cursor = None,
) -> dict[str, Any]:
    """The audit log, newest first; pass ``next_cursor`` back as ``before`` for the next page."""
    rows = await state.db.read(audit.list_audit(limit, before))
    return {"items": rows, "next_cursor": rows[-1]["id"] if len(rows) == limit else None}
