"""FastAPI + Procrastinate (PostgreSQL): the peer closest to redrive in design, as ``peers.py`` runs it.

    procrastinate --app=procrastinate_app.app schema --apply
    uvicorn procrastinate_app:api                              # the HTTP front: POST /events
    procrastinate --app=procrastinate_app.app worker -c 64     # the worker (asyncio, 64 jobs at once)

The request defers one job with the idempotency key as its ``queueing_lock`` and answers 202 once the insert
committed (``defer_async`` returns after PostgreSQL's commit, synchronous commit on). A key whose job is still
waiting raises ``AlreadyEnqueued`` and answers 200. Procrastinate's lock only covers jobs in ``todo``: once the
job ran, the same key is accepted again, so this is weaker than redrive's key (kept as long as the event is).
The job POSTs the event to the sink with one shared aiohttp session per process. Settings come from the
environment (``BENCH_PG_DSN``, ``BENCH_PG_POOL``, ``BENCH_SINK_URL``): the worker imports the app by name.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from procrastinate import App, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued

PG_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
POOL = int(os.environ.get("BENCH_PG_POOL", "16"))
SINK_URL = os.environ.get("BENCH_SINK_URL", "http://127.0.0.1:9/sink")

app = App(connector=PsycopgConnector(conninfo=PG_DSN, min_size=POOL, max_size=POOL))


@functools.cache
def _session() -> aiohttp.ClientSession:
    # Made on first use inside the worker's running event loop (a session binds to the loop that makes it).
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


@app.task(name="deliver")
async def deliver(key: str, event: dict[str, Any]) -> None:
    """POST the event to the sink; a failure raises, and Procrastinate marks the job failed."""
    async with _session().post(SINK_URL, json=event, headers={"X-Key": key}) as response:
        response.raise_for_status()
        await response.read()


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with app.open_async():
        yield


api = FastAPI(lifespan=lifespan)


@api.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@api.post("/events")
async def ingest(request: Request) -> JSONResponse:
    key = request.headers.get("idempotency-key")
    if not key:
        return JSONResponse({"code": "missing_key", "detail": "the Idempotency-Key header is required"}, 422)
    event = await request.json()
    try:
        await deliver.configure(queueing_lock=key).defer_async(key=key, event=event)
    except AlreadyEnqueued:
        return JSONResponse({"duplicate": True}, 200)
    return JSONResponse({"duplicate": False}, 202)
