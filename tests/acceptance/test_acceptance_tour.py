"""The README's five-minute tour, run verbatim against ``redrive up`` on ports that are not the defaults.

The commands come from the README's tour code block itself, so the README and this test cannot drift. A comment
block right under a command (no blank line between) is that command's documented result: each of its lines must
appear in what the command printed, where ``…`` or ``...`` stands for any text. Other comments (step headings,
inline remarks) are prose.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from acceptance_support import START_TIMEOUT, Launcher, clean_env, free_port, http_get

from support import wait_until

pytestmark = pytest.mark.acceptance

REPO = Path(__file__).resolve().parents[2]
STEP_TIMEOUT = 120.0


@dataclass
class Step:
    """One command of the tour and the result lines the README documents for it."""

    command: str
    expected: list[str] = field(default_factory=list)


def tour_block(readme: str) -> str:
    """The first ``sh`` code block under the README's tour heading."""
    section = readme.split("## A five-minute tour", 1)[1]
    return section.split("```sh\n", 1)[1].split("\n```", 1)[0]


def tour_steps(block: str) -> list[Step]:
    """The block's commands (continuation lines joined), each with the comment lines right under it."""
    steps: list[Step] = []
    under_a_command = False  # a blank line ends a command's documented result; a heading follows a blank line
    for line in block.replace("\\\n", " ").splitlines():
        stripped = line.strip()
        if not stripped:
            under_a_command = False
        elif not stripped.startswith("#"):
            steps.append(Step(stripped))
            under_a_command = True
        elif under_a_command:
            steps[-1].expected.append(stripped.removeprefix("#").strip())
    return steps


def matcher(documented: str) -> re.Pattern[str]:
    """A documented result line as a pattern: ``…`` and ``...`` match anything, runs of spaces any whitespace."""
    parts = re.split(r"…|\.\.\.", " ".join(documented.split()))
    return re.compile(".*?".join(re.escape(part).replace(r"\ ", r"\s+") for part in parts))


def test_the_steps_are_read_from_the_readme() -> None:
    steps = tour_steps(tour_block((REPO / "README.md").read_text(encoding="utf-8")))
    commands = [step.command for step in steps]
    assert commands[0] == "source .venv/bin/activate                      # puts the `redrive` CLI on your PATH"
    assert sum(command.startswith("curl ") for command in commands) == 5
    documented = {step.command.split()[0] + " " + step.command.split()[1]: step.expected for step in steps}
    assert documented["redrive stats"] == ["2 executions failing now, finished in the last 1h"]
    first_curl = next(step for step in steps if step.command.startswith("curl "))
    assert first_curl.expected == ['{"event_id":1,"execution_id":1,"duplicate":false}']
    assert all(not line[:2].rstrip(".").isdigit() for step in steps for line in step.expected)  # no heading


def test_the_readme_tour_runs_verbatim_on_other_ports(launcher: Launcher, tmp_path: Path) -> None:
    steps = tour_steps(tour_block((REPO / "README.md").read_text(encoding="utf-8")))
    # The tour runs in a checkout after `make up`: the virtualenv, the example payloads, redrive.yaml.
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    (tmp_path / "examples").symlink_to(REPO / "examples")
    shutil.copy(REPO / "redrive.example.yaml", tmp_path / "redrive.yaml")
    ports = {
        "REDRIVE_PORT": str(free_port()),
        "FLAKY_TARGET_PORT": str(free_port()),
        "SLACK_INBOX_PORT": str(free_port()),
    }
    assert not {"8000", "8009", "8010"} & set(ports.values())
    server = launcher.popen(tmp_path / "redrive.yaml", int(ports["REDRIVE_PORT"]), ports)
    wait_until(
        lambda: server.process.poll() is not None or http_get(f"{server.url}/healthz", timeout=0.5) is not None,
        timeout=START_TIMEOUT,
        what="redrive up to answer /healthz",
    )
    assert server.process.poll() is None, server.logs()

    state: list[str] = []  # `source` and `export` lines carry over to every later command, as in one terminal
    groups: list[int] = []
    transcript: list[str] = []
    try:
        for step in steps:
            process = subprocess.Popen(
                ["bash", "-c", "\n".join([*state, step.command])],
                cwd=tmp_path,
                env=clean_env(**ports),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # its own process group: what it leaves running is killed at the end
            )
            groups.append(process.pid)
            output, _ = process.communicate(timeout=STEP_TIMEOUT)
            transcript.append(f"$ {step.command}\n{output}")
            record = "\n".join(transcript) + "\n" + server.logs()
            assert process.returncode == 0, f"exit {process.returncode}\n{record}"
            flat = " ".join(output.split())
            for line in step.expected:
                assert matcher(line).search(flat), f"documented result not printed: {line!r}\n{record}"
            if step.command.startswith(("source ", "export ")):
                state.append(step.command)
    finally:
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
