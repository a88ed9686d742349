"""``create_app``: build the service from settings and a validated trigger file; the lifespan opens and closes it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import structlog
from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from redrive import __version__
from redrive.alerts.service import open_alerts
from redrive.api import (
    alerts,
    destinations,
    errorgroups,
    events,
    executions,
    health,
    hooks,
    live,
    me,
    observe,
    replays,
    stats,
    triggers,
)
from redrive.api import plugins as plugins_api
from redrive.api.auth import AUTH_RESPONSES
from redrive.api.errors import install_error_handlers
from redrive.api.hooks import HooksFront, is_hook
from redrive.api.parameters import ParameterCheck
from redrive.api.responses import Json
from redrive.api.security import install_security
from redrive.api.state import ServiceState
from redrive.clock import Clock, utcnow
from redrive.dashboard.mount import mount_dashboard
from redrive.db.database import Database
from redrive.db.migrate import assert_at_head
from redrive.destinations.store import declare
from redrive.lifecycle import Lifecycle
from redrive.node.process import Node, Role, Seat
from redrive.observe.redaction import Redactor
from redrive.observe.telemetry import IngestTracing, configure_tracing
from redrive.observe.watermarks import WatermarkWatch
from redrive.plugins import Plugins, load_plugins
from redrive.settings import Settings
from redrive.triggers.config import RedriveConfig
from redrive.triggers.runtime import build_trigger_set, sync_triggers

log = structlog.get_logger("redrive.app")
API_RESPONSES = {
    **AUTH_RESPONSES,
    413: {"description": "payload_too_large: the request body exceeds the API's limit (25 MiB and a little)."},
}


class Service(FastAPI):
    """FastAPI, with ``POST /hooks/{trigger}`` handed to ``front`` (when set) before its middleware stack."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a webhook from the front, anything else through FastAPI."""
        if self.front is not None and is_hook(scope):
            scope["app"] = self  # what Starlette sets: the front finds the service state there
            await self.front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    config: RedriveConfig,
    *,
    clock: Clock = utcnow,
    role: Role = "all",
    plugins: Plugins | Sequence[object] = (),
    seat: Seat | None = None,
) -> FastAPI:
    """The FastAPI app for ``settings`` and ``config``.

    ``role`` ``all`` serves the API and runs a worker (unless ``worker_concurrency`` is 0); ``api`` runs no worker;
    ``worker`` runs the worker and serves only health, readiness and metrics. ``plugins`` is the loaded plugin set
    (the CLI loads it to validate the trigger file first), or plugin modules and objects to register after the
    built-ins and the installed ones (``REDRIVE_PLUGINS``); a plugin that cannot load raises PluginError.
    ``seat`` is this process's place in a ``redrive up --processes N`` group (its node id, its predecessor's, and on
    SQLite the group's sockets for wake-ups and the stream).
    """
    loaded = plugins if isinstance(plugins, Plugins) else load_plugins(settings.plugins, plugins)
    registry = loaded.registry

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url, writer_connections=settings.writer_connections)
        try:
            db.read_sync(assert_at_head)
            ids = db.write_sync(lambda connection: sync_triggers(connection, config, clock()))
            triggers = build_trigger_set(config, ids, registry)
            db.write_sync(declare(triggers.policies.names, clock()))
            db.start()
            redactor = Redactor(config.secrets)
            state = ServiceState(
                settings,
                config,
                db,
                triggers,
                redactor,
                plugin_set=loaded,
                clock=clock,
            )
            db.writer.observer = state.metrics.writer_batch
            state.lifecycle = Lifecycle(
                loaded.manager,
                timeout=settings.plugin_hook_timeout,
                backlog=settings.plugin_hook_backlog,
                metrics=state.metrics,
            )
            state.node = Node(
                db,
                settings,
                state.triggers,
                role=role,
                redactor=redactor,
                wakeup=state.wakeup,
                clock=clock,
                metrics=state.metrics,
                tracing=tracing,
                lifecycle=state.lifecycle,
                seat=seat,
            )
            state.worker = state.node.worker
            await state.node.start()
            node = state.node
            state.alerts = open_alerts(
                state,
                config,
                registry,
                redactor=redactor,
                public_url=settings.link_base,
                interval=settings.alert_interval,
                is_leader=lambda: node.leadership.is_leader,
                publish=node.stream.publish,
            )
            state.alerts.engine.start()
            app.state.service = state
            watermarks = WatermarkWatch(db, state.triggers, clock=clock)
            watermarks.start()
            log.info(
                "service_started",
                role=role,
                triggers=len(config.triggers),
                worker=state.worker is not None,
                database="sqlite" if db.is_sqlite else "postgresql",
            )
            yield
            await watermarks.stop()
            await state.bulk_runs.aclose()  # runners mark their jobs stopped while the writer still runs
            await state.alerts.aclose()
            await state.node.stop()
            await state.lifecycle.aclose(settings.shutdown_grace)  # after the worker's last completions
            if tracing is not None:
                tracing.shutdown()  # exports the spans still buffered
            log.info("service_stopped")
        finally:
            db.close()

    app = Service(
        title="redrive",
        version=__version__,
        summary="Accept events durably, run actions, retry, dead-letter, replay.",
        lifespan=lifespan,
        default_response_class=Json,
        dependencies=[Depends(ParameterCheck())],  # every route refuses query parameters and a body it does not declare
    )
    install_error_handlers(app)
    install_security(app, settings.cors_origins)
    app.include_router(health.router)
    app.include_router(observe.router)
    app.add_middleware(observe.IngestMetrics)
    tracing = configure_tracing(settings.otel_endpoint)
    if tracing is not None:
        app.add_middleware(IngestTracing, tracing=tracing)
    if role != "worker":  # ahead of every middleware (it applies security and metrics itself); inside tracing
        front = HooksFront()
        app.front = front if tracing is None else IngestTracing(front, tracing=tracing)
    if role != "worker":
        app.include_router(hooks.router)
        # Every /api route authenticates: each documents the answers authentication can give (a route's own win).
        routers = (events, stats, executions, replays, triggers, errorgroups, alerts, destinations, live, me)
        for router in (*routers, plugins_api):  # stats 1st
            app.include_router(router.router, responses=API_RESPONSES)
        plugins_api.mount_plugin_routes(app, loaded, responses=API_RESPONSES)
        mount_dashboard(app, "/ui")
    return app
