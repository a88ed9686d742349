"""Several processes writing one SQLite file: does each process's group-commit writer help or hurt? A figure.

    python benchmarks/sqlite_writers.py [--processes 2] [--transactions 600] [--rows 20] [--repeat 3]

Each process does what a redrive writer does, with the connection set up as ``redrive.db.engine`` sets it up (WAL,
``synchronous=FULL``, a 10 s busy timeout, ``BEGIN IMMEDIATE``): a transaction inserts ``--rows`` rows of 1 KB and
spends 0.3 ms of CPU inside it (the jobs' Python), commits (an fsync), then spends 1 ms of CPU outside it (the event
loop's share: HTTP, templates, the action). Two ways of waiting for the write lock are compared, interleaved:

- ``busy``: SQLite's busy handler alone, which polls the lock with sleeps of 1, 2, 5, 10 ... up to 100 ms;
- ``flock``: an exclusive ``flock`` on ``<database>-writer`` taken before ``BEGIN IMMEDIATE`` and released after the
  commit (what redrive does), so the kernel wakes the next writer as soon as the lock is free.

Figures: transactions per second over all processes, the ratio to one process with the same handoff in the same
round, and each process's seconds spent waiting for the lock (unequal waits mean one process starves the other).
"""

from __future__ import annotations

import argparse
import fcntl
import multiprocessing
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

INSIDE, OUTSIDE = 0.0003, 0.001  # seconds of CPU per transaction inside and outside the write lock


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def writer(db: str, transactions: int, rows: int, handoff: str, results: multiprocessing.Queue[float]) -> None:
    connection = sqlite3.connect(db, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=10000"):
        connection.execute(f"PRAGMA {pragma}")
    turn = os.open(db + "-writer", os.O_RDWR | os.O_CREAT) if handoff == "flock" else None
    waited, row = 0.0, ("x" * 1024,)
    for _ in range(transactions):
        asked = time.perf_counter()
        if turn is not None:
            fcntl.flock(turn, fcntl.LOCK_EX)
        connection.execute("BEGIN IMMEDIATE")
        waited += time.perf_counter() - asked
        connection.executemany("INSERT INTO t (body) VALUES (?)", [row] * rows)
        spin(INSIDE)
        connection.execute("COMMIT")
        if turn is not None:
            fcntl.flock(turn, fcntl.LOCK_UN)
        spin(OUTSIDE)
    results.put(waited)


def run(directory: Path, processes: int, handoff: str, args: argparse.Namespace) -> tuple[float, list[float]]:
    """(transactions per second, seconds each process waited for the lock) on a fresh database."""
    db = str(directory / f"{handoff}-{processes}-{time.monotonic_ns()}.db")
    with sqlite3.connect(db, isolation_level=None) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    results: multiprocessing.Queue[float] = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=writer, args=(db, args.transactions, args.rows, handoff, results))
        for _ in range(processes)
    ]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    waits = sorted(results.get() for _ in workers)
    for worker in workers:
        worker.join()
    return processes * args.transactions / (time.perf_counter() - began), waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="writers sharing the file (default 2)")
    parser.add_argument("--transactions", type=int, default=600, help="transactions per process (default 600)")
    parser.add_argument("--rows", type=int, default=20, help="rows per transaction (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    args = parser.parse_args()
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPU(s)")
    ratios: dict[str, list[float]] = {"busy": [], "flock": []}
    with tempfile.TemporaryDirectory(prefix="redrive-sqlite-writers-") as tmp:
        for round_ in range(1, args.repeat + 1):
            for handoff in ("busy", "flock"):
                one, _ = run(Path(tmp), 1, handoff, args)
                many, waits = run(Path(tmp), args.processes, handoff, args)
                ratios[handoff].append(many / one)
                print(
                    f"round {round_} {handoff:5}: 1 process {one:6.0f} tx/s, {args.processes} processes {many:6.0f} "
                    f"tx/s (x{many / one:.2f}); seconds waiting for the lock per process {[round(w, 2) for w in waits]}"
                )
    for handoff, values in ratios.items():
        print(f"{handoff:5}: {args.processes} processes / 1, median x{statistics.median(values):.2f}")
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
