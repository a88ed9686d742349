"""What every action is: the ``Action`` protocol, the ``Outcome`` of one attempt, and the registry of kinds.

An action is built once per trigger from its config (``build_action``), renders its templates for one
event (``render``: pure, raises ``RenderError``), says what of the rendering is the request it sends
(``describe``: stored on the attempt), and runs that rendering (``execute``: talks to the outside
world and never raises for an expected failure; every network, process or SMTP error comes back as
``Outcome(failure=...)``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from redrive.clock import Clock, utcnow
from redrive.failures.classify import Failure

if TYPE_CHECKING:
    from redrive.actions.http import HttpSessions
    from redrive.triggers.config import CommandAction, EmailAction, HttpAction

EXCERPT_BYTES = 4096
"""Most bytes of an HTTP response body kept as an attempt's excerpt."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to."""

    failure: Failure | None
    detail: dict[str, Any]
    excerpt: str | None = None

    @property
    def ok(self) -> bool:
        """True when the attempt succeeded."""
        return self.failure is None


@dataclass(frozen=True, slots=True)
class Resources:
    """Long-lived things actions share within one worker; built and closed by the worker."""

    http: HttpSessions
    clock: Clock = utcnow  # the worker's: what "now" is for a Retry-After date

    async def close(self) -> None:
        """Close what the resources hold (the HTTP sessions and their pooled connections)."""
        await self.http.close()


class Action(Protocol):
    """One configured action: renders its templates for an event, then executes that rendering."""

    kind: ClassVar[str]

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Render every template; return a JSON-safe description of what ``execute`` will do."""
        ...

    async def execute(self, rendered: Mapping[str, Any], resources: Resources) -> Outcome:
        """Run a rendering made by ``render``; expected failures are returned, never raised."""
        ...

    def describe(self, rendered: Mapping[str, Any]) -> dict[str, Any]:
        """What of a rendering the attempt stores as sent (JSON-safe; the trigger redacts and caps it).

        A ``json`` (a tree) or ``body`` (text) key is the request body, capped as one; never include secrets that
        are not in the request itself (the trigger masks those in it).
        """
        ...


def decode(data: bytes | bytearray) -> str:
    """Decode captured output for an excerpt, replacing bytes that are not UTF-8."""
    return data.decode("utf-8", errors="replace")


@cache
def _registry() -> dict[str, Callable[[Any], Action]]:
    # Imported here: the action modules import this one for Outcome and Resources.
    from redrive.actions.command import CommandRunner
    from redrive.actions.email import EmailSender
    from redrive.actions.http import HttpRequester

    return {
        HttpRequester.kind: HttpRequester,
        CommandRunner.kind: CommandRunner,
        EmailSender.kind: EmailSender,
    }


def build_action(config: HttpAction | CommandAction | EmailAction) -> Action:
    """Build the action for a trigger's action config; an unknown kind raises ValueError."""
    factory = _registry().get(config.kind)
    if factory is None:
        raise ValueError(f"unknown action kind {config.kind!r}")
    return factory(config)
