"""The dashboard's only data source: typed calls to redrive's HTTP API (never the database).

Every method returns what the API answered, shaped as a typed dict or value, or raises ``ApiError`` (``code``
``unreachable`` when the API does not answer in time). Numbers are never computed here from local buffers: the
badges and counts are the API's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict, cast

from redrive.client import ApiError, RedriveClient

__all__ = [
    "ROLES",
    "ApiError",
    "BulkJob",
    "DashboardClient",
    "DestinationPage",
    "DestinationSummary",
    "ErrorGroup",
    "ExecutionQuery",
    "Me",
    "Probe",
    "Summary",
    "TriggerView",
]

Role = Literal["viewer", "operator", "admin"]
Attention = Literal["acknowledge", "unacknowledge", "snooze", "unsnooze"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")


@dataclass(frozen=True, slots=True)
class Me:
    """The signed-in token: its name and role."""

    name: str
    role: Role

    def can(self, role: Role) -> bool:
        """True when this token's role is at least ``role`` (the API still checks every call)."""
        return ROLES.index(self.role) >= ROLES.index(role)


class TriggerVolume(TypedDict):
    count: int
    daily_watermark: int | None
    watermark_hit: bool
    paused: bool


class Summary(TypedDict):
    """``GET /api/v1/stats``."""

    total: int
    by_status: dict[str, int]
    failing_now: int
    dlq_size: int
    permanent_failures: int
    attempts_failed: int
    idempotent_replays: int
    key_conflicts: int
    retries_observed: int
    replays: int
    triggers: dict[str, TriggerVolume]
    warnings: list[str]


class Hint(TypedDict):
    title: str
    advice: str
    remedy: str


class ErrorGroup(TypedDict):
    """One item of ``GET /api/v1/error-groups``."""

    fingerprint: str
    title: str
    code: str
    category: str
    trigger: str
    kind: str
    status: str
    count: int
    total: int
    first_seen: str
    last_seen: str
    dlq: int
    sample_execution_id: int | None
    acknowledged_at: str | None
    acknowledged_by: str | None
    acknowledge_note: str | None
    snoozed_until: str | None
    snooze_until_total: int | None
    silenced: bool
    hint: Hint


class TriggerView(TypedDict):
    """One item of ``GET /api/v1/triggers``: config (secrets masked), pause state, counters."""

    name: str
    kind: str
    paused: bool
    paused_reason: str | None
    config: dict[str, Any]
    counters: dict[str, int]
    daily_watermark: int | None


class BulkJob(TypedDict, total=False):
    """``GET /api/v1/replays/{id}``."""

    id: int
    trigger: str
    status: str
    rate: float
    matched: int
    replayed: int
    skipped: int
    succeeded: int
    failed: int
    pending: int
    error: str | None


class DestinationSummary(TypedDict):
    """Every destination by state (``forced``: the overrides of either kind, counted in their state too)."""

    open: int
    half_open: int
    closed: int
    forced: int
    total: int


class DestinationPage(TypedDict):
    """One page of ``GET /api/v1/destinations``, those needing attention first, and the summary of every one."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    summary: DestinationSummary


@dataclass(frozen=True, slots=True)
class ExecutionQuery:
    """The executions table's filters; ``since`` is an ISO 8601 time with a zone."""

    trigger: str | None = None
    status: str | None = None
    kind: str | None = None
    code: str | None = None
    since: str | None = None
    limit: int = 100
    fingerprint: str | None = None
    cursor: int | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """One health endpoint: its HTTP status and body, or ``None`` when this server does not offer it."""

    path: str
    body: dict[str, Any] | None
    status: int | None
    problem: str | None = None


class DashboardClient:
    """Calls one redrive server with one token; short timeouts, so a slow API shows a banner, not a hang."""

    def __init__(
        self, base_url: str, token: str | None, *, timeout: float = 5.0, headers: dict[str, str] | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api = RedriveClient(self.base_url, token=token, timeout=timeout, headers=headers)

    def close(self) -> None:
        """Close the connection pool."""
        self._api.__exit__(None, None, None)

    def _get(self, path: str, **params: Any) -> Any:
        return self._api.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def me(self) -> Me:
        """``GET /api/v1/me``: who the token is."""
        body = self._get("/api/v1/me")
        return Me(str(body["name"]), cast(Role, body["role"]))

    def summary(self) -> Summary:
        """``GET /api/v1/stats`` for today."""
        return cast(Summary, self._api.stats_summary())

    def timeseries(self, *, since: str = "24h", bucket: str = "1h", fingerprint: str | None = None) -> list[Any]:
        """Buckets ``{"start", "counts"}`` by status (or one error group's failures with ``fingerprint``)."""
        body = self._api.stats_timeseries(since=since, bucket=bucket, by="status", fingerprint=fingerprint)
        buckets: list[Any] = body["buckets"]
        return buckets

    def error_groups(self, *, since: str = "24h", status: str | None = None, limit: int = 50) -> list[ErrorGroup]:
        """``GET /api/v1/error-groups``: most failures in the window first."""
        return cast(list[ErrorGroup], self._api.list_error_groups(since=since, status=status, limit=limit))

    def decide_group(self, fingerprint: str, decision: Literal["resolve", "ignore"]) -> ErrorGroup:
        """Resolve or ignore an error group."""
        return cast(ErrorGroup, self._api.decide_error_group(fingerprint, decision))

    def attend_group(self, fingerprint: str, action: Attention, body: dict[str, Any] | None = None) -> ErrorGroup:
        """Acknowledge, unacknowledge, snooze or unsnooze an error group."""
        return cast(ErrorGroup, self._api.attend_error_group(fingerprint, action, body))

    def executions(self, query: ExecutionQuery) -> list[dict[str, Any]]:
        """``GET /api/v1/executions``: one page, newest first."""
        return self.executions_page(query)[0]

    def executions_page(self, query: ExecutionQuery) -> tuple[list[dict[str, Any]], int | None]:
        """One page of ``GET /api/v1/executions`` and the cursor of the next (older) one, if any."""
        body = self._get(
            "/api/v1/executions",
            trigger=query.trigger,
            status=query.status,
            kind=query.kind,
            code=query.code,
            fingerprint=query.fingerprint,
            since=query.since,
            cursor=query.cursor,
            limit=query.limit,
        )
        return list(body["items"]), body["next_cursor"]

    def error_group(self, fingerprint: str) -> ErrorGroup:
        """``GET /api/v1/error-groups/{fingerprint}``."""
        return cast(ErrorGroup, self._get(f"/api/v1/error-groups/{fingerprint}"))

    def system(self) -> dict[str, Any]:
        """``GET /api/v1/system``: nodes, queue, this process, database, versions."""
        return cast(dict[str, Any], self._get("/api/v1/system"))

    def history(self, since: str = "6h") -> list[dict[str, Any]]:
        """``GET /api/v1/system/history``: the leader's per-minute samples in the window, oldest first."""
        return list(self._get("/api/v1/system/history", since=since)["samples"])

    def execution(self, execution_id: int) -> dict[str, Any]:
        """``GET /api/v1/executions/{id}``: attempts, event (redacted), rendered action, error context."""
        return self._api.get_execution(execution_id)

    def replay_preview(self, execution_id: int) -> dict[str, Any]:
        """What a replay would send now, and whether the API would accept it."""
        return self._api.replay_preview(execution_id)

    def replay(self, execution_id: int) -> dict[str, Any]:
        """Replay one dead-lettered execution."""
        return self._api.replay_execution(execution_id)

    def bulk_dry_run(self, filters: dict[str, Any]) -> dict[str, Any]:
        """How many executions a bulk replay would take, and a sample; changes nothing."""
        return self._api.bulk_replay(filters, dry_run=True)

    def bulk_start(self, filters: dict[str, Any], rate: float) -> BulkJob:
        """Start a bulk replay at ``rate`` per second."""
        return cast(BulkJob, self._api.bulk_replay(filters, rate=rate))

    def bulk_job(self, job_id: int) -> BulkJob:
        """A bulk replay's progress."""
        return cast(BulkJob, self._api.get_bulk_replay(job_id))

    def bulk_cancel(self, job_id: int) -> BulkJob:
        """Cancel a running bulk replay."""
        return cast(BulkJob, self._api.cancel_bulk_replay(job_id))

    def triggers(self) -> list[TriggerView]:
        """Every trigger with its redacted config, pause state and counters."""
        return cast(list[TriggerView], self._api.list_triggers())

    def set_paused(self, name: str, paused: bool) -> TriggerView:
        """Pause or resume a trigger."""
        return cast(TriggerView, self._api.set_trigger_paused(name, paused))

    def alerts(self) -> dict[str, Any]:
        """``GET /api/v1/alerts``: the rules with their state (firing first) and the channels' delivery health."""
        return self._api.list_alerts()

    def alert_history(self, limit: int = 50) -> list[dict[str, Any]]:
        """``GET /api/v1/alerts/history``: transitions, newest first, with their deliveries."""
        return self._api.alert_history(limit=limit)

    def test_alert(self, name: str) -> dict[str, Any]:
        """``POST /api/v1/alerts/{name}/test``: a marked test notification through the rule's channels."""
        return self._api.test_alert(name)

    def destinations(self, *, limit: int = 50, cursor: str | None = None, state: str | None = None) -> DestinationPage:
        """One page of destinations, open and half-open first (breaker state, held and running work, failure rate,
        latency, limits), and how many there are in each state."""
        return cast(DestinationPage, self._api.list_destinations(limit=limit, cursor=cursor, state=state))

    def destination(self, name: str) -> dict[str, Any]:
        """One destination with its latest breaker transitions."""
        return self._api.get_destination(name)

    def force_destination(self, name: str, action: str) -> dict[str, Any]:
        """Force a destination's breaker ``open`` or ``close``, or ``reset`` it."""
        return self._api.force_destination(name, action)

    def probe(self, path: str) -> Probe:
        """A health or system endpoint; a 404 means this server does not offer it (yet)."""
        try:
            return Probe(path, self._get(path), 200)
        except ApiError as exc:
            if exc.status == 404:
                return Probe(path, None, None)
            if exc.status == 0:
                raise
            return Probe(path, None, exc.status, f"{exc.message} ({exc.code})")

    def definitions(self, schema: str = "Summary") -> dict[str, str]:
        """What each field of an API response counts: its description in the server's OpenAPI document (the
        definition written next to the query), for help texts; empty for a server that does not document it."""
        schemas = self._get("/openapi.json").get("components", {}).get("schemas", {})
        fields = schemas.get(schema, {}).get("properties", {})
        return {name: str(field.get("description", "")) for name, field in fields.items()}

    def version(self) -> str:
        """The server's version, from its OpenAPI document."""
        return str(self._get("/openapi.json")["info"]["version"])
