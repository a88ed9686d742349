"""The response models of the stats and error-group routes: every count is described by the definition that sits
next to the statement counting it (``observe.stats`` and ``failures.error_groups``), so the OpenAPI document, the
dashboard's help texts and the queries cannot drift apart."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from redrive.failures import error_groups as groups
from redrive.observe import stats


class ExecutionsCount(BaseModel):
    """``GET /api/v1/executions/stats``."""

    since: str = Field(description="The window, as asked: now minus this.")
    success: bool | None = Field(description="The selection, as asked.")
    kind: str | None = Field(description="The action kind, as asked; null for every kind.")
    count: int = Field(description=stats.EXECUTIONS_COUNT_MEANS)


class TriggerVolume(BaseModel):
    """One trigger's volume today."""

    count: int = Field(description="Events received today (UTC), duplicates dropped at ingest not included.")
    daily_watermark: int | None = Field(description="The trigger's daily watermark; null when it has none.")
    watermark_hit: bool = Field(description="True when today's count has reached the watermark.")
    paused: bool = Field(description="True when the trigger is paused.")


class Summary(BaseModel):
    """``GET /api/v1/stats``: windowed figures over whole UTC days, and figures about now."""

    days: int = Field(description="The window: this many whole UTC days, today included.")
    since: str = Field(description="The window's start: midnight (UTC) `days - 1` days ago.")
    total: int = Field(description=stats.TOTAL_MEANS)
    by_status: dict[str, int] = Field(description=stats.BY_STATUS_MEANS)
    failing_now: int = Field(description=stats.FAILING_NOW_MEANS)
    dlq_size: int = Field(description=stats.DLQ_SIZE_MEANS)
    permanent_failures: int = Field(description=stats.PERMANENT_FAILURES_MEANS)
    attempts_failed: int = Field(description=stats.ATTEMPTS_FAILED_MEANS)
    retries_observed: int = Field(description=stats.RETRIES_MEANS)
    replays: int = Field(description=stats.REPLAYS_MEANS)
    idempotent_replays: int = Field(description=stats.DUPLICATES_MEANS)
    key_conflicts: int = Field(description=stats.KEY_CONFLICTS_MEANS)
    invalid_signatures: int = Field(description=stats.INVALID_SIGNATURES_MEANS)
    triggers: dict[str, TriggerVolume] = Field(description=stats.TRIGGER_VOLUME_MEANS)
    warnings: list[str] = Field(
        description=f"`dlq_growing` when more than {stats.DLQ_WARNING} dead letters wait; `watermark_hit:<trigger>` "
        "for each trigger at its daily watermark."
    )


class Bucket(BaseModel):
    """One time bucket."""

    start: str = Field(description="The bucket's start: a multiple of its width since the Unix epoch (UTC).")
    counts: dict[str, int] = Field(description=stats.TIMESERIES_MEANS)


class Timeseries(BaseModel):
    """``GET /api/v1/stats/timeseries``."""

    since: str = Field(description="The window, as asked.")
    bucket: str = Field(description="The bucket width, as asked.")
    by: Literal["status", "kind", "trigger", "fingerprint"] = Field(description="What the counts are keyed by.")
    buckets: list[Bucket] = Field(description="Every bucket overlapping the window, oldest first, zero-filled.")


class Hint(BaseModel):
    """What a failure like this one usually means."""

    title: str
    advice: str
    remedy: str


class ErrorGroup(BaseModel):
    """One error group. Keys other than the documented ones pass through (extra="allow"), so a field added to the
    group's query is never dropped silently by this model."""

    model_config = ConfigDict(extra="allow")

    fingerprint: str = Field(description="Trigger + action kind + error code + normalised message, hashed.")
    title: str = Field(description="The normalised failure message.")
    code: str
    category: str = Field(description="transient or permanent.")
    trigger: str
    kind: str
    status: Literal["open", "resolved", "ignored", "regressed"]
    count: int = Field(description=groups.COUNT_MEANS)
    total: int = Field(description=groups.TOTAL_MEANS)
    dlq: int = Field(description=groups.DLQ_MEANS)
    failing: int = Field(description=groups.FAILING_MEANS)
    first_seen: str
    last_seen: str
    sample_execution_id: int | None = Field(description="The execution of the group's latest failed attempt.")
    status_changed_at: str | None = Field(description="When the group was last resolved, ignored or regressed.")
    acknowledged_at: str | None = Field(None, description="When an operator acknowledged the group (None: not).")
    acknowledged_by: str | None = Field(None, description="The token name that acknowledged it.")
    acknowledge_note: str | None = Field(None, description="The note given with the acknowledgement.")
    snoozed_until: str | None = Field(None, description="Snoozed until this time (None: not by time).")
    snooze_until_total: int | None = Field(
        None, description="Snoozed until `total` reaches this count (None: not by growth)."
    )
    silenced: bool = Field(
        False,
        description="Acknowledged, or snoozed and the snooze has not run out: repeated alerts stay quiet. A "
        "regression clears both.",
    )
    hint: Hint


class ErrorGroups(BaseModel):
    """``GET /api/v1/error-groups``."""

    since: str = Field(description="The window `count` covers, as asked.")
    items: list[ErrorGroup] = Field(description="Groups seen in the window, most failures in the window first.")
