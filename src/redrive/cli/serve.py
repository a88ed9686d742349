"""Run the service under uvicorn: migrate, log, serve, stop gracefully on SIGTERM; in one process, or in the
children of a supervisor (``redrive.cli.processes``) sharing one listening socket."""

from __future__ import annotations

import gc
import os
import socket
import tempfile
from pathlib import Path

import structlog
import uvicorn
from fastapi import FastAPI
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import make_url

from redrive.api.app import create_app
from redrive.cli.common import fail
from redrive.cli.processes import Supervisor, bind, stop_on_signal
from redrive.clock import utcnow
from redrive.db.database import Database
from redrive.db.migrate import upgrade
from redrive.errors import TokenExists
from redrive.node.process import Role, Seat
from redrive.observe.logs import configure_logging
from redrive.observe.metrics import share_between_processes
from redrive.observe.redaction import Redactor
from redrive.plugins import Plugins
from redrive.settings import Settings
from redrive.tokens import create_token, has_tokens
from redrive.triggers.config import RedriveConfig

FIRST_START = "redrive (first start)"  # the audit log's actor for the admin token an empty database gets

DESCRIPTION = {
    "all": "the API and a worker",
    "api": "the API (no worker)",
    "worker": "a worker (health, readiness and metrics only)",
}


def run_server(
    settings: Settings, config: RedriveConfig, role: Role = "all", *, plugins: Plugins, processes: int = 1
) -> int:
    """Migrate, then run ``role`` (see ``redrive.node.process``) under uvicorn until stopped, with ``plugins``
    (the set ``config`` was validated against), in ``processes`` processes (see ``redrive.cli.processes``); returns
    the exit status."""
    # A supervisor writes its few lines itself: a logging thread must not exist when it forks.
    configure_logging(settings.log_level, Redactor(config.secrets), background=processes == 1)
    upgrade(settings.database_url, wait=settings.database_wait)
    console = Console(stderr=True, soft_wrap=True, emoji=False)
    first_token = bootstrap_admin_token(settings) if role != "worker" else None
    if first_token is not None:
        secret, path = first_token
        structlog.get_logger("redrive.tokens").info("token_created", name="admin", role="admin", by=FIRST_START)
        console.print(
            f"[bold]First start: an admin token was created.[/] It is shown once here and saved to {escape(str(path))} "
            "(readable by you only):",
            highlight=False,
        )
        print(secret, flush=True)  # the one time the secret is shown, alone on its line
    if settings.is_sqlite and role != "all":
        console.print(
            f"[yellow]warning:[/] `redrive {'serve' if role == 'api' else 'worker'}` on SQLite: one SQLite file is "
            "written by one process group; run `redrive up`, or use PostgreSQL to split API and workers.",
            highlight=False,
        )
    if processes == 1:
        app = create_app(settings, config, role=role, plugins=plugins)
        _announce(console, settings, config, role, "")
        _serve(app, settings)
        return 0
    try:
        listener = bind(settings.host, settings.port)
    except OSError as exc:
        fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", code=1)
    _announce(console, settings, config, role, f" in {processes} processes")

    def child(seat: Seat) -> int:
        writer = configure_logging(settings.log_level, Redactor(config.secrets), background=True)
        try:
            _serve(create_app(settings, config, role=role, plugins=plugins, seat=seat), settings, listener)
        finally:
            if writer is not None:
                writer.close()
        return 0

    _freeze()  # before forking: the children share these pages instead of each touching them
    supervisor = Supervisor(processes, child, sqlite=settings.is_sqlite, grace=settings.shutdown_grace)
    try:
        # One /metrics for the group: whichever child answers a scrape adds up every child's counts.
        with tempfile.TemporaryDirectory(prefix="redrive-metrics-") as shared:
            share_between_processes(Path(shared))
            return supervisor.run()
    finally:
        listener.close()


def _announce(console: Console, settings: Settings, config: RedriveConfig, role: Role, how: str) -> None:
    console.print(
        f"redrive is up at [bold]http://{settings.host}:{settings.port}[/] running {DESCRIPTION[role]}{how} "
        f"({len(config.triggers)} trigger(s), database {settings.database_url.split('://')[0]})",
        highlight=False,
    )


YOUNG_OBJECTS = 10_000
"""How many more container objects than were freed the serving process allocates before the cyclic collector looks
at the young ones (Python's default: 700)."""


def _freeze() -> None:
    """Move everything built so far out of the collector's sight (it lives as long as the process), and let the young
    generation grow to ``YOUNG_OBJECTS`` before it is collected.

    Frozen, a full collection no longer walks every module, class and function of the stack (measured here: pauses of
    90-300 ms before, the whole process stalled, the largest part of ingest's p99; a few ms after). At Python's 700,
    the objects of the requests, jobs and attempts in flight were enough to start a young collection every dozen
    events, each of which also walked them: 1,700-1,770 collections and 0.47-0.53 s of CPU per 20,000 events end to
    end (``gc.callbacks`` and ``time.thread_time``), 4-5% of the process's. At 10,000 the same run made 3. Garbage
    in cycles still counts until it is collected, so it still starts collections.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS, *gc.get_threshold()[1:])


def _serve(app: FastAPI, settings: Settings, listener: socket.socket | None = None) -> None:
    """Run ``app`` under uvicorn until a signal stops it, on ``listener`` when given (a supervisor's child)."""
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
    stop_on_signal(server)
    _freeze()
    server.run(sockets=None if listener is None else [listener])


def token_file(settings: Settings) -> Path:
    """Where the first admin token is saved: next to an SQLite database, else in the working directory."""
    url = make_url(settings.database_url)
    if settings.is_sqlite and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / "redrive-admin-token"
    return Path("redrive-admin-token").resolve()


def bootstrap_admin_token(settings: Settings) -> tuple[str, Path] | None:
    """On an empty token table, create an admin token and save it to a file only the owner can read."""
    db = Database(settings.database_url)
    try:
        if db.read_sync(has_tokens):
            return None
        secret = db.write_sync(create_token("admin", "admin", utcnow(), actor=FIRST_START))
    except TokenExists:
        return None  # another node starting at the same moment created it
    finally:
        db.close()
    path = token_file(settings)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to an existing file
    return secret, path
