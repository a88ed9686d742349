"""The writer's work per event in fixed cycles, one thread: a figure to count in instructions, not in seconds.

A figure, not a test. The end-to-end runs (``destinations_e2e.py``, ``peers.py``) are what users see, but on these
machines the CPU's speed changes every few hundred milliseconds, so a difference of a few percent in the writer
drowns in their spread. This script runs the writer's jobs of one event's life in a fixed order, in one thread,
on a fresh SQLite file: every cycle is one writer transaction carrying what most carry under load (an ingest
batch of ``--batch`` events, a claim of up to ``--batch`` executions, and the completions of the executions the
cycle before claimed, succeeded), run through the writer's own ``_run_jobs``; then cycles without new events
until every event stored is completed, so both variants do the whole work of the same events. The same cycles run
the same instructions, whatever the machine is doing: run it under callgrind and compare the counts.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python benchmarks/writer_cycles.py \\
        --variant enabled --cycles 40

(callgrind prints ``Collected : N``, the instructions of the whole run; ``--cycles 0`` gives the start-up's, to
subtract.) ``--variant`` takes ``destinations_e2e.py``'s trigger settings: ``disabled`` (no breaker, no limits, no
ordering) or ``enabled`` (breaker, limits far above the run, ordered by key over 1,000 keys), or one half of
``enabled``: ``limits`` (breaker and limits) or ``ordered`` (ordering alone). Without valgrind it prints the
cycles' thread CPU time per event, for a rough look.

``--keys`` sets how many of those keys the events take in turn. With the default (1,000) a key comes back only after
its last execution completed: nothing parks, the regime of a worker that keeps up. With 64 (twice ``--batch``) every
event after the first 64 arrives while its key's last one is still queued or running, so it is made parked and
promoted when that one completes, as nearly every event is in ``destinations_e2e.py``'s saturated runs.

``--history N`` first stores N succeeded executions of the trigger, their keys spread over the same 1,000 (one
event row for all of them), as a trigger that has run for a while has: what its history costs each new event's
searches of the indexes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from destinations_e2e import PARTS, VARIANTS, customer_event
from sqlalchemy import Engine, text

from redrive.db.engine import make_engine
from redrive.db.migrate import upgrade
from redrive.db.writer import _Pending, _run_jobs  # a benchmark may look inside: the writer's own batch runner
from redrive.destinations.breaker import Observed
from redrive.destinations.store import sync_limits
from redrive.ingest.prepare import prepare
from redrive.ingest.store import store_event
from redrive.observe.redaction import Redactor
from redrive.plugins import load_plugins
from redrive.queue import statements as queue
from redrive.triggers.config import parse_config
from redrive.triggers.runtime import TriggerSet, build_trigger_set, sync_triggers

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def triggers(engine: Engine, variant: str) -> TriggerSet:
    text = (
        "triggers:\n  - name: bench\n    source: {idempotency_key: ['body:messageId']}\n"
        '    action: {kind: http, url: "http://127.0.0.1:9/sink", method: POST}\n' + {**VARIANTS, **PARTS}[variant]
    )
    plugins = load_plugins("")
    config = parse_config(text, registry=plugins.registry)
    with engine.begin() as connection:
        ids = sync_triggers(connection, config, T0)
    built = build_trigger_set(config, ids, plugins.registry)
    with engine.begin() as connection:
        sync_limits(built.policies.limited(), T0)(connection)  # as the worker does at start
    return built


def in_one_transaction(engine: Engine, jobs: Sequence[Callable[[Any], Any]]) -> list[Any]:
    """Run ``jobs`` as one batch of the writer: one transaction, batch jobs grouped, the last writes at its end."""
    with engine.begin() as connection:
        return _run_jobs(connection, [_Pending(job, None, None) for job in jobs])  # type: ignore[arg-type]


def seed_history(engine: Engine, built: TriggerSet, rows: int) -> None:
    """``rows`` succeeded executions of the trigger, done before T0, keyed as the run's events are (``% 1000``)."""
    trigger = built.by_name("bench")
    assert trigger is not None
    destination = trigger.destination.fixed
    with engine.begin() as connection:
        event_id = connection.execute(
            text(
                "INSERT INTO events (trigger_id, body_sha256, headers, payload, filtered, received_at, replay_count) "
                "VALUES (:trigger, :sha, '{}', '{}', false, :t, 0) RETURNING id"
            ),
            {"trigger": trigger.id, "sha": "0" * 64, "t": T0 - timedelta(days=1)},
        ).scalar_one()
        key = "CAST(i % 1000 AS TEXT)" if built.ordered else "NULL"
        connection.execute(
            text(
                "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < :rows) "
                "INSERT INTO executions (event_id, trigger_id, action_kind, status, attempts, run_at, created_at, "
                "updated_at, finished_at, ordering_key, destination) "
                f"SELECT :event, :trigger, 'http', 'succeeded', 1, :t, :t, :t, :t, {key}, :destination FROM seq"
            ),
            {
                "rows": rows,
                "event": event_id,
                "trigger": trigger.id,
                "t": T0 - timedelta(days=1),
                "destination": destination,
            },
        )


def completed(claimed: queue.Claimed, built: TriggerSet, at: datetime) -> queue.Complete:
    trigger = built.by_id(claimed.trigger_id)
    assert trigger is not None
    policy = built.policies.of(claimed.destination, trigger.name) if claimed.destination else None
    tracked = policy is not None and policy.tracked
    return queue.complete(
        queue.Completion(
            execution_id=claimed.id,
            lease_token=claimed.lease_token,
            status="succeeded",
            run_at=None,
            started_at=at,
            finished_at=at,
            outcome="succeeded",
            error_category=None,
            error_code=None,
            message=None,
            detail={"status": 200},
            excerpt=None,
            trigger_id=trigger.id,
            action_kind="http",
            destination=claimed.destination if tracked else None,
            observed=Observed("succeeded", 0.002) if tracked else None,
            policy=policy if tracked else None,
        )
    )


def message_id(n: int, keys: int) -> int:
    """The ``n``-th event's unique number, whose remainder by 1,000 (its ordering key) takes ``keys`` values."""
    return n // keys * 1000 + n % keys


def run(engine: Engine, built: TriggerSet, cycles: int, batch: int, keys: int) -> int:
    """The cycles; how many executions completed."""
    trigger = built.by_name("bench")
    assert trigger is not None
    redactor = Redactor()
    numbers = iter(range(10**9))
    claimed: list[queue.Claimed] = []
    plan_first = True
    done = 0
    cycle, moved = 0, True
    while cycle < cycles or moved:  # then drain: every event stored is completed (a completion may promote one)
        now = T0 + timedelta(seconds=1 + cycle * 0.02)
        events = [
            store_event(
                prepare(
                    trigger.config,
                    trigger.id,
                    body=customer_event(f"msg-{message_id(n, keys)}"),  # its customer: the number % 1000
                    headers={"content-type": "application/json"},
                    received_at=now,
                    redactor=redactor,
                    destination=trigger.destination,
                )
            )
            for n in (next(numbers) for _ in range(batch if cycle < cycles else 0))
        ]
        claim = queue.claim(
            built.ids,
            batch,
            30,
            now,
            ordered=built.ordered,
            blocking=built.blocking,
            policy_of=built.policies.of,
            plan_first=plan_first,
        )
        completions = [completed(c, built, now) for c in claimed]
        results = in_one_transaction(engine, [claim, *events, *completions])
        found: queue.Claim = results[0]
        assert all(results[1 + len(events) :]), "a completion lost its lease"
        done += len(completions)
        moved = bool(completions) or bool(found.executions)
        claimed = found.executions
        plan_first = found.restricted
        cycle += 1
        assert cycle < 100 * (cycles + 1), "the queue does not drain"
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=sorted({**VARIANTS, **PARTS}), default="enabled")
    parser.add_argument("--cycles", type=int, default=40, help="writer transactions (default 40)")
    parser.add_argument("--batch", type=int, default=32, help="events stored, claimed and completed per cycle")
    parser.add_argument(
        "--keys",
        type=int,
        default=1000,
        help="ordering keys the events take in turn (default 1000, at most 1000; 2 x --batch or fewer: every event "
        "after the first ones parks behind its key, as in a saturated run)",
    )
    parser.add_argument("--history", type=int, default=0, help="succeeded executions stored first (default 0)")
    args = parser.parse_args()
    if args.history < 0:
        parser.error(f"--history must be 0 or more, not {args.history}")
    if not 1 <= args.keys <= 1000:
        parser.error(
            f"--keys must be between 1 and 1000 (the ordering key is the message number % 1000), not {args.keys}"
        )
    with tempfile.TemporaryDirectory(prefix="redrive-cycles-") as tmp:
        url = f"sqlite:///{tmp}/redrive.db"
        upgrade(url)
        engine = make_engine(url, writer=True)
        try:
            built = triggers(engine, args.variant)
            if args.history:
                seed_history(engine, built, args.history)
            cpu = time.thread_time()
            done = run(engine, built, args.cycles, args.batch, args.keys)
            cpu = time.thread_time() - cpu
        finally:
            engine.dispose()
    print(f"{args.variant}: {args.cycles} cycles, {done} executions completed, {cpu * 1e6 / max(1, done):.0f} us/event")


if __name__ == "__main__":
    main()
