"""What the running service holds, built by the app's lifespan and reached by routes through dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pluggy

from redrive.alerts.service import AlertService
from redrive.api.limiter import FailureLimiter
from redrive.clock import Clock, utcnow
from redrive.db.database import Database
from redrive.failures.bulk_runner import BulkRuns
from redrive.lifecycle import Lifecycle
from redrive.node.process import Node
from redrive.observe.metrics import Metrics
from redrive.observe.redaction import Redactor
from redrive.observe.stream import StreamHub
from redrive.plugins import Plugins
from redrive.queue.notify import Wakeup
from redrive.queue.worker import Worker
from redrive.registry import Registry
from redrive.settings import Settings
from redrive.triggers.config import RedriveConfig
from redrive.triggers.runtime import TriggerSet


@dataclass
class ServiceState:
    """The service's parts: settings, trigger set, database, redactor, and the worker when this process runs one."""

    settings: Settings
    config: RedriveConfig
    db: Database
    triggers: TriggerSet
    redactor: Redactor
    plugin_set: Plugins
    wakeup: Wakeup = field(default_factory=Wakeup)
    worker: Worker | None = None
    node: Node | None = None
    metrics: Metrics = field(default_factory=Metrics)
    clock: Clock = utcnow
    auth_failures: FailureLimiter = field(default_factory=FailureLimiter)
    token_touches: dict[int, datetime] = field(default_factory=dict)
    bulk_runs: BulkRuns = field(default_factory=BulkRuns)  # bulk replay runners of this process
    lifecycle: Lifecycle = field(default_factory=Lifecycle)  # plugins' lifecycle hooks; none by default
    alerts: AlertService | None = None  # the alert engine (evaluates and delivers only while this node leads)

    @property
    def stream(self) -> StreamHub | None:
        """The live stream of this node, when it runs one."""
        return None if self.node is None else self.node.stream

    @property
    def plugins(self) -> pluggy.PluginManager:
        """The plugin manager (``plugins.hook.redrive_...``)."""
        return self.plugin_set.manager

    @property
    def registry(self) -> Registry:
        """Action kinds, signature schemes, hints and classification, as the plugins registered them."""
        return self.plugin_set.registry

    def now(self) -> datetime:
        """The service clock."""
        return self.clock()
