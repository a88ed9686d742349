"""Prometheus metrics, per node: each node serves its own ``/metrics``.

Why per node: redrive's nodes are independent (often on different hosts), each with its own HTTP port, so Prometheus
scrapes every node and ``sum()`` adds them up. Counters and histograms count what the node did. Gauges read from the
database at scrape time (queue depth, oldest pending age, DLQ size, replays, lease expiries) describe the whole
cluster and are the same on every node: aggregate them with ``max()``, not ``sum()``.

The N processes of one ``redrive up --processes N`` share one port, so a scrape reaches whichever of them accepts
it: each would show only its own counts, and a counter that goes down between scrapes reads as a reset to
Prometheus. So the supervisor puts them in prometheus-client's multiprocess mode (``share_between_processes``,
before it forks): every process writes its counters and histograms to files in one directory, and whichever answers
a scrape adds them all up, those of children that died and were restarted included, as the library does under
gunicorn. The cluster gauges never go through those files: they are read fresh at each scrape
(``_ClusterGauges``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own setting: where the shared files go

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
INGEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
UNKNOWN = "(unknown)"


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """Cluster-wide queue figures read from the database's indexes."""

    pending: int
    due: int
    running: int
    oldest_due_age_seconds: float
    dlq: int
    replayed: int
    expired_leases: int


class Metrics:
    """The instruments of one process, in a registry of its own (nothing global, nothing at import time)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_received = Counter("redrive_events_received", "New events accepted (202).", ["trigger"], registry=r)
        self.events_duplicate = Counter(
            "redrive_events_duplicate",
            "Deliveries absorbed as duplicates of an accepted event (200).",
            ["trigger"],
            registry=r,
        )
        self.events_conflict = Counter(
            "redrive_events_conflict",
            "Deliveries refused: idempotency key reused with another body.",
            ["trigger"],
            registry=r,
        )
        self.events_rejected = Counter(
            "redrive_events_rejected",
            "Deliveries to /hooks answered with an error, by status (conflicts included).",
            ["trigger", "status"],
            registry=r,
        )
        self.ingest_duration = Histogram(
            "redrive_ingest_duration_seconds", "Time to answer an ingest request.", buckets=INGEST_BUCKETS, registry=r
        )
        # The writer is the serial part of a process (one transaction at a time per writer thread): the rate of its
        # busy seconds near its thread count says writes queue behind it, whatever the CPU's share.
        self.writer_transactions = Counter(
            "redrive_writer_transactions", "Transactions of the group-commit writer, committed or not.", registry=r
        )
        self.writer_jobs = Counter(
            "redrive_writer_jobs", "Writes (ingests, claims, completions...) in those transactions.", registry=r
        )
        self.writer_busy = Counter(
            "redrive_writer_busy_seconds",
            "Seconds the writer spent on its transactions, waits for the database (and on SQLite for its turn at "
            "the file) included.",
            registry=r,
        )
        self.writer_cpu = Counter(
            "redrive_writer_cpu_seconds", "CPU seconds the writer's threads spent on their transactions.", registry=r
        )
        self.executions = Counter(
            "redrive_executions",
            "Attempts' results by the status the execution moved to (pending means a retry was scheduled).",
            ["status", "kind"],
            registry=r,
        )
        self.attempts = Counter(
            "redrive_attempts", "Attempts by outcome category and error code.", ["kind", "category", "code"], registry=r
        )
        self.action_duration = Histogram(
            "redrive_action_duration_seconds",
            "Action run time by kind.",
            ["kind"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.auth_failed = Counter(
            "redrive_auth_failures",
            "Failed API authentications answered 401 (unknown, revoked or no token).",
            registry=r,
        )
        self.auth_throttled = Counter(
            "redrive_auth_throttled",
            "Failed API authentications answered 429: the address is over its failure limit.",
            registry=r,
        )
        self.plugin_hook_failures = Counter(
            "redrive_plugin_hook_failures",
            "Lifecycle hook calls that raised or timed out, by plugin, hook and reason (error or timeout).",
            ["plugin", "hook", "reason"],
            registry=r,
        )
        self.plugin_hook_dropped_reports = Counter(
            "redrive_plugin_hook_dropped",
            "Lifecycle reports dropped because plugin_hook_backlog reports were already in flight.",
            ["hook"],
            registry=r,
        )
        self.alert_transitions = Counter(
            "redrive_alert_transitions",
            "Alert transitions this node recorded as the leader, by rule and kind (firing, resolved, repeat, test).",
            ["rule", "kind"],
            registry=r,
        )
        self.alert_notifications = Counter(
            "redrive_alert_notifications",
            "Alert notification deliveries this node tried, by channel and outcome (delivered, retry, failed): a "
            "channel that keeps failing shows here.",
            ["channel", "outcome"],
            registry=r,
        )
        self.breaker_transitions = Counter(
            "redrive_breaker_transitions",
            "Breaker transitions by destination and the state entered (closed, open, half_open).",
            ["destination", "to_state"],
            registry=r,
        )
        self._cluster = _ClusterGauges()
        shared = os.environ.get(MULTIPROCESS_DIR)
        if shared:  # one of the processes of one `up`: a scrape adds up every process's files
            self._exposed = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._exposed, path=shared)  # type: ignore[no-untyped-call]
        else:
            self._exposed = r
        self._exposed.register(self._cluster)
        self._ingested: dict[tuple[str, str], Any] = {}
        self._attempted: dict[tuple[str, str, str, str], tuple[Any, Any, Any]] = {}

    def writer_batch(self, jobs: int, seconds: float, cpu_seconds: float) -> None:
        """Count one batch of the group-commit writer (``db.writer.BatchObserver``)."""
        self.writer_transactions.inc()
        self.writer_jobs.inc(jobs)
        self.writer_busy.inc(seconds)
        self.writer_cpu.inc(cpu_seconds)

    def ingested(self, trigger: str, outcome: str) -> None:
        """Count one stored delivery: ``created``, ``duplicate`` or ``conflict``."""
        child = self._ingested.get((trigger, outcome))
        if child is None:  # labels() takes a lock and builds a key: once per trigger and outcome, not per event
            counter = {"created": self.events_received, "duplicate": self.events_duplicate}.get(
                outcome, self.events_conflict
            )
            child = self._ingested[(trigger, outcome)] = counter.labels(trigger)
        child.inc()

    def attempt(self, *, kind: str, status: str, category: str, code: str | None, seconds: float) -> None:
        """Count one recorded attempt."""
        key = (kind, status, category, code or "")
        children = self._attempted.get(key)
        if children is None:  # labels() once per combination, not per attempt (see ``ingested``)
            children = self._attempted[key] = (
                self.executions.labels(status, kind),
                self.attempts.labels(kind, category, code or ""),
                self.action_duration.labels(kind),
            )
        executions, attempts, duration = children
        executions.inc()
        attempts.inc()
        duration.observe(seconds)

    def plugin_hook_failed(self, plugin: str, hook: str, reason: str) -> None:
        """Count one lifecycle hook call that raised (``error``) or ran out of time (``timeout``)."""
        self.plugin_hook_failures.labels(plugin, hook, reason).inc()

    def plugin_hook_dropped(self, hook: str) -> None:
        """Count one lifecycle report dropped because the backlog of reports in flight was full."""
        self.plugin_hook_dropped_reports.labels(hook).inc()

    def breaker_transition(self, destination: str, to_state: str) -> None:
        """Count one breaker transition of ``destination`` into ``to_state``."""
        self.breaker_transitions.labels(destination, to_state).inc()

    def render(self, snapshot: QueueSnapshot) -> bytes:
        """The exposition text: the node's counters (all its processes') and the cluster gauges of ``snapshot``."""
        self._cluster.snapshot = snapshot
        return generate_latest(self._exposed)


class _ClusterGauges(Collector):
    """The cluster-wide gauges, from the snapshot the scrape just read (never stored, never added across processes)."""

    GAUGES = (
        ("redrive_queue_pending", "Pending executions (due now or later).", "pending"),
        ("redrive_queue_due", "Pending executions due now (queue depth).", "due"),
        ("redrive_queue_running", "Executions leased by a worker.", "running"),
        (
            "redrive_queue_oldest_due_age_seconds",
            "How long the oldest due execution has waited.",
            "oldest_due_age_seconds",
        ),
        ("redrive_dlq_size", "Executions in the dead-letter queue (failed_retryable).", "dlq"),
        ("redrive_replayed_executions", "Executions replayed so far.", "replayed"),
        (
            "redrive_leases_expired",
            "Running executions whose lease expired, waiting for the sweeper.",
            "expired_leases",
        ),
    )

    def __init__(self) -> None:
        self.snapshot: QueueSnapshot | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, documentation, field_name in self.GAUGES:
            value = getattr(self.snapshot, field_name) if self.snapshot is not None else 0
            yield GaugeMetricFamily(name, documentation, value=value)


def share_between_processes(directory: Path) -> None:
    """Make the instruments this process creates from now on (and its forked children's) count in ``directory``.

    prometheus-client picks how values are kept when it is first imported, from ``PROMETHEUS_MULTIPROC_DIR``; the
    supervisor of ``up --processes N`` has imported it by then, so the choice is made again here, before any
    ``Metrics`` exists. ``directory`` must be empty: what is in it is counted.
    """
    os.environ[MULTIPROCESS_DIR] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
