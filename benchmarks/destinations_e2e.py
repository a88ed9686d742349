"""What do breakers, per-destination limits and ordering cost end to end? A figure, not a test.

The end-to-end run of ``ingest_e2e.py`` (a sink subprocess, ``redrive up`` on a fresh SQLite database with a
worker whose http trigger POSTs each event to the sink), twice per round, interleaved so both see the same machine:

- ``disabled``: the trigger's breaker off and no limits: a claim reads the (empty) set of restricted destinations
  and takes everything freely; completions record nothing about destinations.
- ``enabled``: the breaker on and limits set far above what the run reaches (``rate: 1000000/s``,
  ``concurrency: 10000``): the destination is restricted, so every claim locks and plans it (running count,
  token bucket) and takes its rows through the per-destination claim, and every completion batch counts its
  outcomes under the destination's row lock; and the trigger is ordered by key (1,000 keys), so every claim leases
  only heads of keys.

Printed per round and as medians: executions/s of each, their ratio (the issue's bound: enabled >= 0.9 x disabled),
and server CPU seconds per event. Run it on a quiet machine; ``--events`` and ``--repeat`` trade time for noise.

By default the 64 senders go as fast as they can: the run is saturated, and a backlog builds behind every busy key.
``--rate N`` paces them at N events/s instead; below both variants' capacity both deliver N/s, and what tells them
apart is the CPU per event (also printed as enabled over disabled, per round and their median).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchkit import Procs
from ingest_e2e import end_to_end

VARIANTS = {
    "disabled": "    breaker: {enabled: false}\n",
    "enabled": "    breaker: {enabled: true}\n    limits: {rate: 1000000/s, concurrency: 10000}\n"
    '    ordering: {key: "{{ (payload.messageId[4:] | int) % 1000 }}"}\n',  # 1,000 keys: 64 slots stay busy
}
PARTS = {  # --parts: each half of ``enabled`` alone, to tell which one costs
    "limits": "    breaker: {enabled: true}\n    limits: {rate: 1000000/s, concurrency: 10000}\n",
    "ordered": '    breaker: {enabled: false}\n    ordering: {key: "{{ (payload.messageId[4:] | int) % 1000 }}"}\n',
}


def cpu_per_event(run: dict[str, Any]) -> float:
    """Server CPU seconds per delivered event."""
    return float(run["cpu_seconds"]) / max(1, int(run["succeeded"]))


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
    args = parser.parse_args()
    variants = {**VARIANTS, **PARTS} if args.parts else VARIANTS
    args.ordering_keys = 0  # the variants carry their own ordering (ingest_e2e's end_to_end reads this)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="redrive-bench-dest-") as tmp:
        procs = Procs(Path(tmp))
        try:
            for n in range(1, args.repeat + 1):
                order = list(variants) if n % 2 else list(reversed(variants))  # none always goes first
                for name in order:
                    run = end_to_end(args, procs, n, trigger_extra=variants[name], tag=f"{name}-")
                    procs.stop_all()
                    runs[name].append(run)
                    per_event = cpu_per_event(run)
                    print(
                        f"#{n} {name:8}: {run['succeeded']}/{run['events']} in {run['seconds']} s = "
                        f"{run['executions_per_s']:.0f} executions/s, cpu {per_event * 1e3:.3f} ms/event"
                        + ("" if run["complete"] else " (TIMED OUT)"),
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


if __name__ == "__main__":
    sys.exit(main())
