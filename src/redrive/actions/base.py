"""What every action is: the ``Action`` protocol, the ``Outcome`` of one attempt, and the resources it is given.

An action is built once per trigger from its config (by its kind's ``ActionKind.build``), renders its templates
for one event (``render``: pure, raises ``RenderError``), and runs that rendering (``execute``: talks to the
outside world and never raises for an expected failure; every network, process or SMTP error comes back as
``Outcome(failure=..., error=exc)``). An exception ``execute`` does raise is classified by the worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from redrive.failures.classify import Failure

EXCERPT_BYTES = 4096
"""Most bytes of an HTTP response body kept as an attempt's excerpt."""

Resources = Mapping[str, Any]
"""What each action kind's ``resources`` factory opened in this worker, by kind name (``resources["http"]``)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to; ``error`` is the exception ``failure`` was classified from, if any."""

    failure: Failure | None
    detail: dict[str, Any]
    excerpt: str | None = None
    error: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        """True when the attempt succeeded."""
        return self.failure is None


class Action(Protocol):
    """One configured action: renders its templates for an event, then executes that rendering. (Its kind's name
    lives in its ``ActionKind``; an action need not repeat it.)"""

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Render every template; return a JSON-safe description of what ``execute`` will do."""
        ...

    async def execute(self, rendered: Mapping[str, Any], resources: Resources) -> Outcome:
        """Run a rendering made by ``render``; expected failures are returned, never raised."""
        ...


def decode(data: bytes | bytearray) -> str:
    """Decode captured output for an excerpt, replacing bytes that are not UTF-8."""
    return data.decode("utf-8", errors="replace")
