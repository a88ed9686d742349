"""FastAPI + Celery + Redis, written the way users build it today: the peer ``peers.py`` measures redrive against.

    uvicorn celery_app:api            # the HTTP front: POST /events
    celery -A celery_app worker       # the worker (prefork)

The request checks the idempotency key with Redis ``SET NX`` (a duplicate answers 200 and enqueues nothing), then
publishes one Celery task to the Redis broker and answers 202 once Redis acknowledged the push. The task POSTs the
event to the sink with ``requests`` (one keep-alive session per worker process); no result backend.

What "acknowledged" is worth depends on the Redis server's persistence (``appendonly``/``appendfsync``): with
Redis's defaults the task is in memory only when the 202 leaves. Celery acknowledges a message when the worker
receives it (``acks_late`` off, its default), so a worker killed mid-task loses it. ``peers.py`` prints the Redis
settings beside the figures. Settings come from the environment (``BENCH_REDIS_URL``, ``BENCH_SINK_URL``): a
Celery app lives at module level, since the worker imports it by name.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import redis.asyncio
import requests
from celery import Celery  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SINK_URL = os.environ.get("BENCH_SINK_URL", "http://127.0.0.1:9/sink")

celery = Celery("bench", broker=REDIS_URL)
celery.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True, task_serializer="json")
api = FastAPI()
keys = redis.asyncio.Redis.from_url(REDIS_URL)


@functools.cache
def _session() -> requests.Session:
    # Made on first use, in the forked worker process that runs the task: a session is never shared across a fork.
    return requests.Session()


@celery.task(name="deliver")  # type: ignore[untyped-decorator]  # Celery is untyped
def deliver(key: str, event: dict[str, Any]) -> None:
    """POST the event to the sink; a failure raises, and Celery records the task as failed."""
    response = _session().post(SINK_URL, json=event, headers={"X-Key": key}, timeout=30)
    response.raise_for_status()


@api.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@api.post("/events")
async def ingest(request: Request) -> JSONResponse:
    key = request.headers.get("idempotency-key")
    if not key:
        return JSONResponse({"code": "missing_key", "detail": "the Idempotency-Key header is required"}, 422)
    event = await request.json()
    if not await keys.set(f"idem:{key}", 1, nx=True, ex=7 * 86400):
        return JSONResponse({"duplicate": True}, 200)
    deliver.delay(key, event)  # blocks the loop for one LPUSH round trip, as `.delay()` in an async route does
    return JSONResponse({"duplicate": False}, 202)
