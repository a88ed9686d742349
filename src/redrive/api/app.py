"""``create_app``: build the service from settings and a validated trigger file; the lifespan opens and closes it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from redrive import __version__
from redrive.api import errorgroups, events, executions, hooks, replays, stats, triggers
from redrive.api.errors import install_error_handlers
from redrive.api.hooks import HooksFront
from redrive.api.responses import Json
from redrive.api.state import ServiceState
from redrive.config import RedriveConfig, Settings
from redrive.db.database import Database
from redrive.db.migrate import assert_at_head
from redrive.redaction import Redactor
from redrive.triggers import build_trigger_set, sync_triggers
from redrive.watermarks import WatermarkWatch
from redrive.worker import Clock, Worker, utcnow

log = structlog.get_logger("redrive.app")


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
    app.add_middleware(HooksFront)
    app.include_router(hooks.router)
    app.include_router(events.router)
    app.include_router(stats.router)  # before executions: /executions/stats is not an execution id
    app.include_router(executions.router)
    app.include_router(replays.router)
    app.include_router(triggers.router)
    app.include_router(errorgroups.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    return app
