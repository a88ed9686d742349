"""Cross-process wake-up latency on PostgreSQL: `redrive serve` ingests, an idle `redrive worker` in another process
starts the execution. Measured from the 202 (the event committed) to the action's request reaching a local sink.

    uv run python benchmarks/notify_latency.py [--events 50] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

The worker's poll interval is set to 5 minutes, so only NOTIFY can explain a pickup within it. Events are sent one
at a time with a pause between them, so the worker is idle (asleep) each time. Target: p50 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import psycopg
from aiohttp import web

REDRIVE = [sys.executable, "-c", "from redrive.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit(f"{url}: redrive exited with {process.returncode}")
            try:
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


async def measure(events: int, api: str, arrivals: dict[str, float]) -> list[float]:
    latencies = []
    async with aiohttp.ClientSession() as session:
        for n in range(events):
            await asyncio.sleep(0.3)  # let the worker fall asleep
            key = f"latency-{n}"
            async with session.post(f"{api}/hooks/bench", json={"n": n}, headers={"Idempotency-Key": key}) as response:
                assert response.status == 202, await response.text()
                committed = time.perf_counter()
            for _ in range(5000):
                if key in arrivals:
                    break
                await asyncio.sleep(0.0005)
            else:
                raise SystemExit(f"event {n} was not picked up within 2.5 s: is NOTIFY working?")
            latencies.append((arrivals[key] - committed) * 1000)
    return latencies


async def main(args: argparse.Namespace) -> None:
    database = f"redrive_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')  # type: ignore[arg-type]
    url = args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{database}"
    arrivals: dict[str, float] = {}

    async def sink(request: web.Request) -> web.Response:
        arrivals[request.headers["X-Key"]] = time.perf_counter()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/sink", sink)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sink_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", sink_port).start()

    workdir = Path(tempfile.mkdtemp(prefix="redrive-bench-"))
    trigger = {
        "name": "bench",
        "action": {
            "kind": "http",
            "url": f"http://127.0.0.1:{sink_port}/sink",
            "headers": {"X-Key": "{{ event.idempotency_key }}"},
            "allow": ["127.0.0.1"],
        },
    }
    (workdir / "redrive.yaml").write_text(json.dumps({"triggers": [trigger]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
    env |= {"REDRIVE_DATABASE_URL": url, "REDRIVE_POLL_INTERVAL": "300", "REDRIVE_LOG_LEVEL": "warning"}
    processes = []
    try:
        urls = []
        for role in ("serve", "worker"):
            port = free_port()
            processes.append(
                subprocess.Popen(  # noqa: ASYNC220 (starting it returns at once; nothing else runs yet)
                    [*REDRIVE, role, "--config", "redrive.yaml", "--port", str(port)],
                    cwd=workdir,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for process, process_url in zip(processes, urls, strict=True):
            await wait_ready(process_url, process)
        await asyncio.sleep(1)
        latencies = await measure(args.events, urls[0], arrivals)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        await runner.cleanup()
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')  # type: ignore[arg-type]
    latencies.sort()
    p50 = statistics.median(latencies)
    p90 = latencies[int(len(latencies) * 0.9) - 1]
    load = os.getloadavg()[0]
    print(
        f"wake-up across processes (202 -> action request at the target), {len(latencies)} events: "
        f"p50 {p50:.1f} ms, p90 {p90:.1f} ms, max {latencies[-1]:.1f} ms (target p50 < 50 ms; load {load:.2f})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument(
        "--pg", default=os.environ.get("REDRIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    asyncio.run(main(parser.parse_args()))
