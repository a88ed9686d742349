"""Run the service under uvicorn: migrate, log, serve, stop gracefully on SIGTERM."""

from __future__ import annotations

import uvicorn
from rich.console import Console

from redrive.api.app import create_app
from redrive.config import RedriveConfig, Settings
from redrive.db.migrate import upgrade
from redrive.logs import configure_logging
from redrive.redaction import Redactor


def run_server(settings: Settings, config: RedriveConfig) -> None:
    """Migrate, then serve the API (and a worker unless ``worker_concurrency`` is 0) until stopped."""
    configure_logging(settings.log_level, Redactor(config.secrets))
    upgrade(settings.database_url)
    app = create_app(settings, config)
    Console(stderr=True).print(
        f"redrive is up at [bold]http://{settings.host}:{settings.port}[/] "
        f"({len(config.triggers)} trigger(s), database {settings.database_url.split('://')[0]})",
        highlight=False,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http="httptools",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(settings.shutdown_grace) + 5,
        )
    )
    server.run()
