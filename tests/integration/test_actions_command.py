"""The command action with real processes (the Python running the tests as the program)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from redrive.actions import Outcome
from redrive.actions.base import Action
from redrive.actions.command import OUTPUT_CAP, CommandAction
from redrive.plugins import builtin_registry
from redrive.triggers.config import parse_config

PY = sys.executable


def command_action(argv: list[str], **options: Any) -> CommandAction:
    doc = {"triggers": [{"name": "t", "action": {"kind": "command", "argv": argv, **options}}]}
    action = parse_config(yaml.safe_dump(doc), env={}).triggers[0].action
    assert isinstance(action, CommandAction)
    return action


def run(action: CommandAction, payload: dict[str, Any] | None = None) -> Outcome:
    async def scenario() -> Outcome:
        runner = builtin_registry().build(action)
        rendered = runner.render({"payload": payload or {}, "headers": {}, "event": {}, "trigger": {}})
        return await runner.execute(rendered, {})

    return asyncio.run(scenario())


def python(script: str, *args: str, **options: Any) -> CommandAction:
    return command_action([PY, "-c", textwrap.dedent(script), *args], **options)


HOSTILE = ["; rm -rf /", "$(id)", "`id`", "a\nb", "--output=/etc/x", "{{ 7*7 }}", "", " spaced ", "'\"*?~"]


def test_hostile_values_arrive_as_single_literal_arguments() -> None:
    placeholders = [f"{{{{ payload.v[{i}] }}}}" for i in range(len(HOSTILE))]
    action = python("import json, sys; print(json.dumps(sys.argv[1:]))", *placeholders)
    outcome = run(action, {"v": HOSTILE})
    assert outcome.ok, outcome
    assert outcome.excerpt is not None
    assert json.loads(outcome.excerpt) == HOSTILE
    assert outcome.detail == {
        "exit_code": 0,
        "signal": None,
        "timed_out": False,
        "stdout_truncated": False,
        "stderr_truncated": False,
    }


def test_render_describes_the_run() -> None:
    action = command_action(["prog", "{{ payload.x }}"], env={"K": "{{ payload.x }}"}, cwd="/tmp", timeout="5s")
    rendered = (
        builtin_registry().build(action).render({"payload": {"x": "v"}, "headers": {}, "event": {}, "trigger": {}})
    )
    assert rendered == {"argv": ["prog", "v"], "env": {"K": "v"}, "cwd": "/tmp", "timeout": 5.0}


@pytest.mark.parametrize(("code", "category"), [(75, "transient"), (1, "permanent"), (3, "permanent")])
def test_exit_status_is_classified(code: int, category: str) -> None:
    outcome = run(python(f"import sys; sys.exit({code})"))
    assert outcome.failure is not None
    assert outcome.failure.code == f"exit_{code}"
    assert outcome.failure.category == category
    assert outcome.detail["exit_code"] == code


def test_stdout_and_stderr_make_the_excerpt() -> None:
    outcome = run(python("import sys; print('out', end=''); print('err', end='', file=sys.stderr); sys.exit(2)"))
    assert outcome.excerpt == "out\n--- stderr ---\nerr"


def test_missing_executable_is_exit_127() -> None:
    outcome = run(command_action(["/nonexistent/redrive-test-program", "x"]))
    assert outcome.failure is not None
    assert outcome.failure.code == "exit_127"
    assert outcome.failure.category == "permanent"


def test_missing_cwd_is_a_permanent_failure(tmp_path: Path) -> None:
    outcome = run(python("print(1)", cwd=str(tmp_path / "gone")))
    assert outcome.failure is not None
    assert outcome.failure.code == "invalid_cwd"
    assert outcome.failure.category == "permanent"


def test_nul_byte_is_refused_before_anything_starts(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    action = python(f"open({str(marker)!r}, 'w').close()", "{{ payload.x }}")
    outcome = run(action, {"x": "a\x00b"})
    assert outcome.failure is not None
    assert outcome.failure.code == "argv_nul"
    assert outcome.failure.category == "permanent"
    assert outcome.detail["exit_code"] is None
    assert not marker.exists()


def test_nul_byte_in_env_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    action = python(f"open({str(marker)!r}, 'w').close()", env={"K": "{{ payload.x }}"})
    outcome = run(action, {"x": "a\x00b"})
    assert outcome.failure is not None
    assert outcome.failure.code == "argv_nul"
    assert not marker.exists()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # Killed but not yet reaped by its new parent: a zombie runs nothing.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def wait_gone(pid: int, seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _gone(pid)


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    script = f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        with open({str(pid_file)!r}, "w") as f:
            f.write(str(child.pid))
        print("started", flush=True)
        time.sleep(60)
    """
    started = time.monotonic()
    outcome = run(python(script, timeout="1s"))
    assert time.monotonic() - started < 5
    assert outcome.failure is not None
    assert outcome.failure.code == "command_timeout"
    assert outcome.failure.category == "transient"
    assert outcome.detail["timed_out"] is True
    assert outcome.detail["signal"] == "SIGKILL"
    assert outcome.excerpt == "started\n"
    grandchild = int(pid_file.read_text())
    assert wait_gone(grandchild)


def grandchild_runner(pid_file: Path) -> tuple[Action, dict[str, Any]]:
    """A command that starts a grandchild in its group, writes the grandchild's pid to ``pid_file``, and sleeps."""
    script = f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        with open({str(pid_file)!r}, "w") as f:
            f.write(str(child.pid))
        time.sleep(60)
    """
    runner = builtin_registry().build(python(script, timeout="30s"))
    return runner, runner.render({"payload": {}, "headers": {}, "event": {}, "trigger": {}})


def test_cancelling_an_attempt_kills_the_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    runner, rendered = grandchild_runner(pid_file)

    async def scenario() -> None:
        task = asyncio.create_task(runner.execute(rendered, {}))
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text():
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    grandchild = int(pid_file.read_text())
    assert wait_gone(grandchild)


def test_cancelling_while_the_process_starts_kills_the_group_and_does_not_wait_for_it(tmp_path: Path) -> None:
    """A cancel that lands before the process's pipes are connected (the event loop busy, as on a loaded
    machine) still kills the whole group at once: asyncio alone kills only the child, then waits for the pipes
    its grandchildren hold. CI once spent 60 s here, the grandchild's whole sleep."""
    pid_file = tmp_path / "grandchild.pid"
    runner, rendered = grandchild_runner(pid_file)

    async def scenario() -> None:
        others = {child.pid for child in psutil.Process().children()}  # this test process's own, from other tests
        task = asyncio.create_task(runner.execute(rendered, {}))
        while {child.pid for child in psutil.Process().children()} <= others:  # noqa: ASYNC110 - a loop step at a time
            await asyncio.sleep(0)  # stopping as soon as the command is forked
        deadline = time.monotonic() + 10
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.01)  # noqa: ASYNC251 - blocks the loop, so the pipes stay unconnected meanwhile
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(10):
                await task

    asyncio.run(scenario())
    assert wait_gone(int(pid_file.read_text()))


def test_output_held_open_by_an_escaped_process_does_not_hang_the_attempt(tmp_path: Path) -> None:
    pid_file = tmp_path / "escaped.pid"
    script = f"""
        import os, subprocess, sys, time
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
        )
        with open({str(pid_file)!r}, "w") as f:
            f.write(str(child.pid))
        time.sleep(60)
    """
    try:
        started = time.monotonic()
        outcome = run(python(script, timeout="300ms"))
        assert time.monotonic() - started < 4
        assert outcome.failure is not None
        assert outcome.failure.code == "command_timeout"
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_large_output_is_capped_and_drained() -> None:
    script = """
        import sys
        chunk = b"o" * (1024 * 1024)
        for _ in range(10):
            sys.stdout.buffer.write(chunk)
            sys.stderr.buffer.write(chunk.replace(b"o", b"e"))
    """
    outcome = run(python(script, timeout="20s"))
    assert outcome.ok, outcome
    assert outcome.detail["stdout_truncated"] is True
    assert outcome.detail["stderr_truncated"] is True
    assert outcome.excerpt == "o" * OUTPUT_CAP + "\n--- stderr ---\n" + "e" * OUTPUT_CAP


def test_environment_is_limited_to_the_passthrough_and_the_configured_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDRIVE_TEST_SECRET", "hunter2")
    monkeypatch.setenv("REDRIVE_DATABASE_URL", "postgresql://user:secret@db/redrive")
    action = python(
        "import json, os; print(json.dumps(dict(os.environ)))",
        env={"CONFIGURED": "{{ payload.v }}", "PATH": "{{ payload.path }}"},
    )
    outcome = run(action, {"v": "from-config", "path": os.environ["PATH"] + ":/opt/extra"})
    assert outcome.ok, outcome
    assert outcome.excerpt is not None
    child_env = json.loads(outcome.excerpt)
    assert "REDRIVE_TEST_SECRET" not in child_env
    assert "REDRIVE_DATABASE_URL" not in child_env
    assert child_env["CONFIGURED"] == "from-config"
    assert child_env["PATH"] == os.environ["PATH"] + ":/opt/extra"
    assert set(child_env) <= {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "CONFIGURED", "LC_CTYPE"}


def test_path_is_passed_through() -> None:
    outcome = run(python("import os; print(os.environ.get('PATH'), end='')"))
    assert outcome.excerpt == os.environ["PATH"]


GIGABYTE_PROBE = """
import asyncio, json, resource, sys
from redrive.plugins import builtin_registry
from redrive.triggers.config import parse_config

def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def attempt(argv):
    doc = {"triggers": [{"name": "t", "action": {"kind": "command", "argv": argv, "timeout": "120s"}}]}
    runner = builtin_registry().build(parse_config(json.dumps(doc), env={}).triggers[0].action)
    return asyncio.run(runner.execute(runner.render({}), {}))

attempt(["head", "-c", "1000", "/dev/zero"])  # warm up: every import and code path loaded
before = peak_kib()
outcome = attempt(["sh", "-c", "head -c 1073741824 /dev/zero; head -c 104857600 /dev/zero >&2"])
print(json.dumps({
    "growth_kib": peak_kib() - before,
    "ok": outcome.ok,
    "detail": outcome.detail,
    "excerpt_length": len(outcome.excerpt or ""),
}))
"""


def test_a_gigabyte_of_output_is_captured_to_the_cap_without_memory_growth() -> None:
    # A fresh interpreter, so that its peak RSS is this attempt's alone.
    result = subprocess.run([PY, "-c", GIGABYTE_PROBE], capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["ok"] is True
    assert report["detail"]["stdout_truncated"] is True
    assert report["detail"]["stderr_truncated"] is True
    assert report["excerpt_length"] == 2 * OUTPUT_CAP + len("\n--- stderr ---\n")
    assert report["growth_kib"] < 50 * 1024, f"peak RSS grew by {report['growth_kib']} KiB"
