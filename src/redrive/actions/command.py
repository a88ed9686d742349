"""The command action: run a program from an argv list, never through a shell.

- Every rendered argv element reaches the program as exactly one argument, whatever characters it holds; a NUL
  byte (which cannot be passed) fails the attempt before anything starts.
- The child starts a new session and so leads its own process group. On timeout, or when the attempt is cancelled
  (even while the process is still starting), the whole group, grandchildren included, is killed with SIGKILL.
- The environment is built, not inherited: the child sees only ``PATH``, ``HOME``, ``LANG``, ``LC_ALL`` and
  ``TZ`` from redrive's own environment (when set), plus the action's rendered ``env``. redrive's own
  secrets, such as ``REDRIVE_DATABASE_URL``, therefore never reach a command; pass what a command needs
  through ``env``.
- stdout and stderr are read concurrently and fully drained, keeping the first ``OUTPUT_CAP`` bytes of each,
  so a noisy command neither grows redrive's memory nor blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

from redrive.actions.base import Outcome, Resources, decode
from redrive.extensions import ActionKind
from redrive.failures.classify import Failure, classify_exit, permanent
from redrive.hookspecs import hookimpl
from redrive.triggers.fields import Duration, StrictModel, TemplateStr

OUTPUT_CAP = 64 * 1024
"""Most bytes kept of each of stdout and stderr; the rest is read and discarded."""

PASSTHROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
"""The only variables of redrive's own environment a command inherits."""

# After the group is killed the pipes close at once, unless a process that left the group still holds them.
_DRAIN_GRACE = 1.0


class CommandAction(StrictModel):
    kind: Literal["command"]
    argv: list[TemplateStr] = Field(min_length=1)
    env: dict[str, TemplateStr] = Field(default_factory=dict)
    cwd: str | None = None
    timeout: Duration = 60.0


class CommandRunner:
    """Runs one process per attempt; success is exit status 0."""

    kind: ClassVar[str] = "command"
    __slots__ = ("_config",)

    def __init__(self, config: CommandAction) -> None:
        self._config = config

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Render argv and env; ``env`` holds only the configured variables, not the passed-through ones."""
        config = self._config
        return {
            "argv": [arg.render(context) for arg in config.argv],
            "env": {name: value.render(context) for name, value in config.env.items()},
            "cwd": config.cwd,
            "timeout": config.timeout,
        }

    def describe(self, rendered: Mapping[str, Any]) -> dict[str, Any]:
        """The argv, the names of the configured environment variables (never their values) and the cwd."""
        return {"argv": rendered["argv"], "env": sorted(rendered["env"]), "cwd": rendered["cwd"]}

    async def execute(self, rendered: Mapping[str, Any], resources: Resources) -> Outcome:
        """Start the process, capture its capped output, and classify how it ended."""
        argv: list[str] = rendered["argv"]
        env: dict[str, str] = rendered["env"]
        cwd: str | None = rendered["cwd"]
        refusal = _refuse_unsafe(argv, env, cwd)
        if refusal is not None:
            return _not_started(refusal)
        child_env = {name: os.environ[name] for name in PASSTHROUGH_ENV if name in os.environ}
        child_env.update(env)
        loop = asyncio.get_running_loop()
        capture = _Capture(loop)
        spawn = asyncio.ensure_future(
            loop.subprocess_exec(
                lambda: capture,
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=child_env,
                cwd=cwd,
                start_new_session=True,
            )
        )
        try:
            transport, _ = await asyncio.shield(spawn)
        except OSError as exc:
            return _not_started(_spawn_failure(exc, cwd))
        except asyncio.CancelledError:
            await _kill_started(spawn, capture)
            raise
        try:
            timed_out = await _wait(transport, capture, self._config.timeout)
        finally:
            transport.close()  # releases pipes a process that left the group may still hold
        return _outcome(transport.get_returncode(), timed_out, capture)


async def _wait(transport: asyncio.SubprocessTransport, capture: _Capture, seconds: float) -> bool:
    """Wait for the process to exit and its output to close; on timeout kill its group. True if it timed out."""
    try:
        async with asyncio.timeout(seconds):
            await asyncio.shield(capture.finished)
    except TimeoutError:
        await _kill_and_reap(transport, capture)
        return True
    except BaseException:
        # Cancelled (the worker is stopping): leave no process behind.
        await _kill_and_reap(transport, capture)
        raise
    return False


async def _kill_started(spawn: asyncio.Future[tuple[asyncio.SubprocessTransport, Any]], capture: _Capture) -> None:
    """Cancelled while the process starts: let the start finish, then kill its group. Left to itself, asyncio
    kills only the child and then waits for its pipes, which its grandchildren hold for as long as they run."""
    try:
        transport, _ = await spawn
    except OSError:
        return  # nothing started
    try:
        await _kill_and_reap(transport, capture)
    finally:
        transport.close()


async def _kill_and_reap(transport: asyncio.SubprocessTransport, capture: _Capture) -> None:
    # The child leads its group (start_new_session), so its pid is the group id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(transport.get_pid(), signal.SIGKILL)
    # Wait for the exit to be reaped (closing the transport before that would race the child watcher), then
    # briefly for the pipes: they close at once, unless a process that left the group still holds them.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_DRAIN_GRACE):
            await asyncio.shield(capture.exited)
            await asyncio.shield(capture.finished)


def _outcome(returncode: int | None, timed_out: bool, capture: _Capture) -> Outcome:
    signal_name = None
    if returncode is not None and returncode < 0:
        with contextlib.suppress(ValueError):
            signal_name = signal.Signals(-returncode).name
    stdout, stderr = capture.kept
    detail = {
        "exit_code": returncode,
        "signal": signal_name,
        "timed_out": timed_out,
        "stdout_truncated": capture.truncated[0],
        "stderr_truncated": capture.truncated[1],
    }
    excerpt = decode(stdout)
    if stderr:
        excerpt += "\n--- stderr ---\n" + decode(stderr)
    return Outcome(classify_exit(returncode, timed_out=timed_out), detail, excerpt or None)


class _Capture(asyncio.SubprocessProtocol):
    """Keeps the first OUTPUT_CAP bytes of stdout and of stderr and drops the rest as it arrives.

    Reading never pauses, so the child never blocks on a full pipe and memory stays bounded.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.kept = (bytearray(), bytearray())
        self.truncated = [False, False]
        self.exited: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()  # exited and every pipe closed

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        """Keep what fits under the cap of this stream (1 stdout, 2 stderr)."""
        kept = self.kept[fd - 1]
        room = OUTPUT_CAP - len(kept)
        if len(data) > room:
            self.truncated[fd - 1] = True
        if room > 0:
            kept += data[:room]

    def process_exited(self) -> None:
        """The process ended (its pipes may still be open)."""
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        """The process ended and all its pipes closed."""
        if not self.finished.done():
            self.finished.set_result(None)


def _refuse_unsafe(argv: list[str], env: Mapping[str, str], cwd: str | None) -> Failure | None:
    values = [*argv, *env, *env.values(), *([cwd] if cwd is not None else [])]
    if any("\x00" in value for value in values):
        return permanent("argv_nul", "An argument, environment variable or cwd holds a NUL byte")
    for name in env:
        if not name or "=" in name:
            return permanent("invalid_env", f"{name[:40]!r} is not a valid environment variable name")
    return None


def _spawn_failure(exc: OSError, cwd: str | None) -> Failure:
    if cwd is not None and exc.filename == cwd:
        return permanent("invalid_cwd", f"The working directory {cwd!r} cannot be used: {exc.strerror or exc}")
    if isinstance(exc, FileNotFoundError):
        returncode = 127
    elif isinstance(exc, PermissionError):
        returncode = 126
    else:
        return permanent("spawn_error", f"The command could not be started: {exc.strerror or exc}")
    failure = classify_exit(returncode, timed_out=False)
    assert failure is not None  # a non-zero status is always a failure
    return failure


def _not_started(failure: Failure) -> Outcome:
    detail = {
        "exit_code": None,
        "signal": None,
        "timed_out": False,
        "stdout_truncated": False,
        "stderr_truncated": False,
    }
    return Outcome(failure, detail)


def _summary(rendered: Mapping[str, Any]) -> str:
    return " ".join(str(arg) for arg in rendered.get("argv", []))


@hookimpl
def redrive_action_kinds() -> list[ActionKind]:
    """The ``command`` action kind."""
    return [ActionKind(name="command", config=CommandAction, build=CommandRunner, summary=_summary)]
