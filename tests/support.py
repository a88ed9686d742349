"""Test helpers: a real redrive service on loopback (uvicorn in a thread), trigger files, waiting."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import uvicorn
from aiohttp import web
from sqlalchemy import Engine, create_engine, event, text

from redrive.api.app import create_app
from redrive.api.state import ServiceState
from redrive.db.database import Database
from redrive.db.engine import make_engine
from redrive.observe import backfill
from redrive.plugins import load_plugins
from redrive.settings import Settings
from redrive.tokens import ROLES, create_token
from redrive.triggers.config import parse_config

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "",
    context: Callable[[], str] = str,
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds, saying ``what``
    it waited for and showing ``context()`` (a process's log, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}\n{context()}".rstrip())
        time.sleep(interval)


@dataclass
class Service:
    """A running redrive service: its base URL, its in-process state, and a token per role."""

    url: str
    server: uvicorn.Server
    app: Any
    tokens: dict[str, str]

    def auth(self, role: str = "admin") -> dict[str, str]:
        """The Authorization header for a token of ``role``."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    @property
    def state(self) -> ServiceState:
        state: ServiceState = self.app.state.service
        return state


@contextmanager
def run_service(
    db_url: str,
    config_yaml: str,
    *,
    tokens: dict[str, str] | None = None,
    plugins: Sequence[object] = (),
    **settings: Any,
) -> Iterator[Service]:
    """Serve redrive on a free loopback port in a background thread until the block ends.

    ``tokens``: reuse another service's tokens (a second node on the same database) instead of creating them.
    ``plugins``: plugin modules or objects registered after the built-ins (the trigger file may use their kinds).
    """
    options: dict[str, Any] = {"database_url": db_url, "poll_interval": 0.2, "shutdown_grace": 2.0}
    options.update(settings)
    service_settings = Settings(**options)
    loaded = load_plugins(service_settings.plugins, plugins)
    config = parse_config(config_yaml, registry=loaded.registry)
    app = create_app(service_settings, config, plugins=loaded)
    with serve_app(app, tokens if tokens is not None else make_tokens(db_url)) as service:
        yield service


@contextmanager
def serve_app(app: Any, tokens: dict[str, str]) -> Iterator[Service]:
    """Serve a built app on a free loopback port in a background thread until the block ends."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="redrive-test-server", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), timeout=20, what="the server to start")
    if not server.started:
        raise RuntimeError("the service failed to start; see the log above")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Service(f"http://127.0.0.1:{port}", server, app, tokens)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def make_tokens(db_url: str) -> dict[str, str]:
    """One token per role, named after it, in the test database."""
    db = Database(db_url)
    try:
        return {role: db.write_sync(create_token(role, role, datetime.now(UTC), actor="test")) for role in ROLES}
    finally:
        db.close()


def query(db_url: str, sql: str, **params: Any) -> list[Any]:
    """Run one read-only SQL statement against the test database."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql), params))
    finally:
        engine.dispose()


def scalar(db_url: str, sql: str, **params: Any) -> Any:
    """The single value of a one-row, one-column query."""
    rows = query(db_url, sql, **params)
    return rows[0][0]


def run(coro: Any) -> Any:
    """Run a coroutine to completion in a fresh event loop."""
    return asyncio.run(coro)


def fill_path(path: str, values: dict[str, str]) -> str:
    """An OpenAPI path template (``/executions/{execution_id}``) with its parameters replaced by ``values``."""
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


class TimedTarget:
    """An HTTP endpoint (aiohttp, in its own thread) that answers POST ``/{path}`` with 200 after ``delays[path]``
    seconds, recording per path each arrival (monotonic time) and the most requests it held at once."""

    def __init__(self, delays: dict[str, float]) -> None:
        self.delays = delays
        self.arrivals: dict[str, list[float]] = {path: [] for path in delays}
        self.peak: dict[str, int] = dict.fromkeys(delays, 0)
        self._held: dict[str, int] = dict.fromkeys(delays, 0)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="timed-target", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def __enter__(self) -> TimedTarget:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the timed target did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.shutdown()
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _hit(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        self.arrivals[path].append(time.monotonic())
        self._held[path] += 1
        self.peak[path] = max(self.peak[path], self._held[path])
        try:
            await asyncio.sleep(self.delays[path])
        finally:
            self._held[path] -= 1
        return web.Response(text="ok")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{path}", self._hit)
        # A request the client gave up on (a timeout) ends its handler: ``peak`` counts what the client holds.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1, handler_cancellation=True)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = self._runner.addresses[0][1]
        self._started.set()
        self._loop.run_forever()
        self._loop.close()


def recount(db_url: str) -> None:
    """Count the stats rollups again from the raw tables, after a test wrote rows straight into them."""
    engine = make_engine(db_url, writer=True)
    try:
        backfill.recount(engine)
    finally:
        engine.dispose()


@contextmanager
def statements_seen(engine: Engine, kind: Callable[[str], str | None] = str) -> Iterator[list[str]]:
    """Every statement the engine's connections run inside the block, in order, each on one line (``kind``: what to
    keep of each, None to skip it).

    SQLAlchemy's ``before_cursor_execute`` sees what SQLAlchemy runs. On SQLite the writer's hot statements go to the
    driver's own cursor (``redrive.db.many``), past SQLAlchemy's events, so there the driver's trace is read instead:
    every statement SQLite runs, with its values written in, each row of an ``executemany`` as one (and the
    transaction's ``COMMIT``). A connection is traced from its first check-out inside the block."""
    seen: list[str] = []

    def record(statement: str) -> None:
        kept = kind(" ".join(statement.split()))
        if kept is not None:
            seen.append(kept)

    if engine.dialect.name != "sqlite":

        def executed(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            record(statement)

        event.listen(engine, "before_cursor_execute", executed)
        try:
            yield seen
        finally:
            event.remove(engine, "before_cursor_execute", executed)
        return
    traced: list[Any] = []

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.set_trace_callback(record)
        traced.append(dbapi_connection)

    event.listen(engine, "checkout", checkout)
    try:
        yield seen
    finally:
        event.remove(engine, "checkout", checkout)
        for dbapi_connection in traced:
            dbapi_connection.set_trace_callback(None)
