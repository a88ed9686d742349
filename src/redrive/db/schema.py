"""The tables, in SQLAlchemy Core: the single source of truth that Alembic migrations are generated from.

Every timestamp is a UTC ``datetime``; ids are integers (``INTEGER PRIMARY KEY`` on SQLite, ``BIGINT IDENTITY`` on
PostgreSQL). The executions table is the queue.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from redrive.states import ExecutionStatus

# Autoincrementing ids: a rowid alias on SQLite, BIGINT on PostgreSQL.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def sqlite_text(value: datetime | None) -> str | None:
    """The text SQLite's DATETIME stores for ``value`` (``'2026-01-01 12:00:00.000000'``), as SQLAlchemy writes it.

    Every row the writer stores has several datetimes, and written as ``isoformat`` (whose offset costs as much as
    the rest) this held 2.6-2.7% of the server's ``py-spy --gil`` samples end to end. orjson writes the ISO text in
    C: 0.41 us a value against 1.06 (its microseconds only when not 0). orjson takes no subclass of datetime: such
    a value is written the slow way."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        value = value.astimezone(UTC)
    if type(value) is not datetime:
        return value.isoformat(" ", "microseconds")[:26]
    text = orjson.dumps(value)  # b'"2026-01-01T12:00:00.123456+00:00"'
    if value.microsecond:
        return text[1:27].decode().replace("T", " ")
    return text[1:20].decode().replace("T", " ") + ".000000"


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on both dialects (SQLite stores naive text; PostgreSQL a timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        return sqlite_text

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc() -> UtcDateTime:
    return UtcDateTime()


Json = JSON().with_variant(JSONB(), "postgresql")


triggers = Table(
    "triggers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("action_kind", String(32), nullable=False),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    Column("paused_reason", Text),
    Column("created_at", _utc(), nullable=False),
    Column("updated_at", _utc(), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("trigger_id", Id, ForeignKey("triggers.id"), nullable=False),
    Column("idempotency_key", String(255)),
    Column("body_sha256", String(64), nullable=False),
    Column("headers", Json, nullable=False),
    Column("payload", Json, nullable=False),
    Column("filtered", Boolean, nullable=False, server_default=text("false")),
    Column("received_at", _utc(), nullable=False),
    # Replays of this event's executions: at most MAX_REPLAYS in all, one per REPLAY_INTERVAL (checked in SQL).
    Column("replay_count", Integer, nullable=False, server_default=text("0")),
    Column("last_replay_at", _utc()),
    Index(
        "uq_events_trigger_key",
        "trigger_id",
        "idempotency_key",
        unique=True,
        sqlite_where=text("idempotency_key IS NOT NULL"),
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
    Index("ix_events_trigger_received", "trigger_id", "received_at"),
)

ORDERING_LIVE = f"status <> '{ExecutionStatus.SUCCEEDED.value}'"
"""ix_executions_ordering's test of a row's status, in the words each of its searches repeats (``parking.same_key``)."""

executions = Table(
    "executions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", Id, ForeignKey("events.id"), nullable=False),
    Column("trigger_id", Id, ForeignKey("triggers.id"), nullable=False),
    Column("action_kind", String(32), nullable=False),
    Column("status", String(20), nullable=False),
    # Attempts charged to the retry budget; ``uncharged`` counts those held by an open breaker, not charged
    # (``redrive.destinations.holding``). An attempt row's number is the sum plus one: every request is numbered.
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("uncharged", Integer, nullable=False, server_default=text("0")),
    Column("run_at", _utc(), nullable=False),
    Column("lease_token", String(32)),
    Column("lease_expires_at", _utc()),
    Column("created_at", _utc(), nullable=False),
    Column("updated_at", _utc(), nullable=False),
    Column("finished_at", _utc()),
    Column("error_category", String(16)),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("replay_of", Id, ForeignKey("executions.id")),
    Column("last_replay_at", _utc()),
    Column("fingerprint", String(16)),
    Column("bulk_replay_id", Id, ForeignKey("bulk_replays.id")),
    # Rendered once from the trigger's ``ordering.key`` when the row is made (ingest, replay); NULL when unordered.
    Column("ordering_key", String(255)),
    # What the action talks to (``redrive.destinations.keys``), fixed when the row is made; NULL before 0007.
    Column("destination", String(255)),
    # Parked: a pending ordered row made while an earlier row of its key held the key (``redrive.queue.parking``).
    # Claims read only unparked rows (``key_waiting = false`` in every claim's index range); the key's holder
    # promotes its oldest parked row when it goes. Always false on unordered rows and on every row not pending.
    Column("key_waiting", Boolean, nullable=False, server_default=text("false")),
    # Laned: a pending row of a destination whose claims are capped (held by its breaker, limited, paced), moved out
    # of the free claim's range by a claim that found more of them due than it could take; claimed through the
    # destination's own range (ix_executions_destination) and unlaned when it is no longer restricted
    # (``redrive.destinations.store``). Always false on rows not pending: a lease unlanes what it takes.
    Column("dest_waiting", Boolean, nullable=False, server_default=text("false")),
    Index("ix_executions_event", "event_id"),
    # The queue: due pending rows in run_at order, read by every claim. Not a partial index: a claim binds its
    # status as a parameter, and a planner cannot match a bound parameter to a partial index's predicate (SQLite
    # then sorted every pending row on each claim). ``key_waiting`` and ``dest_waiting`` sit before ``run_at`` so that
    # a claim's range (``status = 'pending' AND key_waiting = false AND dest_waiting = false``) never holds parked or
    # laned rows, however many wait behind busy keys or held destinations.
    Index("ix_executions_due", "status", "key_waiting", "dest_waiting", "run_at"),
    # Every write of an execution (insert, lease, completion) changes its status, so each of its three writes puts a
    # new entry in every index whose predicate the row satisfies (never a HOT update while ix_executions_due holds
    # the status). The indexes below are partial on ``<column> IS NOT NULL`` so a row enters only those that can
    # find it: any comparison on the column (``=``, ``<``, ``>=``, a join) implies the predicate on both databases,
    # bound parameter or not. A successful run of a new event enters none of the five: NULL fingerprint, bulk replay
    # and replay_of; lease_expires_at set only while running (the claim); finished_at only once finished.
    # The sweeper: running rows by lease expiry (``lease_expires_at < now``).
    Index(
        "ix_executions_lease",
        "status",
        "lease_expires_at",
        sqlite_where=text("lease_expires_at IS NOT NULL"),
        postgresql_where=text("lease_expires_at IS NOT NULL"),
    ),
    # Windowed counts, retention, alert windows: an index-only range per status and finish time, narrowed by kind.
    Index(
        "ix_executions_finished",
        "status",
        "finished_at",
        "action_kind",
        sqlite_where=text("finished_at IS NOT NULL"),
        postgresql_where=text("finished_at IS NOT NULL"),
    ),
    Index(
        "ix_executions_fingerprint",
        "fingerprint",
        "status",
        sqlite_where=text("fingerprint IS NOT NULL"),
        postgresql_where=text("fingerprint IS NOT NULL"),
    ),
    Index(
        "ix_executions_bulk_replay",
        "bulk_replay_id",
        "status",
        sqlite_where=text("bulk_replay_id IS NOT NULL"),
        postgresql_where=text("bulk_replay_id IS NOT NULL"),
    ),
    Index("ix_executions_trigger_created", "trigger_id", "created_at"),
    Index(  # retention: a replayed row goes only after its replay
        "ix_executions_replay_of",
        "replay_of",
        sqlite_where=text("replay_of IS NOT NULL"),
        postgresql_where=text("replay_of IS NOT NULL"),
    ),
    # Ordered claims: a key's rows in a status before a given id, one index range. Partial: unordered rows (NULL
    # key, the common case) cost ingest nothing, and a succeeded row, which never holds its key, leaves it when it
    # succeeds, so it holds the rows that can hold a key and not the trigger's history. ``ordering_key = <value>``
    # implies the first term on both databases; every search states the second in these words
    # (``parking.same_key``), as SQLite uses a partial index only for a query that repeats its terms.
    Index(
        "ix_executions_ordering",
        "trigger_id",
        "ordering_key",
        "status",
        "key_waiting",
        "id",
        sqlite_where=text(f"ordering_key IS NOT NULL AND {ORDERING_LIVE}"),
        postgresql_where=text(f"ordering_key IS NOT NULL AND {ORDERING_LIVE}"),
    ),
    # A claim for one restricted destination (limited, ramping, half-open): its due rows in run_at order.
    Index("ix_executions_destination", "destination", "status", "key_waiting", "run_at"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("execution_id", Id, ForeignKey("executions.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("started_at", _utc(), nullable=False),
    Column("finished_at", _utc(), nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("error_category", String(16)),
    Column("error_code", String(64)),
    Column("message", Text),
    Column("detail", Json, nullable=False),
    Column("excerpt", Text),
    Column("fingerprint", String(16)),
    # What the attempt sent (redacted, capped): method, URL, headers, body; argv, env names; envelope, subject.
    Column("request", Json),
    # False: a transient failure that completed with its destination's breaker open, held, not charged.
    Column("charged", Boolean, nullable=False, server_default=text("true")),
    Index("ix_attempts_execution", "execution_id", "number"),
    Index(  # a group's failures over time; a successful attempt (no fingerprint) has no entry
        "ix_attempts_fingerprint_finished",
        "fingerprint",
        "finished_at",
        sqlite_where=text("fingerprint IS NOT NULL"),
        postgresql_where=text("fingerprint IS NOT NULL"),
    ),
    Index("ix_attempts_finished", "finished_at"),
)

# Per trigger and UTC day: things counted at ingest that leave no row of their own (duplicates, conflicts).
daily_counters = Table(
    "daily_counters",
    metadata,
    Column("trigger_id", Id, ForeignKey("triggers.id"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

TOKEN_ROLES = ("viewer", "operator", "admin")

tokens = Table(
    "tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    # The first characters of the secret, to find the row; the full secret is only ever stored as its SHA-256.
    Column("lookup", String(16), nullable=False, unique=True),
    Column("digest", String(64), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("expires_at", _utc()),
    Column("last_used_at", _utc()),
    Column("revoked_at", _utc()),
)

ERROR_GROUP_STATUSES = ("open", "resolved", "ignored", "regressed")

error_groups = Table(
    "error_groups",
    metadata,
    Column("fingerprint", String(16), primary_key=True),
    Column("trigger_id", Id, ForeignKey("triggers.id"), nullable=False),
    Column("action_kind", String(32), nullable=False),
    Column("code", String(64), nullable=False),
    Column("category", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("first_seen", _utc(), nullable=False),
    Column("last_seen", _utc(), nullable=False),
    Column("sample_execution_id", Id),
    Column("status_changed_at", _utc()),
    # An operator's attention (failures.error_groups): an acknowledgement, and a snooze until a time or until
    # ``total`` reaches a count. Both silence the group's repeated alerts; a regression clears them.
    Column("acknowledged_at", _utc()),
    Column("acknowledged_by", String(64)),
    Column("acknowledge_note", Text),
    Column("snoozed_until", _utc()),
    Column("snooze_until_total", BigInteger),
    Index("ix_error_groups_last_seen", "last_seen"),
)

bulk_replays = Table(
    "bulk_replays",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("trigger_id", Id, ForeignKey("triggers.id"), nullable=False),
    Column("filter", Json, nullable=False),
    Column("rate", Float, nullable=False),
    Column("status", String(16), nullable=False),  # running | done | cancelled | failed
    Column("matched", Integer, nullable=False, server_default=text("0")),
    Column("replayed", Integer, nullable=False, server_default=text("0")),
    Column("skipped", Integer, nullable=False, server_default=text("0")),
    Column("created_by", String(64), nullable=False),
    Column("created_at", _utc(), nullable=False),
    Column("finished_at", _utc()),
    Column("error", Text),
    # One running bulk replay per trigger, enforced by the database across processes and nodes.
    Index(
        "uq_bulk_replays_running",
        "trigger_id",
        unique=True,
        sqlite_where=text("status = 'running'"),
        postgresql_where=text("status = 'running'"),
    ),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", _utc(), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(255)),
    Column("detail", Json, nullable=False),
    Column("result", String(64), nullable=False),
    Index("ix_audit_log_at", "at"),
)

NODE_ROLES = ("all", "api", "worker")

# One row per running redrive process (API, worker or both), written by its heartbeat. Lease tokens of a worker
# start with its node id, so the leader can sweep a dead node's leases without waiting for them to expire.
nodes = Table(
    "nodes",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(32), nullable=False),
    Column("started_at", _utc(), nullable=False),
    Column("last_beat_at", _utc(), nullable=False),
    Column("in_flight", Integer, nullable=False, server_default=text("0")),
    Column("dead_at", _utc()),
    # As of the last beat: whether the node held the maintenance lock, and its resident memory.
    Column("leader", Boolean, nullable=False, server_default=text("false")),
    Column("rss_bytes", BigInteger),
    Index("ix_nodes_last_beat", "last_beat_at"),
)

# One row per minute, written by the maintenance leader: what the System page charts over the last hours. Kept
# HISTORY_RETENTION (7 days, purged by retention); the minute is the key, so a second leader's sample is a no-op.
metrics_history = Table(
    "metrics_history",
    metadata,
    Column("at", _utc(), primary_key=True),
    Column("queue_depth", Integer, nullable=False),
    Column("oldest_pending_age_seconds", Float, nullable=False),
    Column("dlq_size", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),  # attempts that finished in the minute before ``at``
    Column("failed_attempts", Integer, nullable=False),  # of which did not succeed
)

# Alerts (redrive.alerts): one state row per rule, one row per transition (its ``key`` is the idempotency key every
# channel sees, unique, so two leaders overlapping during a hand-over record a transition once), and one
# notification per transition and channel, delivered and retried by the leader independently of evaluation.
alert_states = Table(
    "alert_states",
    metadata,
    Column("rule", String(64), primary_key=True),
    Column("state", String(16), nullable=False),  # ok | firing
    Column("since", _utc(), nullable=False),
    Column("seq", Integer, nullable=False),  # transitions so far: the compare-and-set guard and part of each key
    Column("clearing_since", _utc()),  # firing, and the condition cleared at this time (quiet period)
    Column("notified_at", _utc()),  # last firing or repeat notification, for ``repeat:``
    Column("evaluated_at", _utc()),
    Column("summary", Text),  # the last reading, in one line
)

alert_transitions = Table(
    "alert_transitions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(160), nullable=False, unique=True),
    Column("rule", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # firing | resolved | repeat | test
    Column("at", _utc(), nullable=False),
    Column("title", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("detail", Json, nullable=False),
    Index("ix_alert_transitions_at", "at"),
)

alert_notifications = Table(
    "alert_notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("transition_id", Id, ForeignKey("alert_transitions.id"), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_at", _utc(), nullable=False),
    Column("delivered_at", _utc()),
    Column("last_error", Text),
    Index("ix_alert_notifications_due", "status", "next_at"),
    Index("ix_alert_notifications_transition", "transition_id", "channel", unique=True),
)

BREAKER_STATES = ("closed", "open", "half_open")

# One row per destination that has a breaker or limits: its breaker state and what its claims consume. Claims read
# the ``restricted`` rows (held, probing, limited, ramping or paced) and lock them on PostgreSQL, so the limits and
# the breaker's decisions hold across processes and nodes (``redrive.destinations.store``).
destinations = Table(
    "destinations",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("forced", String(16)),  # open | closed: an operator's override, until reset
    Column("restricted", Boolean, nullable=False, server_default=text("false")),
    Column("changed_at", _utc(), nullable=False),  # the last transition
    Column("reopen_at", _utc()),  # open: when it goes half-open
    Column("cooldown", Float, nullable=False, server_default=text("0")),  # the current (growing) cool-down, s
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    # A sliding window as two fixed ones (the current and the previous, weighted by overlap).
    Column("window_start", _utc(), nullable=False),
    Column("window_total", Integer, nullable=False, server_default=text("0")),
    Column("window_failed", Integer, nullable=False, server_default=text("0")),
    Column("previous_total", Integer, nullable=False, server_default=text("0")),
    Column("previous_failed", Integer, nullable=False, server_default=text("0")),
    Column("latency_ms", Float),  # moving average of attempt durations
    # Limits in force (from the trigger file, refreshed by the workers) and the token bucket of the rate.
    Column("concurrency", Integer),
    Column("rate", Float),  # per second
    Column("tokens", Float, nullable=False, server_default=text("0")),
    Column("tokens_at", _utc()),
    Column("ramp_start", _utc()),  # closed after an outage: the ramped drain started then
    Column("paced_until", _utc()),  # a 429/503 Retry-After: nothing goes there before this
    # A destination no trigger names up front (templated): the trigger whose policy its claims apply.
    Column("trigger", String(64)),
    # Its due rows up to this run_at are laned (executions.dest_waiting); NULL: none is.
    Column("laned_to", _utc()),
    Column("updated_at", _utc(), nullable=False),
    # Every claim reads the restricted rows (or leaves them out of its lease): a few, among a row per destination
    # ever seen (one per customer's endpoint, when a trigger's URL is templated). The predicate is the claims' own
    # rendering of ``restricted IS true``, so both planners match it.
    Index(
        "ix_destinations_restricted",
        "name",
        sqlite_where=text("restricted IS 1"),
        postgresql_where=text("restricted IS true"),
    ),
)

# Every breaker transition, for the Destinations page's history and the audit of automatic decisions.
breaker_transitions = Table(
    "breaker_transitions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("destination", String(255), nullable=False),
    Column("from_state", String(16), nullable=False),
    Column("to_state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(64)),  # an operator's token name; NULL for the breaker's own decisions
    Column("at", _utc(), nullable=False),
    Index("ix_breaker_transitions_destination_at", "destination", "at"),
    Index("ix_breaker_transitions_at", "at"),
)

# Counters the stats read instead of scanning history (observe/rollups.py says what each metric counts). Every change
# a figure counts adds to these in the transaction that makes it. ``grain`` is the bucket width in seconds (0: one
# all-time bucket), ``bucket`` its start in seconds since the epoch; absent keys are '' so the key is never NULL;
# ``shard`` spreads one hot bucket over several rows so concurrent writers do not queue on one row lock.
stat_rollups = Table(
    "stat_rollups",
    metadata,
    Column("metric", String(16), primary_key=True),
    Column("grain", Integer, primary_key=True, autoincrement=False),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("trigger_id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(32), primary_key=True),
    Column("status", String(20), primary_key=True),
    Column("fingerprint", String(16), primary_key=True),
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
)

# Rows that existed before the rollups did, counted in batches in the background (observe/backfill.py): rows with
# ids above ``watermark`` are counted live; of the others, those below ``next_id`` are counted already.
rollup_backfill = Table(
    "rollup_backfill",
    metadata,
    Column("source", String(16), primary_key=True),  # executions (with their attempts) | events
    Column("watermark", BigInteger, nullable=False),
    Column("next_id", BigInteger, nullable=False),
)
