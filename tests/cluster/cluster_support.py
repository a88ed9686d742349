"""Helpers for the multi-process tests: ``redrive serve|worker|up`` subprocesses on one database, an HTTP target that
counts each idempotency key it receives, and a TCP proxy between redrive and PostgreSQL that a test can cut.

Every wait is bounded and every process started is killed at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx2
from aiohttp import web

from support import query, wait_until

REDRIVE = [sys.executable, "-c", "from redrive.cli import main; main()"]
START_TIMEOUT = 60.0
PYCACHE = Path(tempfile.gettempdir()) / f"redrive-acceptance-pycache-{os.getuid()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def leased_by(db_url: str, node_id: str) -> list[int]:
    """The executions running under a lease of ``node_id`` (its lease tokens start with its id)."""
    rows = query(
        db_url,
        "SELECT id FROM executions WHERE status = 'running' AND lease_token LIKE :prefix",
        prefix=f"{node_id}%",
    )
    return [row.id for row in rows]


def http_trigger(name: str, url: str, **extra: Any) -> dict[str, Any]:
    """A trigger posting ``{"n": ...}`` to ``url`` with the event's idempotency key as a header."""
    return {
        "name": name,
        "action": {
            "kind": "http",
            "url": url,
            "json": {"n": "{{ payload.n }}"},
            "headers": {"X-Key": "{{ event.idempotency_key }}"},
            "timeout": "10s",
            "allow": ["127.0.0.1"],
        },
        **extra,
    }


def write_config(directory: Path, triggers: list[dict[str, Any]]) -> Path:
    path = directory / "redrive.yaml"
    path.write_text(json.dumps({"triggers": triggers}), encoding="utf-8")
    return path


@dataclass
class Process:
    """One redrive subprocess."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def logs(self) -> str:
        return f"--- {self.name} ({self.log.name}) ---\n{self.log.read_text(errors='replace')[-6000:]}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait for a graceful exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


@dataclass
class Cluster:
    """Starts redrive subprocesses (any role) in ``directory`` against ``db_url``; kills the rest at teardown."""

    directory: Path
    db_url: str
    config: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)

    def spawn(self, role: str, name: str, **env: str) -> Process:
        """Start ``redrive ROLE`` on a free port without waiting."""
        port = free_port()
        log = self.directory / f"{name}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
        environment.pop("PYTHONDONTWRITEBYTECODE", None)
        environment |= {
            "PYTHONUNBUFFERED": "1",
            "PYTHONPYCACHEPREFIX": str(PYCACHE),
            "REDRIVE_DATABASE_URL": self.db_url,
            "REDRIVE_LOG_LEVEL": "warning",
            **self.env,
            **env,
        }
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*REDRIVE, role, "--config", str(self.config), "--port", str(port)],
                cwd=self.directory,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        started = Process(name, process, f"http://127.0.0.1:{port}", log)
        self.processes.append(started)
        return started

    def ready(self, *processes: Process) -> None:
        """Wait until each answers ``/readyz`` (its node row is written and its worker started by then)."""
        for process in processes:
            wait_until(
                lambda p=process: self._answers(p),  # type: ignore[misc]
                timeout=START_TIMEOUT,
                what=f"{process.name} to be ready",
                context=process.logs,
            )

    def start(self, role: str, name: str, **env: str) -> Process:
        process = self.spawn(role, name, **env)
        self.ready(process)
        return process

    @staticmethod
    def _answers(process: Process) -> bool:
        if process.process.poll() is not None:
            raise AssertionError(f"{process.name} exited with {process.process.returncode}\n{process.logs()}")
        try:
            return httpx2.get(f"{process.url}/readyz", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    def logs(self) -> str:
        return "\n".join(p.logs() for p in self.processes)

    def close(self) -> None:
        for process in self.processes:
            process.kill()


class LoopbackApp:
    """An aiohttp app answering POST ``path`` with ``handler`` (and any ``extra`` paths with theirs), served on a free
    loopback port from its own thread (and event loop) for as long as the ``with`` block lasts."""

    def __init__(
        self,
        path: str,
        handler: Callable[[web.Request], Awaitable[web.Response]],
        extra: dict[str, Callable[[web.Request], Awaitable[web.Response]]] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self._routes = {path: handler, **(extra or {})}
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"loopback-app{path}", daemon=True)
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError(f"the app at {self.url} did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            await self._before_shutdown()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _before_shutdown(self) -> None:
        """Runs on the app's loop before it closes (to let held requests answer)."""

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        for path, handler in self._routes.items():
            app.router.add_post(path, handler)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()
        self._loop.close()


class CountingTarget(LoopbackApp):
    """An HTTP endpoint (aiohttp, in its own thread) that answers 200 and counts each ``X-Key`` header it gets,
    after ``delay`` seconds; ``hang_url`` answers only when the target closes (work that stays in flight)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.keys: Counter[str] = Counter()
        self.delay = delay
        self.hanging = 0
        self._release = asyncio.Event()
        super().__init__("/hit", self._hit, {"/hang": self._hang})
        self.hang_url = f"http://127.0.0.1:{self.port}/hang"

    async def _hit(self, request: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.keys[request.headers.get("X-Key", "")] += 1
        return web.Response(text="ok")

    async def _hang(self, request: web.Request) -> web.Response:
        self.hanging += 1
        await self._release.wait()
        return web.Response(text="late")

    async def _before_shutdown(self) -> None:
        self._release.set()


class CuttableProxy:
    """A TCP proxy to ``upstream`` (host, port) on a loopback port; ``cut()`` drops every connection and refuses
    new ones until ``restore()``. Stands in for a database outage without stopping the shared server."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-proxy", daemon=True)

    def __enter__(self) -> CuttableProxy:
        self._thread.start()
        self.restore()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def restore(self) -> None:
        """Accept connections again."""

        async def listen() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

        self._call(listen())

    def cut(self) -> None:
        """Close the listener and every proxied connection."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
                self._server = None
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

        self._call(close())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}
