"""``create_app``: build the service from settings and a validated trigger file; the lifespan opens and closes it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from redrive import __version__
from redrive.api import errorgroups, events, executions, hooks, me, replays, stats, triggers
from redrive.api.errors import install_error_handlers
from redrive.api.responses import Json
from redrive.api.security import install_security
from redrive.api.state import ServiceState
from redrive.config import RedriveConfig, Settings
from redrive.dashboard.mount import mount_dashboard
from redrive.db.database import Database
from redrive.db.migrate import assert_at_head
from redrive.redaction import Redactor
from redrive.triggers import build_trigger_set, sync_triggers
from redrive.watermarks import WatermarkWatch
from redrive.worker import Clock, Worker, utcnow

log = structlog.get_logger("redrive.app")
API_RESPONSES = {
    **triggers.AUTH_RESPONSES,
    413: {"description": "payload_too_large: the request body exceeds the API's limit (25 MiB and a little)."},
}


def create_app(settings: Settings, config: RedriveConfig, *, clock: Clock = utcnow) -> FastAPI:
    """The FastAPI app for ``settings`` and ``config``; runs a worker too unless ``worker_concurrency`` is 0."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        try:
            db.read_sync(assert_at_head)
            ids = db.write_sync(lambda connection: sync_triggers(connection, config, clock()))
            db.start()
            redactor = Redactor(config.secrets)
            state = ServiceState(settings, config, db, build_trigger_set(config, ids), redactor, clock=clock)
            if settings.worker_concurrency > 0:
                state.worker = Worker(db, state.triggers, settings, redactor=redactor, wakeup=state.wakeup, clock=clock)
                await state.worker.start()
            app.state.service = state
            watermarks = WatermarkWatch(db, state.triggers, clock=clock)
            watermarks.start()
            log.info(
                "service_started",
                triggers=len(config.triggers),
                worker=state.worker is not None,
                database="sqlite" if db.is_sqlite else "postgresql",
            )
            yield
            await watermarks.stop()
            await state.bulk_runs.aclose()  # runners mark their jobs stopped while the writer still runs
            if state.worker is not None:
                await state.worker.stop()
            log.info("service_stopped")
        finally:
            db.close()

    app = FastAPI(
        title="redrive",
        version=__version__,
        summary="Accept events durably, run actions, retry, dead-letter, replay.",
        lifespan=lifespan,
        default_response_class=Json,
    )
    install_error_handlers(app)
    install_security(app, settings.cors_origins)
    app.include_router(hooks.router)
    # Every /api route authenticates: each documents the answers authentication can give (a route's own win).
    for router in (events, stats, executions, replays, triggers, errorgroups, me):  # stats first: /executions/stats
        app.include_router(router.router, responses=API_RESPONSES)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    mount_dashboard(app, "/ui")
    return app
