"""redrive against the peers users build today, end to end, the same work for every system. A figure, not a test.

    uv sync --group bench
    uv run python benchmarks/peers.py [--events 20000] [--connections 64] [--repeat 3] [--processes 2] \
        [--systems redrive-sqlite,redrive-sqlite-n,redrive-pg,redrive-pg-n,celery,procrastinate] [--max-load L] \
        [--force]

The work, for every system: ``--events`` HTTP POSTs of a 1 KB JSON event, each with a unique ``Idempotency-Key``,
from ``--connections`` concurrent senders; each system stores the event (or its job) before it answers 2xx, then
POSTs it once to a local sink. Load generator (this process), sink and servers share the machine's cores.

- ``redrive-sqlite``: ``redrive up --processes 1`` on a fresh SQLite file (worker in the same process).
- ``redrive-sqlite-n``: ``redrive up --processes N`` (``--processes``) on a fresh SQLite file: N processes sharing
  the one port and the file.
- ``redrive-pg``: ``redrive up --processes 1`` on a fresh PostgreSQL database this script creates and drops.
- ``redrive-pg-n``: ``redrive up --processes N`` on a fresh PostgreSQL database, one port.
- ``celery``: FastAPI + Celery + Redis (``peer_apps/celery_app.py``): Redis ``SET NX`` on the key, one task
  published per request, prefork worker with one child per core, the task POSTs to the sink.
- ``procrastinate``: FastAPI + Procrastinate (``peer_apps/procrastinate_app.py``): one job deferred per request
  with the key as its ``queueing_lock``, a worker with ``--concurrency`` jobs at once, the job POSTs to the sink.

The figure is events / (first POST .. the sink's arrival of the last new key). The sink counts unique keys and
duplicates, and after each run the keys it received are compared with the keys sent: a lost event (accepted or not)
fails the script with exit code 1; duplicates are reported. ``cpu ms/event`` is the CPU time of the system's own
processes (psutil, children included) per event; ``store ms/event`` that of its store's server (the PostgreSQL
backends of the run's database, or redis-server; SQLite runs inside redrive). ``generator + sink ms/event`` is what
the harness itself burns on the shared cores, and ``busy cores`` the whole machine's non-idle CPU over the run: near
the core count, the box is saturated, and a system goes faster only by spending less CPU per event. Each run starts
every process and the store afresh. The systems are interleaved: round ``r`` runs each system once (in an order
rotated per round), so each ratio compares runs minutes apart, not a slot when the machine happened to be slow.
``ratio`` divides a system's rate by the best peer's (Celery or Procrastinate) in the same round; ``vs 1 process``
divides a ``-n`` system's rate and CPU per event by those of the same redrive on one process in the same round; the
table shows medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
from benchkit import (
    Procs,
    event_body,
    free_port,
    fresh_database,
    guard_quiet,
    load_average,
    pg_backends_cpu,
    send_events,
    sink_counts,
    sink_keys,
    start_sink,
    tree_cpu_seconds,
    wait_healthy,
)

HERE = Path(__file__).resolve().parent
APPS = HERE / "peer_apps"
REDRIVE = [sys.executable, "-c", "from redrive.cli import main; main()"]
UVICORN = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--loop", "uvloop", "--http", "httptools"]
SYSTEMS = ("redrive-sqlite", "redrive-sqlite-n", "redrive-pg", "redrive-pg-n", "celery", "procrastinate")
PEERS = ("celery", "procrastinate")


@dataclass
class Deployment:
    """A started system: where to POST, which processes are its own, and the CPU seconds of its store so far."""

    urls: list[str]
    pids: list[int]
    store_cpu: Callable[[], float] = lambda: 0.0
    teardown: list[Callable[[], object]] = field(default_factory=list)


@dataclass
class Run:
    """One run of one system: what the senders saw, what the sink received, and the CPU it cost."""

    system: str
    round: int
    events: int
    accepted: int
    refused: int
    errors: int
    delivered: int  # unique keys of this run that reached the sink
    duplicates: int
    unknown: int  # keys the sink received that this run never sent
    seconds: float
    send_seconds: float  # until the last sender had its answer: the ingest half alone
    cpu_ms: float
    store_ms: float
    harness_ms: float  # the load generator (this process) and the sink, per event
    busy_cores: float  # the whole machine's busy CPU seconds per wall second over the run (2.0 = both cores full)
    smallest_body: int
    load: float

    @property
    def lost(self) -> int:
        return self.events - self.delivered

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


def redrive_config(sink_port: int) -> str:
    """redrive's trigger file (JSON, which is YAML): one http trigger posting each event to the sink, a header and
    three JSON leaves rendered from it, as the peers' apps send them."""
    trigger = {
        "name": "bench",
        "action": {
            "kind": "http",
            "url": f"http://127.0.0.1:{sink_port}/sink",
            "allow": ["127.0.0.1"],
            "headers": {"X-Key": "{{ event.idempotency_key }}"},
            "json": {"key": "{{ payload.key }}", "type": "{{ payload.type }}", "data": "{{ payload.data }}"},
        },
    }
    return json.dumps({"triggers": [trigger]})


def deploy_redrive(args: argparse.Namespace, procs: Procs, sink_port: int, system: str) -> Deployment:
    home = procs.workdir / system
    home.mkdir()
    (home / "redrive.yaml").write_text(redrive_config(sink_port))
    deployment = Deployment([], [])
    if system.startswith("redrive-sqlite"):
        url = f"sqlite:///{home / 'redrive.db'}"
    else:
        name, dsn, drop = fresh_database(args.pg, "redrive_peers")
        deployment.teardown.append(drop)
        deployment.store_cpu = pg_backends_cpu(args.pg, name)
        url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    count = args.processes if system.endswith("-n") else 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_")}
    env |= {"REDRIVE_DATABASE_URL": url, "REDRIVE_WORKER_CONCURRENCY": str(args.concurrency)}
    port = free_port()
    argv = [*REDRIVE, "up", "--config", str(home / "redrive.yaml"), "--host", "127.0.0.1", "--port", str(port)]
    proc = procs.start(system, [*argv, "--processes", str(count)], env, cwd=home)  # PostgreSQL: token file in cwd
    wait_healthy(proc, f"http://127.0.0.1:{port}/healthz", procs.workdir / f"{system}.log", timeout=60)
    deployment.urls.append(f"http://127.0.0.1:{port}/hooks/bench")
    deployment.pids.append(proc.pid)  # its children (the N processes) are counted with it
    return deployment


def deploy_celery(args: argparse.Namespace, procs: Procs, sink_port: int) -> Deployment:
    import redis  # the bench group's; imported here so the redrive-only systems run without it

    broker = f"redis://127.0.0.1:6379/{args.redis_db}"
    client = redis.Redis.from_url(broker)
    client.flushdb()
    server_pid = int(client.info("server")["process_id"])

    def redis_cpu() -> float:
        t = psutil.Process(server_pid).cpu_times()
        return float(t.user + t.system)

    env = {**os.environ, "BENCH_REDIS_URL": broker, "BENCH_SINK_URL": f"http://127.0.0.1:{sink_port}/sink"}
    worker = procs.start(
        "celery-worker",
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork",
         "--concurrency", str(os.cpu_count() or 1), "--loglevel", "WARNING"],
        env,
        cwd=APPS,
    )  # fmt: skip
    port = free_port()
    front = procs.start("celery-api", [*UVICORN, "--port", str(port), "--no-access-log", "celery_app:api"], env, APPS)
    wait_healthy(front, f"http://127.0.0.1:{port}/healthz", procs.workdir / "celery-api.log")
    return Deployment(
        [f"http://127.0.0.1:{port}/events"],
        [front.pid, worker.pid],
        redis_cpu,
        [client.flushdb],
    )


def deploy_procrastinate(args: argparse.Namespace, procs: Procs, sink_port: int) -> Deployment:
    name, dsn, drop = fresh_database(args.pg, "procrastinate_peers")
    env = {**os.environ, "BENCH_PG_DSN": dsn, "BENCH_PG_POOL": str(args.pg_pool)}
    env["BENCH_SINK_URL"] = f"http://127.0.0.1:{sink_port}/sink"
    cli = [sys.executable, "-m", "procrastinate", "--app=procrastinate_app.app"]
    subprocess.run([*cli, "schema", "--apply"], env=env, cwd=APPS, check=True, capture_output=True, timeout=60)
    worker = procs.start("procrastinate-worker", [*cli, "worker", "--concurrency", str(args.concurrency)], env, APPS)
    port = free_port()
    front = procs.start(
        "procrastinate-api", [*UVICORN, "--port", str(port), "--no-access-log", "procrastinate_app:api"], env, APPS
    )
    wait_healthy(front, f"http://127.0.0.1:{port}/healthz", procs.workdir / "procrastinate-api.log")
    deployment = Deployment([f"http://127.0.0.1:{port}/events"], [front.pid, worker.pid], teardown=[drop])
    deployment.store_cpu = pg_backends_cpu(args.pg, name)
    return deployment


def deploy(args: argparse.Namespace, procs: Procs, sink_port: int, system: str) -> Deployment:
    if system == "celery":
        return deploy_celery(args, procs, sink_port)
    if system == "procrastinate":
        return deploy_procrastinate(args, procs, sink_port)
    return deploy_redrive(args, procs, sink_port, system)


def wait_delivered(sink_port: int, target: int, stall: float) -> dict[str, float]:
    """Poll the sink until ``target`` unique keys arrived, or none arrived for ``stall`` seconds."""
    counts = sink_counts(sink_port)
    progress = (counts["unique"], time.monotonic())
    while counts["unique"] < target:
        if time.monotonic() - progress[1] > stall:
            break
        time.sleep(0.05)
        counts = sink_counts(sink_port)
        if counts["unique"] != progress[0]:
            progress = (counts["unique"], time.monotonic())
    return counts


def measure(args: argparse.Namespace, workdir: Path, system: str, round_: int) -> Run:
    """One run of one system, every process and the store started afresh and stopped after."""
    procs = Procs(workdir / f"{round_}-{system}")
    procs.workdir.mkdir()
    deployment = Deployment([], [])
    try:
        sink_port = start_sink(procs, "sink")
        sink_pid = procs.running[-1].pid
        deployment = deploy(args, procs, sink_port, system)
        body = event_body()
        # Warm-up: one event through each front proves the whole chain works before the clock starts.
        warm = [f"warm-{n}" for n in range(len(deployment.urls))]
        asyncio.run(send_events(deployment.urls, warm, len(warm), body, 60))
        if wait_delivered(sink_port, len(warm), 60)["unique"] < len(warm):
            raise RuntimeError(f"{system}: the warm-up events never reached the sink; see the logs in {procs.workdir}")
        keys = [f"{round_}-{n:08d}" for n in range(args.events)]
        load = load_average()
        harness = [os.getpid(), sink_pid]
        cpu0, store0, harness0 = tree_cpu_seconds(deployment.pids), deployment.store_cpu(), own_cpu(harness)
        machine0, began = machine_busy_seconds(), time.time()
        sent = asyncio.run(send_events(deployment.urls, keys, args.connections, body, args.timeout))
        wait_delivered(sink_port, len(warm) + args.events, args.stall)
        cpu = tree_cpu_seconds(deployment.pids) - cpu0
        store = deployment.store_cpu() - store0
        harness_cpu = own_cpu(harness) - harness0
        busy = (machine_busy_seconds() - machine0) / max(time.time() - began, 1e-9)
        time.sleep(args.settle)  # a late duplicate would arrive now; a later one is not counted
        counts = sink_counts(sink_port)
        received = sink_keys(sink_port) - set(warm)
    finally:
        procs.stop_all()
        for step in deployment.teardown:
            step()
    delivered = len(received & set(keys))
    return Run(
        system=system,
        round=round_,
        events=args.events,
        accepted=sent.accepted,
        refused=sent.refused,
        errors=sent.errors,
        delivered=delivered,
        duplicates=int(counts["duplicates"]),
        unknown=len(received) - delivered,
        seconds=max(float(counts["last"]) - began, 1e-9),
        send_seconds=sent.seconds,
        cpu_ms=cpu * 1000 / args.events,
        store_ms=store * 1000 / args.events,
        harness_ms=harness_cpu * 1000 / args.events,
        busy_cores=busy,
        smallest_body=int(counts["smallest_body"] or 0),
        load=load,
    )


def own_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of these processes themselves (not their children)."""
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores, all processes) since boot."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def ratios(runs: list[Run]) -> dict[tuple[str, int], float]:
    """Each run's rate divided by the best peer's rate in the same round (absent when no peer ran)."""
    out: dict[tuple[str, int], float] = {}
    for run in runs:
        peers = [r.rate for r in runs if r.round == run.round and r.system in PEERS]
        if peers and max(peers) > 0:
            out[(run.system, run.round)] = run.rate / max(peers)
    return out


def scaling(runs: list[Run]) -> dict[tuple[str, int], tuple[float, float]]:
    """Each ``-n`` run's (rate, CPU per event) divided by those of the same redrive on one process, same round."""
    out: dict[tuple[str, int], tuple[float, float]] = {}
    for run in runs:
        if not run.system.endswith("-n"):
            continue
        single = [r for r in runs if r.round == run.round and r.system == run.system.removesuffix("-n")]
        if single and single[0].rate > 0 and single[0].cpu_ms > 0:
            out[(run.system, run.round)] = (run.rate / single[0].rate, run.cpu_ms / single[0].cpu_ms)
    return out


def report(args: argparse.Namespace, runs: list[Run], load_before: float) -> bool:
    """Print every run and the table of medians; return whether every event was delivered."""
    ratio = ratios(runs)
    versus = scaling(runs)
    print("\nruns:")
    for r in runs:
        lost = f"LOST {r.lost}" if r.lost else "lost 0"
        rel = ratio.get((r.system, r.round))
        key = (r.system, r.round)
        print(
            f"  round {r.round} {r.system:15} {r.rate:8.0f} events/s in {r.seconds:6.2f} s (answered in "
            f"{r.send_seconds:.2f} s)  {lost}, duplicates {r.duplicates}, unknown {r.unknown}, 2xx "
            f"{r.accepted}/{r.events} (refused {r.refused}, errors {r.errors}), cpu {r.cpu_ms:.2f} ms/event, "
            f"store {r.store_ms:.2f} ms/event, load generator + sink {r.harness_ms:.2f} ms/event, machine busy "
            f"{r.busy_cores:.2f} cores, smallest body {r.smallest_body} B, load {r.load:.2f}"
            + (f", ratio {rel:.2f}" if rel is not None else "")
            + (f", vs 1 process: rate x{versus[key][0]:.2f}, cpu/event x{versus[key][1]:.2f}" if key in versus else "")
        )
    print(
        f"\n{args.events} events x {args.repeat} round(s), {args.connections} senders, {os.cpu_count()} CPU(s), "
        f"Python {platform.python_version()}; medians over the rounds; ratio = rate / best peer's in the same round"
    )
    print(
        "| system | events/s | range | ratio to best peer | vs 1 process (rate, cpu/event) | cpu ms/event "
        "| store ms/event | generator + sink ms/event | busy cores | lost | duplicated |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for system in args.systems:
        mine = [r for r in runs if r.system == system]
        if not mine:
            continue
        rates = [r.rate for r in mine]
        rels = [ratio[(r.system, r.round)] for r in mine if (r.system, r.round) in ratio]
        median_ratio = f"{statistics.median(rels):.2f}" if rels else "n/a"
        scaled = [versus[(r.system, r.round)] for r in mine if (r.system, r.round) in versus]
        vs_one = (
            f"{statistics.median(v[0] for v in scaled):.2f}, {statistics.median(v[1] for v in scaled):.2f}"
            if scaled
            else "n/a"
        )
        print(
            f"| {system} | {statistics.median(rates):,.0f} | {min(rates):,.0f}-{max(rates):,.0f} | "
            f"{median_ratio} | {vs_one} | {statistics.median(r.cpu_ms for r in mine):.2f} | "
            f"{statistics.median(r.store_ms for r in mine):.2f} | "
            f"{statistics.median(r.harness_ms for r in mine):.2f} | "
            f"{statistics.median(r.busy_cores for r in mine):.2f} | {sum(r.lost for r in mine)} | "
            f"{sum(r.duplicates for r in mine)} |"
        )
    print(f"\nload average (1 min): {load_before:.2f} before, {load_average():.2f} after")
    if "celery" in args.systems:
        print(f"redis persistence (what Celery's 202 is worth): {args.redis_persistence}")
    complete = all(r.lost == 0 and r.unknown == 0 for r in runs)
    if not complete:
        print("\nFAILED: events were lost (see LOST above): these figures do not count", file=sys.stderr)
    return complete


def redis_persistence(db: int) -> str:
    """The Redis server's persistence settings, which decide what Celery's 202 is worth."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    try:
        config = client.config_get("append*") | client.config_get("save")
    except redis.ConnectionError as exc:
        raise SystemExit(f"Redis does not answer on 127.0.0.1:6379 (Celery's broker): {exc}") from exc
    return ", ".join(f"{k}={v!r}" for k, v in sorted(config.items()))


def check_postgres(admin_dsn: str) -> None:
    try:
        psycopg.connect(admin_dsn, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        raise SystemExit(f"PostgreSQL does not answer at {admin_dsn}: {exc}") from exc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per run (default 20000)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent senders (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each runs every system once (default 3)")
    parser.add_argument("--processes", type=int, default=2, help="--processes of the -n systems (default 2)")
    parser.add_argument("--concurrency", type=int, default=64, help="jobs at once per redrive/procrastinate worker")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin DSN")
    parser.add_argument("--pg-pool", type=int, default=16, help="procrastinate's connections per process")
    parser.add_argument("--redis-db", type=int, default=13, help="Redis database number the run owns and flushes")
    parser.add_argument("--max-load", type=float, default=0.5 * (os.cpu_count() or 1), help="quiet threshold")
    parser.add_argument("--force", action="store_true", help="run even when the load average is above --max-load")
    parser.add_argument("--timeout", type=float, default=600.0, help="longest time the senders may take (s)")
    parser.add_argument("--stall", type=float, default=60.0, help="give up after this long with no new delivery (s)")
    parser.add_argument("--settle", type=float, default=1.0, help="wait after the last delivery for duplicates (s)")
    args = parser.parse_args()
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if unknown := set(args.systems) - set(SYSTEMS):
        parser.error(f"unknown system(s) {', '.join(sorted(unknown))}; choose from {', '.join(SYSTEMS)}")
    if args.processes < 1 or args.events < 1 or args.repeat < 1:
        parser.error("--processes, --events and --repeat must be at least 1")
    if set(args.systems) & set(PEERS):
        try:
            import celery  # type: ignore[import-untyped]  # noqa: F401
            import procrastinate  # noqa: F401
        except ImportError:
            parser.error("the peers are not installed: run `uv sync --group bench` first")
    load_before = guard_quiet(args.max_load, args.force)
    if "celery" in args.systems:
        args.redis_persistence = redis_persistence(args.redis_db)
    if {"redrive-pg", "redrive-pg-n", "procrastinate"} & set(args.systems):
        check_postgres(args.pg)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks run
    runs: list[Run] = []
    workdir = Path(tempfile.mkdtemp(prefix="redrive-peers-"))  # each process logs here; kept when a run fails
    for round_ in range(1, args.repeat + 1):
        shift = (round_ - 1) % len(args.systems)
        for system in args.systems[shift:] + args.systems[:shift]:
            print(f"round {round_}: {system}, {args.events} events ...", flush=True)
            try:
                run = measure(args, workdir, system, round_)
            except Exception:
                print(f"{system} failed; its processes' logs are in {workdir / f'{round_}-{system}'}", file=sys.stderr)
                raise
            runs.append(run)
            print(f"  {run.rate:,.0f} events/s, lost {run.lost}, duplicates {run.duplicates}", flush=True)
    complete = report(args, runs, load_before)
    if complete:
        shutil.rmtree(workdir)
    else:
        print(f"the processes' logs are kept in {workdir}", file=sys.stderr)
    return 0 if complete else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every server this run started has been stopped", file=sys.stderr)
        sys.exit(130)
