"""How fast does redrive accept webhooks durably, and run them end to end? A figure, not a test.

Method (everything on loopback, every server a subprocess, all of them killed on exit or Ctrl-C):

1. baseline: a bare FastAPI app (``POST /hooks/{trigger}`` reads the body and answers 202 with a small JSON body,
   no I/O) under uvicorn with redrive's server options (uvloop, httptools, no access log, one process), driven for
   ``--duration`` seconds at ``--connections`` keep-alive connections. This is the ceiling of the HTTP stack on
   this machine, measured in the same run so the ratio below cancels out the machine.
2. ingest: ``redrive up`` on a fresh SQLite database with no worker (REDRIVE_WORKER_CONCURRENCY=0), driven exactly
   like the baseline; every body carries a unique ``messageId`` (the idempotency key), so each 2xx is a new event
   committed with ``synchronous=FULL``. Afterwards the rows in ``events`` are compared with the 2xx count.
   redrive runs with its own defaults, log level ``info`` included (one JSON line per event, to its log file).
3. end to end: a tiny HTTP sink (raw asyncio + httptools, answers 200 and counts) and ``redrive up`` with a worker
   whose trigger POSTs each event to the sink. ``--events`` events are sent at ``--connections`` concurrency; the
   figure is events / (first POST .. last ``finished_at`` of a succeeded execution). With ``--processes N`` (N > 1)
   each round runs it twice, interleaved: ``redrive up --processes 1`` then ``--processes N`` on fresh databases,
   and the summary gives N's rate and CPU per event as ratios to one process's in the same round.
   ``--ordering-keys N`` runs the same with the trigger ordered by key (``ordering:``, events spread round-robin over
   N keys): what the ordered claim costs end to end, against the same run without it (N below the worker concurrency
   also caps the parallelism, by design: one execution per key at a time).

Load generator: wrk (with a Lua script that numbers bodies per thread) when it is installed, else an aiohttp-based
generator in this process (``--generator`` forces one). wrk stops with requests in flight, so the server may have
committed up to ``--connections`` more events than wrk counted; the Python generator finishes each request, so
its count must equal the rows exactly. The Python generator is itself CPU-bound and shares the machine's cores
with the server: with it, both req/s figures are lower bounds, and the ratio is the figure to read.

Each measurement runs ``--repeat`` times (default 3), a baseline run right before each ingest run, so each ratio
compares runs seconds apart on a machine whose other load changes; the summary gives the range over the runs, and
a target counts as met when the median run meets it.

Reading the table: ``ratio`` = redrive accepted req/s / baseline req/s (what durability, parsing and the key check
cost on top of the bare HTTP stack); ``cpu`` = CPU seconds the server process used per wall second (about 1.0 means
one core is saturated: the GIL-bound event loop plus the writer thread is the limit). Targets are context only;
the exit code is non-zero only when something broke.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from benchkit import Procs, free_port, send_events, sink_counts, start_sink, tree_cpu_seconds, wait_healthy

HERE = Path(__file__).resolve().parent
HEADERS = {"Content-Type": "application/json"}
REDRIVE = [sys.executable, "-c", "from redrive.cli import main; main()"]
BASELINE_SRC = """
import sys, uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
app = FastAPI()
@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}
@app.post("/hooks/{trigger}")
async def hook(trigger: str, request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"event_id": 1, "execution_id": 1, "duplicate": False}, status_code=202)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            log_config=None, access_log=False)
"""
WRK_LUA = """
local counter = 0
function setup(thread) counter = counter + 1; thread:set("tid", counter) end
function init(args) n = 0 end
function request()
  n = n + 1
  local body = string.format('{"messageId":"%d-%d","text":"hello"}', tid, n)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
function done(s, latency, requests)
  local e = s.errors
  io.write(string.format('BENCH {"requests":%d,"non2xx":%d,"socket_errors":%d,"seconds":%.6f,'
    .. '"p50_ms":%.3f,"p99_ms":%.3f}\\n', s.requests, e.status, e.connect + e.read + e.write + e.timeout,
    s.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
"""


@dataclass
class Load:
    """What one load run measured; ``ok`` counts 2xx responses (wrk: completed minus status >= 400)."""

    generator: str
    ok: int
    non2xx: int
    socket_errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu: float = 0.0  # server CPU seconds per wall second during the run

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def percentile(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * p / 100))] if sorted_ms else 0.0


def run_wrk(url: str, duration: float, connections: int, workdir: Path) -> Load:
    script = workdir / "bench.lua"
    script.write_text(WRK_LUA)
    threads = str(min(2, connections))
    argv = ["wrk", "-t", threads, "-c", str(connections), "-d", f"{duration:g}s", "--latency", "-s", str(script), url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))
    r = json.loads(line.removeprefix("BENCH "))
    ok = r["requests"] - r["non2xx"]
    return Load("wrk", ok, r["non2xx"], r["socket_errors"], r["seconds"], r["p50_ms"], r["p99_ms"])


async def run_python(url: str, duration: float, connections: int) -> Load:
    latencies: list[float] = []
    counts = {"ok": 0, "non2xx": 0, "errors": 0}
    stop = time.perf_counter() + duration

    async def connection(session: aiohttp.ClientSession, cid: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            n += 1
            started = time.perf_counter()
            try:
                async with session.post(url, data=f'{{"messageId":"{cid}-{n}","text":"hello"}}', headers=HEADERS) as r:
                    await r.read()
                    counts["ok" if 200 <= r.status < 300 else "non2xx"] += 1
            except (aiohttp.ClientError, TimeoutError):
                counts["errors"] += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        await asyncio.gather(*(connection(session, c) for c in range(connections)))
    latencies.sort()
    return Load(
        "python-aiohttp",
        counts["ok"],
        counts["non2xx"],
        counts["errors"],
        time.perf_counter() - began,
        percentile(latencies, 50),
        percentile(latencies, 99),
    )


def cpu_seconds(pid: int) -> float:
    """CPU seconds of the server: the process and its children (the processes of ``up --processes N``)."""
    return tree_cpu_seconds([pid])


def drive(args: argparse.Namespace, url: str, pid: int, workdir: Path) -> Load:
    before, t0 = cpu_seconds(pid), time.perf_counter()
    if args.generator == "wrk":
        load = run_wrk(url, args.duration, args.connections, workdir)
    else:
        load = asyncio.run(run_python(url, args.duration, args.connections))
    load.cpu = (cpu_seconds(pid) - before) / (time.perf_counter() - t0)
    return load


E2E_BODY = b'{"messageId":"{key}","text":"hello"}'  # ``send_events`` splices each event's key ("e2e-N") in


def trigger_file(sink_port: int, ordering_keys: int = 0, trigger_extra: str = "") -> str:
    """The end-to-end runs' trigger file: one http trigger posting each event's ``messageId`` to the sink; ordered by
    that number modulo ``ordering_keys`` (0: unordered); ``trigger_extra``: more YAML lines for the trigger."""
    ordering = f'    ordering: {{key: "{{{{ (payload.messageId[4:] | int) % {ordering_keys} }}}}"}}\n'
    return (
        "triggers:\n  - name: bench\n    action:\n      kind: http\n"
        f'      url: "http://127.0.0.1:{sink_port}/sink"\n'
        "      allow: [127.0.0.1]\n"
        '      json: {id: "{{ payload.messageId }}"}\n' + (ordering if ordering_keys else "") + trigger_extra
    )


def start_redrive(
    procs: Procs,
    name: str,
    sink_port: int,
    worker_concurrency: int,
    log_level: str,
    processes: int = 1,
    ordering_keys: int = 0,
    trigger_extra: str = "",
) -> tuple[str, Path, int]:
    """Start ``redrive up --processes N`` on a fresh database; return its base URL, database path and pid.
    ``ordering_keys``: order the trigger by ``messageId`` modulo that many keys (0: unordered); ``trigger_extra``:
    more YAML lines for the trigger (``breaker:``, ``limits:``), indented as its keys."""
    home = procs.workdir / name
    home.mkdir()
    (home / "redrive.yaml").write_text(trigger_file(sink_port, ordering_keys, trigger_extra))
    db, port = home / "redrive.db", free_port()
    env = {
        **os.environ,
        "REDRIVE_DATABASE_URL": f"sqlite:///{db}",
        "REDRIVE_LOG_LEVEL": log_level,  # its JSON lines go to the process's log file, as under a supervisor
        "REDRIVE_WORKER_CONCURRENCY": str(worker_concurrency),
    }
    argv = [*REDRIVE, "up", "--config", str(home / "redrive.yaml"), "--host", "127.0.0.1", "--port", str(port)]
    proc = procs.start(name, [*argv, "--processes", str(processes)], env)
    wait_healthy(proc, f"http://127.0.0.1:{port}/healthz", procs.workdir / f"{name}.log")
    return f"http://127.0.0.1:{port}", db, proc.pid


def sql(db: Path, query: str) -> Any:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
        return connection.execute(query).fetchone()[0]


def end_to_end(
    args: argparse.Namespace,
    procs: Procs,
    n: int,
    processes: int = 1,
    trigger_extra: str = "",
    tag: str = "",
    rate: float | None = None,
    ordering_keys: int = 0,
    body: bytes | Callable[[str], bytes] = E2E_BODY,
) -> dict[str, Any]:
    """One end-to-end run (``trigger_extra``: more YAML for the trigger; ``tag`` names the run's processes; ``rate``
    paces the senders at that many events/s, None: as fast as they can; ``ordering_keys``: see ``start_redrive``;
    ``body``: the events, as ``benchkit.send_events`` takes them, each keyed ``e2e-N``)."""
    sink_port = start_sink(procs, f"sink-{tag}{n}-{processes}")
    name = f"redrive-e2e-{tag}{n}-{processes}"
    base, db, pid = start_redrive(
        procs, name, sink_port, args.concurrency, args.log_level, processes, ordering_keys, trigger_extra
    )
    cpu_before = cpu_seconds(pid)
    first_post = datetime.now(UTC)
    t0 = time.perf_counter()

    keys = [f"e2e-{n}" for n in range(args.events)]
    sent = asyncio.run(send_events([f"{base}/hooks/bench"], keys, args.connections, body, args.e2e_timeout, rate))
    rejected = sent.refused + sent.errors
    sent_s = time.perf_counter() - t0
    deadline = time.monotonic() + args.e2e_timeout
    while (done := int(sql(db, "SELECT count(*) FROM executions WHERE status='succeeded'"))) < args.events:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    last = sql(db, "SELECT max(finished_at) FROM executions WHERE status='succeeded'")
    span = (datetime.fromisoformat(str(last)).replace(tzinfo=UTC) - first_post).total_seconds() if last else wall
    received = int(sink_counts(sink_port)["posts"])
    cpu = cpu_seconds(pid) - cpu_before
    writer = writer_counters(base)
    return {
        "processes": processes,
        "events": args.events,
        "rejected": rejected,
        "succeeded": done,
        "sink_received": received,
        "send_seconds": round(sent_s, 3),
        "seconds": round(span, 3),
        "executions_per_s": round(done / span, 1),
        "cpu": round(cpu / wall, 2),
        "cpu_seconds": round(cpu, 3),
        "cpu_ms_per_event": round(cpu * 1000 / max(done, 1), 3),
        "complete": done >= args.events and received == args.events,
        "writer": writer,
    }


WRITER_COUNTERS = ("transactions", "jobs", "busy_seconds", "cpu_seconds")


def writer_counters(base: str) -> dict[str, float]:
    """The group-commit writer's counters from ``/metrics`` (``redrive_writer_*_total``), summed over the writer
    threads of every process of the run: how many transactions and jobs it ran, and its busy and CPU seconds."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        text = response.read().decode()
    found = dict.fromkeys(WRITER_COUNTERS, 0.0)
    for line in text.splitlines():
        for name in WRITER_COUNTERS:
            if line.startswith(f"redrive_writer_{name}_total"):
                found[name] += float(line.rsplit(" ", 1)[1])
    return found


@dataclass
class Pair:
    """One baseline run and the redrive ingest run right after it, with the rows the ingest run left."""

    base: Load
    ingest: Load
    rows: int
    durable: bool

    @property
    def ratio(self) -> float:
        return self.ingest.rps / self.base.rps if self.base.rps else 0.0


def span(values: list[float], fmt: str) -> str:
    """``low-high`` (or the one value) formatted with ``fmt``."""
    low, high = min(values), max(values)
    return format(low, fmt) if low == high else f"{low:{fmt}}-{high:{fmt}}"


def report(args: argparse.Namespace, pairs: list[Pair], e2es: list[dict[str, Any]]) -> dict[str, Any]:
    """Print every run and the ranges; return the figures for latest.json."""
    ratios = [p.ratio for p in pairs]
    p99s = [p.ingest.p99_ms for p in pairs]
    rates = [float(e["executions_per_s"]) for e in e2es if e["processes"] == args.processes]
    # A target is met when the median run meets it: one lucky (or unlucky) run decides nothing.
    targets: dict[str, bool] = {}
    if pairs:
        targets["ingest_ratio"] = statistics.median(ratios) >= 0.6
        targets["ingest_p99"] = statistics.median(p99s) < 50
    if e2es:
        targets["e2e_executions_per_s"] = statistics.median(rates) >= 1500
    mark = {name: "PASS" if ok else "MISS" for name, ok in targets.items()}
    print(
        f"\nmachine: {os.cpu_count()} CPU(s), Python {platform.python_version()}, load average (1 min) "
        f"{args.load_before:.2f} before, {os.getloadavg()[0]:.2f} after; generator: {args.generator}; "
        f"{args.connections} connections, {args.duration:g} s per run, redrive log level {args.log_level}"
    )
    print(f"{'':22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'sock err':>9}{'cpu':>6}{'ratio':>7}")
    for n, pair in enumerate(pairs, 1):
        for name, load in ((f"#{n} baseline FastAPI", pair.base), (f"#{n} redrive ingest", pair.ingest)):
            ratio = f"{pair.ratio:7.2f}" if load is pair.ingest else ""
            print(
                f"{name:22}{load.rps:10.0f}{load.p50_ms:9.2f}{load.p99_ms:9.2f}{load.non2xx:9d}"
                f"{load.socket_errors:9d}{load.cpu:6.2f}{ratio}"
            )
    how = "must be equal" if args.generator != "wrk" else f"wrk may leave up to {args.connections} in flight uncounted"
    for n, pair in enumerate(pairs, 1):
        print(
            f"durability #{n}: {pair.rows} rows in events, {pair.ingest.ok} 2xx seen by the generator ({how}): "
            f"{'consistent' if pair.durable else 'INCONSISTENT'}"
        )
    for e2e in e2es:
        print(
            f"end to end, {e2e['processes']} process(es): {e2e['succeeded']}/{e2e['events']} succeeded"
            f"{'' if e2e['complete'] else ' (INCOMPLETE)'} in {e2e['seconds']} s = {e2e['executions_per_s']:.0f} "
            f"executions/s; sink received {e2e['sink_received']}, rejected at ingest {e2e['rejected']}, sending took "
            f"{e2e['send_seconds']} s, ordering keys {args.ordering_keys or 'none'}, "
            f"server cpu {e2e['cpu']} ({e2e['cpu_ms_per_event']} ms/event)"
        )
    scaling = process_ratios(args, e2es)
    print()
    ranges: dict[str, list[float]] = {}
    if pairs:
        ranges["ratio"] = [round(min(ratios), 3), round(max(ratios), 3)]
        ranges["ingest_p99_ms"] = [round(min(p99s), 1), round(max(p99s), 1)]
        print(
            f"ratio redrive/baseline: {span(ratios, '.2f')}  [target >= 0.60: {mark['ingest_ratio']}]\n"
            f"ingest p99: {span(p99s, '.1f')} ms (baseline {span([p.base.p99_ms for p in pairs], '.1f')} ms)  "
            f"[target < 50 ms: {mark['ingest_p99']}]"
        )
    if e2es:
        ranges["e2e_executions_per_s"] = [min(rates), max(rates)]
        print(f"end to end: {span(rates, '.0f')} executions/s  [target >= 1500: {mark['e2e_executions_per_s']}]")
    if scaling:
        speed, cost = [r[0] for r in scaling], [r[1] for r in scaling]
        ranges["processes_rate_ratio"] = [round(min(speed), 3), round(max(speed), 3)]
        targets["processes_rate_ratio"] = statistics.median(speed) >= 1.5
        print(
            f"--processes {args.processes} / --processes 1, same round: rate {span(speed, '.2f')} (median "
            f"{statistics.median(speed):.2f}, target >= 1.50), cpu per event {span(cost, '.2f')} (median "
            f"{statistics.median(cost):.2f})"
        )
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "args": vars(args),
        "runs": [
            {
                "baseline": {**asdict(p.base), "rps": round(p.base.rps, 1)},
                "ingest": {**asdict(p.ingest), "rps": round(p.ingest.rps, 1), "rows": p.rows, "durable": p.durable},
                "ratio": round(p.ratio, 3),
            }
            for p in pairs
        ],
        "e2e": e2es,
        "ranges": ranges,
        "targets": targets,
    }


def process_ratios(args: argparse.Namespace, e2es: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Per round: (rate, CPU per event) of ``--processes N`` divided by those of one process in the same round."""
    if args.processes == 1:
        return []
    singles = [e for e in e2es if e["processes"] == 1]
    many = [e for e in e2es if e["processes"] == args.processes]
    return [
        (m["executions_per_s"] / s["executions_per_s"], m["cpu_ms_per_event"] / s["cpu_ms_per_event"])
        for s, m in zip(singles, many, strict=False)
        if s["executions_per_s"] and s["cpu_ms_per_event"]
    ]


def ingest_pair(args: argparse.Namespace, procs: Procs, n: int) -> Pair:
    """Measure the bare endpoint, then redrive's ingest right after it under the same load."""
    print(f"#{n} baseline: bare FastAPI/uvicorn, {args.duration:g} s ...", flush=True)
    port = free_port()
    app = procs.start(f"baseline-{n}", [sys.executable, "-c", BASELINE_SRC, str(port)])
    wait_healthy(app, f"http://127.0.0.1:{port}/healthz", procs.workdir / f"baseline-{n}.log")
    base = drive(args, f"http://127.0.0.1:{port}/hooks/bench", app.pid, procs.workdir)
    procs.stop(app)
    print(f"#{n} redrive ingest (no worker) ...", flush=True)
    url, db, pid = start_redrive(
        procs, f"redrive-ingest-{n}", 9, worker_concurrency=0, log_level=args.log_level, processes=args.processes
    )
    ingest = drive(args, f"{url}/hooks/bench", pid, procs.workdir)
    time.sleep(0.5)  # let commits of requests wrk abandoned in flight land
    rows = int(sql(db, "SELECT count(*) FROM events"))
    procs.stop_all()
    exact = args.generator != "wrk"
    durable = rows == ingest.ok if exact else ingest.ok <= rows <= ingest.ok + args.connections
    return Pair(base, ingest, rows, durable)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run (default 10)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (default 64)")
    parser.add_argument("--events", type=int, default=20_000, help="events for the end-to-end run (default 20000)")
    parser.add_argument("--concurrency", type=int, default=64, help="redrive worker concurrency, end to end")
    parser.add_argument("--e2e-timeout", type=float, default=300.0, help="longest send, then longest wait (s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (default 3)")
    parser.add_argument("--log-level", default="info", help="redrive's REDRIVE_LOG_LEVEL (default: its own, info)")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--only", choices=["ingest", "e2e"], help="run one part (the other's figures are left out)")
    parser.add_argument("--ordering-keys", type=int, default=0, help="end to end: order the trigger by N keys")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="redrive up --processes N (default 1); above 1, each end-to-end round also runs one process, interleaved",
    )
    args = parser.parse_args()
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "python"
        if args.generator == "python":
            print("wrk not found (Debian/Ubuntu: apt-get install -y wrk); using the Python aiohttp generator")
    elif args.generator == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed: apt-get install -y wrk (or use --generator python)")
    args.load_before = os.getloadavg()[0]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally block runs
    pairs: list[Pair] = []
    e2es: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="redrive-bench-") as tmp:
        procs = Procs(Path(tmp))
        try:
            for n in range(1, args.repeat + 1 if args.only != "e2e" else 1):
                pairs.append(ingest_pair(args, procs, n))
            for n in range(1, args.repeat + 1 if args.only != "ingest" else 1):
                for processes in sorted({1, args.processes}):
                    print(
                        f"#{n} end to end: {args.events} events, {processes} process(es), worker concurrency "
                        f"{args.concurrency} each ...",
                        flush=True,
                    )
                    e2es.append(end_to_end(args, procs, n, processes, ordering_keys=args.ordering_keys))
                    procs.stop_all()
        finally:
            procs.stop_all()
    figures = report(args, pairs, e2es)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "latest.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {HERE / 'results' / 'latest.json'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every server this run started has been stopped", file=sys.stderr)
        sys.exit(130)
