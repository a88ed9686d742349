"""What the end-to-end benchmarks share: subprocesses, the counting sink, the load generator, the load guard, and
fresh PostgreSQL databases with the CPU their backends use.

``ingest_e2e.py`` and ``peers.py`` import it (scripts run from this directory, so it is importable as ``benchkit``).
Every server is a subprocess on loopback, started in its own session (so Ctrl-C reaches only the script, whose
``finally`` stops them) and logging to a file in the run's temporary directory.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import psycopg

# The sink: raw asyncio + httptools, so it costs far less per request than any system it measures. Every POST is
# counted; a POST with an ``X-Key`` header also counts towards the unique keys (a key seen again is a duplicate
# delivery), and the arrival time of the newest unique key is kept. ``GET /count`` answers those figures as JSON,
# ``GET /keys`` the unique keys, one a line.
SINK_SRC = """
import asyncio, json, sys, time, httptools, uvloop
posts = duplicates = 0
seen = set()
last = 0.0
smallest = None
class Sink(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.parser = transport, httptools.HttpRequestParser(self)
        self.url, self.key, self.size = b"", None, 0
    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()
    def on_url(self, url):
        self.url += url
    def on_header(self, name, value):
        if name.lower() == b"x-key":
            self.key = value.decode()
    def on_body(self, body):
        self.size += len(body)
    def on_message_complete(self):
        global posts, duplicates, last, smallest
        if self.parser.get_method() == b"POST":
            posts += 1
            if self.key is not None:
                if self.key in seen:
                    duplicates += 1
                else:
                    seen.add(self.key)
                    last = time.time()
                smallest = self.size if smallest is None else min(smallest, self.size)
        if self.url.startswith(b"/count"):
            body = json.dumps({"posts": posts, "unique": len(seen), "duplicates": duplicates, "last": last,
                               "smallest_body": smallest}).encode()
        elif self.url.startswith(b"/keys"):
            body = "\\n".join(sorted(seen)).encode()
        else:
            body = b"ok"
        self.url, self.key, self.size = b"", None, 0
        self.transport.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(body), body))
async def main():
    server = await asyncio.get_running_loop().create_server(Sink, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
uvloop.run(main())
"""


class Procs:
    """The subprocesses this run started; ``stop_all`` ends each of them (TERM, then KILL)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("wb") as log:  # Ctrl-C reaches us only; finally ends them
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
            )
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.running):
            self.stop(proc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 200; raise with the log's tail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds of these processes and all their descendants, living or already reaped (psutil)."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in family:
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue  # exited between the listing and the read: its time is lost, and small
            total += t.user + t.system + t.children_user + t.children_system
    return total


def start_sink(procs: Procs, name: str) -> int:
    """Start the counting sink; return its port."""
    port = free_port()
    sink = procs.start(name, [sys.executable, "-c", SINK_SRC, str(port)])
    wait_healthy(sink, f"http://127.0.0.1:{port}/count", procs.workdir / f"{name}.log")
    return port


def sink_counts(port: int) -> dict[str, Any]:
    """The sink's figures: posts, unique, duplicates, last (epoch seconds of the newest unique key), smallest_body."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as response:
        counts: dict[str, Any] = json.loads(response.read())
        return counts


def sink_keys(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/keys", timeout=30) as response:
        return set(response.read().decode().split("\n")) - {""}


@dataclass
class Sent:
    """What the senders saw: 2xx answers, other statuses, and transport errors (each a request not accepted)."""

    accepted: int
    refused: int
    errors: int
    seconds: float


async def send_events(
    urls: Sequence[str],
    keys: Sequence[str],
    connections: int,
    body: bytes | Callable[[str], bytes],
    seconds: float,
    rate: float | None = None,
) -> Sent:
    """POST one event per key, ``connections`` senders at a time, sender ``i`` posting to ``urls[i % len(urls)]``.

    Each request carries the key as ``Idempotency-Key`` and ``body`` with the key spliced in for ``{key}``
    (``body`` is a template made by ``event_body``), or what ``body`` makes of the key when it is a function. Every
    request is awaited to its answer: the counts are exact.
    ``rate`` (events/s) paces the senders together: the n-th event goes no earlier than n / rate seconds in.
    """
    queue = iter(keys)
    counts = {"accepted": 0, "refused": 0, "errors": 0}
    numbered = itertools.count()

    async def sender(session: aiohttp.ClientSession, url: str) -> None:
        for key in queue:
            if rate:
                wait = began + next(numbered) / rate - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            headers = {"Content-Type": "application/json", "Idempotency-Key": key}
            try:
                data = body(key) if callable(body) else body.replace(b"{key}", key.encode())
                async with session.post(url, data=data, headers=headers) as r:
                    await r.read()
                    counts["accepted" if 200 <= r.status < 300 else "refused"] += 1
            except (aiohttp.ClientError, TimeoutError):
                counts["errors"] += 1

    began = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        senders = (sender(session, urls[i % len(urls)]) for i in range(connections))
        await asyncio.wait_for(asyncio.gather(*senders), seconds)
    return Sent(counts["accepted"], counts["refused"], counts["errors"], time.perf_counter() - began)


def event_body(size: int = 1024) -> bytes:
    """A JSON event of about ``size`` bytes, with ``{key}`` left in as the placeholder ``send_events`` fills."""
    head = b'{"key":"{key}","type":"order.paid","data":"'
    filler = size - len(head) - len(b'"}')
    return head + b"x" * max(filler, 0) + b'"}'


def load_average() -> float:
    return os.getloadavg()[0]


def guard_quiet(threshold: float, force: bool) -> float:
    """Print the 1-minute load average; refuse (SystemExit) above ``threshold`` unless ``force``. Return it."""
    load = load_average()
    cores = os.cpu_count() or 1
    print(f"load average (1 min) before: {load:.2f} on {cores} CPU(s); quiet threshold {threshold:.2f}", flush=True)
    if load > threshold and not force:
        raise SystemExit(
            f"the machine is busy (load {load:.2f} > {threshold:.2f}): the figures would measure the other work. "
            "Wait for a quiet machine, or pass --force to measure anyway (and say so beside the figures)."
        )
    return load


def pg_backends_cpu(admin_dsn: str, database: str) -> Callable[[], float]:
    """A reading of the CPU seconds of every PostgreSQL backend connected to ``database`` (pg_stat_activity)."""
    seen: dict[int, float] = {}  # the latest reading of every backend seen: one that left keeps its last reading

    def read() -> float:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,))]
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            seen[pid] = t.user + t.system
        return sum(seen.values())

    return read


def fresh_database(admin_dsn: str, prefix: str) -> tuple[str, str, Callable[[], None]]:
    """Create a uniquely named database; return its name, its DSN and the function that drops it."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # a generated identifier

    def drop() -> None:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return name, admin_dsn.rsplit("/", 1)[0] + f"/{name}", drop


@contextmanager
def fresh_url(kind: str, admin_dsn: str, prefix: str, folder: str) -> Iterator[str]:
    """The SQLAlchemy URL of a fresh database: an SQLite file in ``folder``, or a new PostgreSQL database on
    ``admin_dsn``'s server, dropped when the block ends."""
    if kind == "sqlite":
        yield f"sqlite:///{Path(folder) / f'{prefix}.db'}"
        return
    _, dsn, drop = fresh_database(admin_dsn, prefix)
    try:
        yield dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        drop()


def timed_claims(connection: Any, job: Callable[[Any], Any], claims: int, nothing_due: str) -> list[float]:
    """Run the claim ``job`` ``claims`` times on ``connection``, each in its own transaction; ms per claim. Each must
    find nothing (``nothing_due`` says why): what is timed is the price of a poll that leases nothing."""
    times: list[float] = []
    for _ in range(claims):
        started = time.perf_counter()
        with connection.begin():
            found = job(connection)
        times.append((time.perf_counter() - started) * 1000)
        assert found.executions == [], nothing_due
    return times
