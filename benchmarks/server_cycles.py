"""The whole server's instructions per event, end to end: a figure to count, not to time.

    python benchmarks/server_cycles.py [--variant peers] [--events 1000] [--src DIR]

On these machines the CPU's speed changes every few hundred milliseconds, and an end-to-end run's CPU seconds per
event spread by a quarter from run to run: a change of a few per cent on the hot path cannot be seen in them. Here
``redrive up`` runs under callgrind (``valgrind --tool=callgrind``), which counts the instructions the process
executes, every thread's, whatever the CPU's speed. A fresh SQLite database, one http trigger posting to the
counting sink (``benchkit``), ``--events`` events of 1 KB from ``--connections`` senders, every one awaited and
delivered (checked at the sink, exactly once), then SIGTERM: callgrind prints the count at exit. Each event runs
the whole path: the request, the ingest, the claim, the template rendering, the outbound POST, the completion, the
logs (at ``info``, redrive's default).

The count holds the start-up (imports, migrations) and the idle loops of the run's duration too, so compare two
builds at the same ``--events`` (``--src`` points the server at another tree's ``src``, such as a worktree of the
commit before), or take the difference of two event counts for a per-event figure:

    python benchmarks/server_cycles.py --events 2000 --src /tmp/before/src   # and the same without --src

``--variant``: ``peers`` is the trigger of ``peers.py`` (a header and three JSON leaves, each one field); the others
are ``destinations_e2e.py``'s trigger settings on ``ingest_e2e.py``'s trigger and events, the events numbered so that
their ordering key takes ``--keys`` values (with fewer keys than events in flight, events park behind their key, as
in that script's saturated runs).

``--database postgresql`` runs the server on a fresh PostgreSQL database (on ``--pg``'s server) instead: the count
is the redrive process's alone, not the database server's. Under callgrind the server is so much slower than its
round trips that they cost it next to nothing, so this counts what a change on PostgreSQL's path saves in CPU, not
what it saves in waiting.

``--callgrind-out FILE`` keeps callgrind's profile for ``callgrind_annotate``, which attributes the count to C
functions and to the libraries they are in (the interpreter, SQLite, the C library): where a cost is SQLite's own
work and where it is Python's, which no Python profiler shows (SQLite runs with the interpreter's lock released).

A run takes minutes (callgrind runs the server about 50 times slower); the first run in a fresh tree or environment
also counts compiling every module, so run each tree once before counting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchkit import (
    Procs,
    event_body,
    free_port,
    fresh_url,
    send_events,
    sink_counts,
    start_sink,
    wait_healthy,
)
from destinations_e2e import PARTS, VARIANTS, customer_event
from ingest_e2e import trigger_file
from peers import redrive_config
from writer_cycles import message_id


def workload(
    variant: str, sink_port: int, events: int, keys: int
) -> tuple[str, bytes | Callable[[str], bytes], list[str]]:
    """The trigger file, the event body and the events' keys of ``variant``: ``peers.py``'s (its trigger and 1 KB
    event), or ``ingest_e2e.py``'s trigger with ``destinations_e2e.py``'s settings and events, whose ordering key
    (the customer, the event's number modulo 1,000) takes ``keys`` values, as in ``writer_cycles.py``."""
    if variant == "peers":
        return redrive_config(sink_port), event_body(), [f"key-{n}" for n in range(events)]
    settings = {**VARIANTS, **PARTS}[variant]
    keyed = [f"e2e-{message_id(n, keys)}" for n in range(events)]
    return trigger_file(sink_port, 0, settings), customer_event, keyed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=["peers", *sorted({**VARIANTS, **PARTS})], default="peers")
    parser.add_argument("--events", type=int, default=1000, help="events sent (default 1000; 0 counts start-up)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent senders (default 16)")
    parser.add_argument("--keys", type=int, default=1000, help="ordering keys of the ordered variants (1-1000)")
    parser.add_argument("--src", type=Path, help="the redrive sources the server runs (default: the installed ones)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="longest wait for start, sends, deliveries")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite", help="the server's database")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin DSN")
    parser.add_argument(
        "--callgrind-out", type=Path, help="keep callgrind's profile there, for callgrind_annotate (default: none)"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (Debian/Ubuntu: apt-get install -y valgrind)")
    if args.events < 0:
        parser.error("--events must be 0 or more")
    if not 1 <= args.keys <= 1000:
        parser.error(f"--keys is {args.keys}: the ordering key is the event's number modulo 1,000, so 1 to 1000")
    with (
        tempfile.TemporaryDirectory(prefix="redrive-server-cycles-") as tmp,
        fresh_url(args.database, args.pg, "redrive_cycles", tmp) as url,
    ):
        procs = Procs(Path(tmp))
        try:
            return run(args, procs, Path(tmp), url)
        finally:
            procs.stop_all()


def run(args: argparse.Namespace, procs: Procs, home: Path, url: str) -> int:
    sink_port = start_sink(procs, "sink")
    config, body, keys = workload(args.variant, sink_port, args.events, args.keys)
    (home / "redrive.yaml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
    env |= {
        "REDRIVE_DATABASE_URL": url,
        "REDRIVE_WORKER_CONCURRENCY": "64",
        "PYTHONHASHSEED": "0",  # the same hashing, run to run
    }
    if args.src is not None:
        env["PYTHONPATH"] = f"{args.src.resolve()}{os.pathsep}{env.get('PYTHONPATH', '')}"
    port = free_port()
    server = [
        sys.executable,
        "-c",
        "from redrive.cli import main; main()",
        "up",
        "--config",
        str(home / "redrive.yaml"),
    ]
    argv = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={args.callgrind_out.resolve() if args.callgrind_out else os.devnull}",
        *server,
        *("--host", "127.0.0.1", "--port", str(port), "--processes", "1"),
    ]
    proc = procs.start("redrive", argv, env, cwd=home)
    log = home / "redrive.log"
    wait_healthy(proc, f"http://127.0.0.1:{port}/healthz", log, timeout=args.timeout)
    if keys:
        url = f"http://127.0.0.1:{port}/hooks/bench"
        sent = asyncio.run(send_events([url], keys, args.connections, body, args.timeout))
        if sent.accepted != args.events:
            print(f"only {sent.accepted} of {args.events} events were accepted", file=sys.stderr)
            return 1
        wait_delivered(sink_port, args.events, args.timeout)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=args.timeout)
    counted = re.search(rb"Collected : (\d+)", log.read_bytes())
    if counted is None:
        print(f"callgrind printed no count:\n{log.read_text(errors='replace')[-2000:]}", file=sys.stderr)
        return 1
    received = sink_counts(sink_port)
    if received["posts"] != args.events or received["duplicates"]:
        print(f"the sink received {received}, not each of {args.events} events once", file=sys.stderr)
        return 1
    instructions = int(counted[1])
    source = args.src or "installed"
    print(
        f"{args.variant} keys={args.keys} events={args.events} database={args.database} "
        f"instructions={instructions} src={source}"
    )
    return 0


def wait_delivered(sink_port: int, events: int, timeout: float) -> None:
    """Wait until the sink has ``events`` posts."""
    deadline = time.monotonic() + timeout
    while sink_counts(sink_port)["posts"] < events:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the sink did not receive {events} events within {timeout:.0f} s")
        time.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(main())
