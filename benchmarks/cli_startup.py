"""How long the ``redrive`` command takes to start: a figure, not a test.

``uv run python benchmarks/cli_startup.py [--runs 10] [--set-url]``

Starts one ``redrive up`` (SQLite in a temporary folder, a free port, no worker) so that the commands that call the
API have something to answer them, then times, ``--runs`` times each and interleaved (this machine's CPU speed
changes from one second to the next, so each round runs every command once, one after another):

- the baseline: ``python -c pass`` with the same interpreter (what any Python program pays to start);
- ``redrive --help``;
- ``redrive stats``, ``redrive executions ls`` (the API), ``redrive tokens ls`` (the database),
  ``redrive config check`` (the trigger file).

Bytecode is written as on a user's machine (``PYTHONDONTWRITEBYTECODE`` is dropped: with it, every run compiles
every module it imports, which here tripled each figure) and one untimed round writes it first. Commands find the
server from ``REDRIVE_PORT``, as after ``make up``; ``--set-url`` also exports ``REDRIVE_URL``, for versions whose
CLI only read that. Each command runs through the installed ``redrive`` script next to the interpreter, as a user
runs it. It prints the load average before and after (a figure taken on a busy machine says little), each command's
range and median in seconds, and the median's ratio to the baseline's median. Targets: ``--help`` under 0.4 s, a
command that calls the API under 0.6 s.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "redrive.example.yaml"
REDRIVE = Path(sys.executable).parent / "redrive"
TARGETS = {"--help": 0.4, "stats": 0.6, "executions ls": 0.6}


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(directory: Path, env: dict[str, str], port: int) -> tuple[subprocess.Popen[bytes], str]:
    """``redrive up`` in ``directory``; returns it once /healthz answers, with its admin token."""
    server = subprocess.Popen(
        [str(REDRIVE), "up", "--config", str(CONFIG)],
        cwd=directory,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return server, (directory / "redrive-admin-token").read_text().strip()
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("redrive up did not answer /healthz within 60 s")


def time_once(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds one run of ``argv`` takes; exits when the command fails (a fast failure is no figure)."""
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv[1:]} failed with {result.returncode}: {result.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    """Time the commands and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="Runs of each command (interleaved).")
    parser.add_argument("--set-url", action="store_true", help="Also export REDRIVE_URL (for older CLIs).")
    parser.add_argument(
        "--plugins",
        default=None,
        help="REDRIVE_PLUGINS for the commands: '' lets no installed plugin in (a runtime install has none); "
        "unset, every installed one loads (the dev environment has the example Slack plugin).",
    )
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="redrive-cli-bench-") as folder:
        directory = Path(folder)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_") and k != "PYTHONDONTWRITEBYTECODE"}
        # No REDRIVE_URL: the commands find the server from REDRIVE_PORT, as they do after `make up`.
        env |= {"REDRIVE_PORT": str(port), "COLUMNS": "200"}
        if args.plugins is not None:
            env["REDRIVE_PLUGINS"] = args.plugins
        if args.set_url:
            env["REDRIVE_URL"] = f"http://127.0.0.1:{port}"
        env |= {"REDRIVE_DATABASE_URL": f"sqlite:///{directory / 'redrive.db'}", "REDRIVE_WORKER_CONCURRENCY": "0"}
        server, token = start_server(directory, env, port)
        env["REDRIVE_TOKEN"] = token
        redrive = [str(REDRIVE)]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "--help": [*redrive, "--help"],
            "stats": [*redrive, "stats"],
            "executions ls": [*redrive, "executions", "ls"],
            "tokens ls": [*redrive, "tokens", "ls"],
            "config check": [*redrive, "config", "check", str(CONFIG)],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        try:
            for argv in commands.values():  # once untimed: bytecode caches are written, files are in memory
                time_once(argv, env, directory)
            for _ in range(args.runs):
                for name, argv in commands.items():
                    times[name].append(time_once(argv, env, directory))
        finally:
            server.terminate()
            server.wait(30)
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    baseline = statistics.median(times["python -c pass"])
    print(f"{'command':<16} {'range s':>13} {'median s':>9} {'x baseline':>11}  target")
    for name, values in times.items():
        median = statistics.median(values)
        target = TARGETS.get(name)
        verdict = "" if target is None else f"< {target} s: {'met' if median < target else 'MISSED'}"
        print(f"{name:<16} {min(values):6.3f}-{max(values):6.3f} {median:9.3f} {median / baseline:11.1f}  {verdict}")


if __name__ == "__main__":
    main()
