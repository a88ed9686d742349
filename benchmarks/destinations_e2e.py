"""What do breakers, per-destination limits and ordering cost end to end? A figure, not a test.

The end-to-end run of ``ingest_e2e.py`` (a sink subprocess, ``redrive up`` on a fresh SQLite database with a
worker whose http trigger POSTs each event to the sink), twice per round, interleaved so both see the same machine:

- ``disabled``: the trigger's breaker off and no limits: a claim reads the (empty) set of restricted destinations
  and takes everything freely; completions record nothing about destinations.
- ``enabled``: the breaker on and limits set far above what the run reaches (``rate: 1000000/s``,
  ``concurrency: 10000``): the destination is restricted, so every claim locks and plans it (running count,
  token bucket) and takes its rows through the per-destination claim, and every completion batch counts its
  outcomes under the destination's row lock; and the trigger is ordered by key, so every claim leases only heads
  of keys.

Both send the same events: ``ingest_e2e.py``'s, each also naming one of 1,000 customers (``customer_event``), and the
ordered trigger's key is that field, ``{{ payload.customer.id }}``, the form the issue gives. ``--computed-key``
orders by the same 1,000 keys worked out from the message id by a Jinja expression instead (``COMPUTED_KEY``, what
this script used before): the difference is what rendering that expression at ingest costs.

Printed per round and as medians: executions/s of each, their ratio (the issue's bound: enabled >= 0.9 x disabled),
and server CPU seconds per event. Run it on a quiet machine; ``--events`` and ``--repeat`` trade time for noise.

By default the 64 senders go as fast as they can: the run is saturated, and a backlog builds behind every busy key.
``--rate N`` paces them at N events/s instead; below both variants' capacity both deliver N/s, and what tells them
apart is the CPU per event (also printed as enabled over disabled, per round and their median).

``--paired`` runs the two variants at the same time instead of one after the other, each with its senders, sink and
``redrive up`` pinned to a core of its own (the cores swap every round), so that both see the same phases of this
machine's CPU speed, which changes every few hundred milliseconds. Each variant then has one core for everything,
its load generator included: the generator's CPU per event, the same in both, dilutes the paired rate ratio towards
1, so the bound is read on the saturated ratio above; the paired ratio of server CPU per event is what this mode is
for. It still spreads from round to round (a run's own backlog differs), but less than the one-after-the-other
runs do.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchkit import Procs
from ingest_e2e import end_to_end

CUSTOMERS = 1_000  # the ordering keys: 64 slots stay busy
KEY = "{{ payload.customer.id }}"  # the issue's own form of an ordering key: a field of the event
COMPUTED_KEY = "{{ (payload.messageId[4:] | int) % 1000 }}"  # --computed-key: the same keys, worked out by Jinja
VARIANTS = {
    "disabled": "    breaker: {enabled: false}\n",
    "enabled": "    breaker: {enabled: true}\n    limits: {rate: 1000000/s, concurrency: 10000}\n"
    f'    ordering: {{key: "{KEY}"}}\n',
}
PARTS = {  # --parts: each half of ``enabled`` alone, to tell which one costs
    "limits": "    breaker: {enabled: true}\n    limits: {rate: 1000000/s, concurrency: 10000}\n",
    "ordered": f'    breaker: {{enabled: false}}\n    ordering: {{key: "{KEY}"}}\n',
}


def customer_event(key: str) -> bytes:
    """The event keyed ``e2e-N`` (or ``msg-N``): ``ingest_e2e``'s, and customer ``c<N % 1000>``, its ordering key."""
    number = int(key[4:])
    return b'{"messageId":"%s","customer":{"id":"c%d"},"text":"hello"}' % (key.encode(), number % CUSTOMERS)


def settings(name: str, computed_key: bool = False) -> str:
    """The trigger settings of variant (or part) ``name``; ``computed_key``: ordered by ``COMPUTED_KEY`` instead."""
    extra = {**VARIANTS, **PARTS}[name]
    return extra.replace(KEY, COMPUTED_KEY) if computed_key else extra


def cpu_per_event(run: dict[str, Any]) -> float:
    """Server CPU seconds per delivered event."""
    return float(run["cpu_seconds"]) / max(1, int(run["succeeded"]))


def writer_share(run: dict[str, Any]) -> str:
    """The writer's part of a run, per delivered event: its CPU, its transactions and its jobs (``/metrics``)."""
    writer, done = run["writer"], max(1, int(run["succeeded"]))
    return (
        f"writer cpu {writer['cpu_seconds'] * 1e3 / done:.3f} ms, {writer['transactions'] / done:.3f} transactions "
        f"and {writer['jobs'] / done:.2f} jobs per event"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per run (default 20000)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent senders (default 64)")
    parser.add_argument("--concurrency", type=int, default=64, help="redrive worker concurrency (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, each running both variants (default 3)")
    parser.add_argument("--e2e-timeout", type=float, default=300.0, help="longest send, then longest wait (s)")
    parser.add_argument("--log-level", default="warning", help="redrive's REDRIVE_LOG_LEVEL (default warning)")
    parser.add_argument("--parts", action="store_true", help="also run the breaker+limits and the ordering alone")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="pace the senders at this many events/s (below both variants' capacity: compare CPU per event)",
    )
    parser.add_argument("--paired", action="store_true", help="run both variants at once, each on a core of its own")
    parser.add_argument(
        "--computed-key",
        action="store_true",
        help="order by the same 1,000 keys worked out from messageId by a Jinja expression, not read from a field",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="redrive up --processes of both variants (default 1; `redrive up` itself defaults to the core count)",
    )
    parser.add_argument("--single", choices=sorted({**VARIANTS, **PARTS}), help=argparse.SUPPRESS)  # --paired's runs
    parser.add_argument("--core", type=int, help=argparse.SUPPRESS)  # the core --single runs on
    args = parser.parse_args()
    if args.processes < 1:
        parser.error(f"--processes must be at least 1, not {args.processes}")
    if args.single:
        return single(args)
    if args.paired:
        if args.processes != 1:
            parser.error("--paired pins each variant to one core: one process each, not --processes")
        if args.parts or args.rate is not None:
            parser.error("--paired runs the enabled and disabled variants saturated: not with --parts or --rate")
        if len(os.sched_getaffinity(0)) < 2:
            parser.error("--paired needs two cores, one per variant")
        return paired(args)
    variants = {**VARIANTS, **PARTS} if args.parts else VARIANTS
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="redrive-bench-dest-") as tmp:
        procs = Procs(Path(tmp))
        try:
            for n in range(1, args.repeat + 1):
                order = list(variants) if n % 2 else list(reversed(variants))  # none always goes first
                for name in order:
                    run = end_to_end(
                        args,
                        procs,
                        n,
                        args.processes,
                        trigger_extra=settings(name, args.computed_key),
                        tag=f"{name}-",
                        rate=args.rate,
                        body=customer_event,
                    )
                    procs.stop_all()
                    runs[name].append(run)
                    per_event = cpu_per_event(run)
                    print(
                        f"#{n} {name:8}: {run['succeeded']}/{run['events']} in {run['seconds']} s = "
                        f"{run['executions_per_s']:.0f} executions/s, cpu {per_event * 1e3:.3f} ms/event"
                        f" ({writer_share(run)})" + ("" if run["complete"] else " (TIMED OUT)"),
                        flush=True,
                    )
        finally:
            procs.stop_all()
    rates = {name: statistics.median(r["executions_per_s"] for r in found) for name, found in runs.items()}
    cpu = {name: statistics.median(cpu_per_event(r) for r in found) for name, found in runs.items()}
    ratio = rates["enabled"] / rates["disabled"] if rates["disabled"] else 0.0
    # Each round runs the two back to back, so a round's own ratio sees one phase of the machine's CPU speed; their
    # median is the steadier figure when the speed changes between rounds (print both, and pool rounds across runs).
    pairs = zip(runs["enabled"], runs["disabled"], strict=True)
    rounds = [enabled["executions_per_s"] / disabled["executions_per_s"] for enabled, disabled in pairs]
    print(
        f"median: disabled {rates['disabled']:.0f}/s ({cpu['disabled'] * 1e3:.3f} ms cpu/event), "
        f"enabled {rates['enabled']:.0f}/s ({cpu['enabled'] * 1e3:.3f} ms cpu/event); "
        f"ratio {ratio:.3f} [bound >= 0.9: {'met' if ratio >= 0.9 else 'NOT met'}]"
    )
    print(
        "per round: " + ", ".join(f"{r:.3f}" for r in rounds) + f"; their median {statistics.median(rounds):.3f}",
        flush=True,
    )
    costs = [cpu_per_event(e) / cpu_per_event(d) for e, d in zip(runs["enabled"], runs["disabled"], strict=True)]
    print(
        "cpu per event, enabled / disabled, per round: "
        + ", ".join(f"{c:.3f}" for c in costs)
        + f"; their median {statistics.median(costs):.3f}",
        flush=True,
    )
    return 0 if all(r["complete"] for found in runs.values() for r in found) else 1


def single(args: argparse.Namespace) -> int:
    """One run of one variant (``--single``, as ``--paired`` starts it on its core); its figures as JSON."""
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})  # the run's sink and ``redrive up`` inherit it
    with tempfile.TemporaryDirectory(prefix="redrive-bench-dest-") as tmp:
        procs = Procs(Path(tmp))
        try:
            extra = settings(args.single, args.computed_key)
            run = end_to_end(
                args, procs, 1, args.processes, trigger_extra=extra, tag=f"{args.single}-", body=customer_event
            )
        finally:
            procs.stop_all()
    print(json.dumps(run), flush=True)
    return 0 if run["complete"] else 1


def paired(args: argparse.Namespace) -> int:
    """``--paired``: each round runs the two variants side by side, each pinned to one core, cores swapped per round."""
    cores = sorted(os.sched_getaffinity(0))[:2]
    names = list(VARIANTS)
    script = [sys.executable, str(Path(__file__).resolve())]
    options = ["--events", str(args.events), "--connections", str(args.connections)]
    options += ["--concurrency", str(args.concurrency), "--e2e-timeout", str(args.e2e_timeout)]
    options += ["--log-level", args.log_level, *(["--computed-key"] if args.computed_key else [])]
    rates: list[float] = []
    costs: list[float] = []
    complete = True
    for n in range(1, args.repeat + 1):
        placed = {name: cores[(i + n) % 2] for i, name in enumerate(names)}
        started = {
            name: subprocess.Popen([*script, "--single", name, "--core", str(core), *options], stdout=subprocess.PIPE)
            for name, core in placed.items()
        }
        outputs = {name: proc.communicate()[0].decode().strip().splitlines() for name, proc in started.items()}
        failed = [name for name, lines in outputs.items() if not lines]
        if failed:  # a run failed before its figures (its traceback went to stderr, above)
            print(f"#{n} paired: no figures from {', '.join(failed)}", file=sys.stderr)
            return 1
        runs = {name: json.loads(lines[-1]) for name, lines in outputs.items()}
        complete = complete and all(proc.returncode == 0 for proc in started.values())
        enabled, disabled = runs["enabled"], runs["disabled"]
        rates.append(enabled["executions_per_s"] / disabled["executions_per_s"])
        costs.append(cpu_per_event(enabled) / cpu_per_event(disabled))
        print(
            f"#{n} paired: "
            + ", ".join(
                f"{name} on core {placed[name]} {run['executions_per_s']:.0f} executions/s, "
                f"cpu {cpu_per_event(run) * 1e3:.3f} ms/event" + ("" if run["complete"] else " (TIMED OUT)")
                for name, run in runs.items()
            )
            + f"; enabled / disabled: rate {rates[-1]:.3f}, cpu per event {costs[-1]:.3f}",
            flush=True,
        )
    print(
        "paired, enabled / disabled, per round: rate "
        + ", ".join(f"{r:.3f}" for r in rates)
        + f" (median {statistics.median(rates):.3f}); cpu per event "
        + ", ".join(f"{c:.3f}" for c in costs)
        + f" (median {statistics.median(costs):.3f})",
        flush=True,
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
