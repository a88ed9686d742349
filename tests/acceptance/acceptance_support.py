"""Helpers for the acceptance suite: a real ``redrive up`` subprocess, the CLI as a subprocess, trigger files and a
slow command action that records when it starts and finishes.

Everything here is bounded in time: no wait without a timeout, and every process started is killed at teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REDRIVE = [sys.executable, "-c", "from redrive.cli import main; main()"]
START_TIMEOUT = 60.0  # importing redrive takes ~2-4 s here, much longer on a cold cache and a busy machine
CLI_TIMEOUT = 60.0
FAST_TIMINGS = {
    "REDRIVE_LEASE_SECONDS": "2",
    "REDRIVE_SWEEP_INTERVAL": "0.5",
    "REDRIVE_POLL_INTERVAL": "0.2",
}
PYCACHE = Path(tempfile.gettempdir()) / f"redrive-acceptance-pycache-{os.getuid()}"
TOKEN_FILE = "redrive-admin-token"
WIDE = {"COLUMNS": "1000"}  # keeps rich from wrapping output where wrapping is not what a test is about

SLOW_ACTION_SCRIPT = """\
import os, sys, time
n, marker, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
def note(what):
    with open(marker, "a", encoding="utf-8") as f:
        f.write(f"{what} {n} {os.getpid()}\\n")
note("start")
time.sleep(seconds)
note("done")
"""


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any REDRIVE_* setting or terminal size, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDRIVE_") and k not in {"COLUMNS", "LINES"}}
    env["PYTHONUNBUFFERED"] = "1"
    # Bytecode is cached outside the repository: without it every subprocess compiles its imports again (~2x slower).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(overrides)
    return env


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 1.0) -> tuple[int, bytes] | None:
    """GET ``url``: (status, body), or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return None


def post_json(url: str, body: Any, *, token: str | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    """POST a JSON body (with a bearer token when given) and decode the JSON answer."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def write_config(directory: Path, triggers: list[dict[str, Any]], name: str = "redrive.yaml") -> Path:
    """A trigger file (JSON is YAML) holding ``triggers``."""
    path = directory / name
    path.write_text(json.dumps({"triggers": triggers}, indent=2), encoding="utf-8")
    return path


def command_trigger(name: str, argv: list[str], **action: Any) -> dict[str, Any]:
    """A trigger whose action runs ``argv``."""
    return {"name": name, "action": {"kind": "command", "argv": argv, **action}}


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``redrive ARGS`` to completion and capture its output."""
    return subprocess.run(
        [*REDRIVE, *args],
        cwd=cwd,
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )


def run_cli_concurrently(
    *commands: tuple[list[str], dict[str, str] | None], cwd: Path, timeout: float = CLI_TIMEOUT
) -> list[subprocess.CompletedProcess[str]]:
    """Run independent ``redrive`` commands ((args, env) pairs) at the same time; results in the same order."""
    processes = [
        (
            args,
            subprocess.Popen(
                [*REDRIVE, *args],
                cwd=cwd,
                env=clean_env(**(env or {})),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
            ),
        )
        for args, env in commands
    ]
    deadline = time.monotonic() + timeout
    results = []
    try:
        for args, process in processes:
            stdout, stderr = process.communicate(timeout=max(0.1, deadline - time.monotonic()))
            results.append(subprocess.CompletedProcess([*REDRIVE, *args], process.returncode, stdout, stderr))
    finally:
        for _, process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
    return results


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """A completed CLI run, for assertion messages."""
    return f"exit {result.returncode}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@dataclass
class Server:
    """A ``redrive up`` subprocess serving on ``url``."""

    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path
    token: str | None = None  # the admin token created on the database's first start

    def logs(self) -> str:
        """Both output files, for assertion messages."""
        return (
            f"--- redrive stdout ({self.stdout.name}) ---\n{read_text(self.stdout)}\n"
            f"--- redrive stderr ({self.stderr.name}) ---\n{read_text(self.stderr)}"
        )

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None when still running after ``timeout`` s."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


@dataclass
class Launcher:
    """Starts ``redrive up`` subprocesses in ``directory`` and kills whatever is left at teardown."""

    directory: Path
    servers: list[Server] = field(default_factory=list)

    def popen(self, config: Path, port: int, env: dict[str, str]) -> Server:
        """Start ``redrive up`` without waiting for it."""
        run = len(self.servers) + 1
        stdout, stderr = self.directory / f"redrive-{run}.out", self.directory / f"redrive-{run}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [*REDRIVE, "up", "--config", str(config), "--port", str(port)],
                cwd=self.directory,
                env=clean_env(**WIDE, **env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        server = Server(process, f"http://127.0.0.1:{port}", stdout, stderr)
        self.servers.append(server)
        return server

    def start(self, config: Path, db_url: str, **env: str) -> Server:
        """Start ``redrive up`` on a free port with short timings and wait until ``/healthz`` answers."""
        settings = {"REDRIVE_DATABASE_URL": db_url, **FAST_TIMINGS, **env}
        for _ in range(3):
            server = self.popen(config, free_port(), settings)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and server.process.poll() is None:
                answer = http_get(f"{server.url}/healthz", timeout=0.5)
                if answer is not None and answer[0] == 200:
                    server.token = self.admin_token()
                    return server
                time.sleep(0.1)
            if server.process.poll() is None:
                server.kill()
                raise AssertionError(f"redrive did not answer /healthz within {START_TIMEOUT}s\n{server.logs()}")
            if "address already in use" not in server.logs().lower():
                raise AssertionError(f"redrive exited with {server.process.returncode} at start\n{server.logs()}")
        raise AssertionError(f"no free port after three tries\n{server.logs()}")

    def admin_token(self) -> str | None:
        """The admin token the first start saved (next to the SQLite file, else in the working directory)."""
        return read_text(self.directory / TOKEN_FILE).strip() or None

    def close(self) -> None:
        for server in self.servers:
            server.kill()


@dataclass
class SlowAction:
    """A command action that appends ``start N PID`` to a marker file, sleeps, then appends ``done N PID``."""

    script: Path
    marker: Path

    def argv(self, seconds: float) -> list[str]:
        return [sys.executable, str(self.script), "{{ payload.n }}", str(self.marker), str(seconds)]

    def pids(self, what: str, n: object) -> list[int]:
        """PIDs of the runs for event ``n`` that wrote ``what`` (start or done), in order."""
        return [int(p[2]) for p in self._lines() if p[0] == what and p[1] == str(n)]

    def _lines(self) -> list[list[str]]:
        return [parts for parts in (line.split() for line in read_text(self.marker).splitlines()) if len(parts) == 3]

    def log(self) -> str:
        return f"--- action marker ---\n{read_text(self.marker)}"

    def kill_leftovers(self) -> None:
        """Kill runs still going (a SIGKILLed redrive cannot take its action's process group with it)."""
        for pid in self._all_started():
            if str(self.script) in read_text(Path(f"/proc/{pid}/cmdline")):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _all_started(self) -> list[int]:
        return [int(parts[2]) for parts in self._lines() if parts[0] == "start"]
