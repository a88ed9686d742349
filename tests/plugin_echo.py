"""A plugin defined outside redrive, as a third party would write it: the ``echo`` action kind, a hint, API routes
and a CLI command. It touches no redrive file: that is the point of the tests that use it.

``echo`` "delivers" its rendered message by appending it to the list its resources factory opened, so a test can
see that the worker opened the resources once, handed them to the action as ``resources["echo"]`` and closed them.
A message ``boom`` raises ``EchoBoom`` (the kind's own classifier makes it ``echo_boom``, transient); a message
``later`` raises ``redrive.TransientError`` with a ``retry_after``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import typer
from fastapi import APIRouter
from pydantic import Field

import redrive
from redrive.actions import Outcome
from redrive.api.auth import AdminDep, ViewerDep
from redrive.failures.classify import Failure, transient
from redrive.failures.hints import Hint
from redrive.triggers.fields import StrictModel, TemplateStr


class EchoAction(StrictModel):
    kind: Literal["echo"]
    message: TemplateStr
    times: int = Field(1, ge=1, le=10)


class EchoBoom(Exception):
    """What the echo "transport" raises for the message ``boom``."""


@dataclass
class Outbox:
    """The echo kind's resources: what was delivered, and whether the worker closed it."""

    sent: list[str] = field(default_factory=list)
    closed: bool = False


class Echo:
    def __init__(self, config: EchoAction) -> None:
        self._config = config

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        return {"message": self._config.message.render(context), "times": self._config.times}

    async def execute(self, rendered: Mapping[str, Any], resources: Mapping[str, Any]) -> Outcome:
        message = rendered["message"]
        if message == "boom":
            raise EchoBoom("the echo chamber collapsed")
        if message == "later":
            raise redrive.TransientError("busy, come back later", code="echo_busy", retry_after=0.05)
        outbox: Outbox = resources["echo"]
        outbox.sent.extend([message] * rendered["times"])
        return Outcome(None, {"echoed": rendered["times"]}, message)


def classify_echo(exc: BaseException) -> Failure | None:
    return transient("echo_boom", str(exc)) if isinstance(exc, EchoBoom) else None


class EchoPlugin:
    """The plugin object; ``outboxes`` keeps every outbox the worker opened, for the test to look at."""

    name = "echo"

    def __init__(self) -> None:
        self.outboxes: list[Outbox] = []
        self.contexts: list[redrive.ResourceContext] = []

    @asynccontextmanager
    async def _outbox(self, context: redrive.ResourceContext) -> AsyncIterator[Outbox]:
        self.contexts.append(context)
        outbox = Outbox()
        self.outboxes.append(outbox)
        try:
            yield outbox
        finally:
            outbox.closed = True

    @redrive.hookimpl
    def redrive_action_kinds(self) -> list[redrive.ActionKind]:
        return [
            redrive.ActionKind(
                name="echo",
                config=EchoAction,
                build=Echo,
                summary=lambda rendered: f"echo {rendered['message']!r}",
                resources=self._outbox,
                classify=classify_echo,
            )
        ]

    @redrive.hookimpl
    def redrive_hints(self) -> Mapping[str, Hint]:
        return {"echo_boom": Hint("The echo chamber collapsed", "Rebuild the chamber, then replay.", "replay_group")}

    @redrive.hookimpl
    def redrive_api_routes(self) -> APIRouter:
        router = APIRouter()

        @router.get("/outboxes")
        async def outboxes(caller: ViewerDep) -> dict[str, Any]:
            return {"sent": [message for outbox in self.outboxes for message in outbox.sent]}

        @router.post("/outboxes/clear")
        async def clear(caller: AdminDep) -> dict[str, Any]:
            for outbox in self.outboxes:
                outbox.sent.clear()
            return {"cleared": True, "by": caller.name}

        return router

    @redrive.hookimpl
    def redrive_cli_commands(self, cli: typer.Typer) -> None:
        @cli.command("echo-hello")
        def hello(name: str) -> None:
            """Say hello (a command added by the echo plugin)."""
            typer.echo(f"hello {name} from echo")
