"""What plugins hand redrive (action kinds, signature schemes, alert channels) and what redrive hands plugins
(lifecycle reports, alert notifications).

These are plain frozen values: a plugin builds them in its ``redrive_action_kinds`` / ``redrive_signature_schemes``
hook implementations, and receives the reports in its lifecycle hooks (``redrive.hookspecs``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from redrive.clock import Clock, utcnow

if TYPE_CHECKING:
    from pydantic import BaseModel

    from redrive.actions.base import Action
    from redrive.failures.classify import Failure


@dataclass(frozen=True, slots=True)
class ResourceContext:
    """What a kind's ``resources`` factory is told about the worker that opens it."""

    concurrency: int
    """Attempts the worker runs at once: size connection pools to it."""
    trace_configs: tuple[Any, ...] = ()
    """aiohttp ``TraceConfig``s that carry the attempt's ``traceparent`` (empty when tracing is off)."""
    clock: Clock = utcnow
    """The worker's clock: what "now" is for an action (a ``Retry-After`` date, say)."""
    outbound_headers: Callable[[], Mapping[str, str]] | None = None
    """The headers that carry the current attempt's ``traceparent``, for a client of another make (None: tracing
    is off)."""


@dataclass(frozen=True, slots=True)
class ActionKind:
    """An action kind: what ``action: {kind: NAME, ...}`` in the trigger file builds and runs."""

    name: str
    """The ``kind`` value in the trigger file (lower-case, ``[a-z0-9_-]``)."""
    config: type[BaseModel]
    """The pydantic model of the ``action`` block; its ``kind`` field is ``Literal[name]``."""
    build: Callable[[Any], Action]
    """Build the action of one trigger from its validated config."""
    summary: Callable[[Mapping[str, Any]], str]
    """A one-line description of where a rendering (what the action's ``render`` returned) goes, for previews and
    stats (``POST https://api.example.com/orders``)."""
    resources: Callable[[ResourceContext], AbstractAsyncContextManager[Any]] | None = None
    """Opened once per worker before the first attempt and closed when it stops (HTTP sessions and the like); the
    object it yields reaches the kind's actions as ``resources[name]``."""
    classify: Callable[[BaseException], Failure | None] | None = None
    """Classify an exception this kind's actions raise (None: let the other rules decide)."""
    secrets: Callable[[Any], Iterable[str]] | None = None
    """The secret values an ``action`` block holds (a signing secret, say): masked by redaction wherever redrive
    writes text down, like the secrets of a ``verify`` block."""
    destination: Callable[[Any], str | Callable[[Mapping[str, Any]], str | None] | None] | None = None
    """What a trigger's actions talk to, from its validated config: a fixed key (``https://host:443``), a function
    of the template context when it depends on the event, or None (the trigger: ``trigger:<name>``). Breakers and
    limits are kept per destination."""


@dataclass(frozen=True, slots=True)
class SignatureScheme:
    """An inbound signature scheme: what ``source: {verify: {scheme: NAME, ...}}`` checks."""

    name: str
    """The ``scheme`` value in the trigger file."""
    config: type[BaseModel]
    """The pydantic model of the ``verify`` block; its ``scheme`` field is ``Literal[name]``."""
    verify: Callable[[Any, bytes, Mapping[str, str], float], None]
    """Check one delivery: config, the raw body, headers (lower-case names), now (unix seconds); raise
    ``redrive.errors.InvalidSignature`` with a reason safe to log, or return None."""
    key_header: str | None = None
    """The idempotency-key source the scheme implies (``header:webhook-id``), tried first unless configured."""
    secret_fields: tuple[str, ...] = ("secret", "secrets")
    """The config fields holding secrets: masked by redaction wherever redrive writes text down."""


@dataclass(frozen=True, slots=True)
class AlertNotification:
    """One alert notification to deliver: what a channel turns into a Slack message, a mail, a POST or an event."""

    key: str
    """The idempotency key of the transition (``orders-failing:3:firing``): the same on every retry and every node,
    so a receiver deduplicates on it."""
    rule: str
    kind: str
    """``firing``, ``resolved``, ``repeat`` (still firing) or ``test`` (an operator's test: nothing fired)."""
    at: datetime
    title: str
    """One line: what happened (``[FIRING] orders-failing: failure rate 31% >= 5% over 5m``)."""
    text: str
    """The whole message as plain text: numbers, top error group with hint and remedy, sample, link."""
    detail: Mapping[str, Any]
    """The same as data (``numbers``, ``group``, ``sample``, ``link``, ``fired_for_seconds``...), for JSON channels."""


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """What redrive lends a channel when it builds one: outbound HTTP under the egress rules, event submission."""

    http_post: Callable[[str, bytes, Mapping[str, str], Any], Awaitable[int]]
    """POST ``body`` with ``headers`` to ``url`` under a ``redrive.actions.egress.TargetPolicy`` (the last argument);
    returns the status code, raises ``OSError`` when the target is refused or unreachable."""
    submit_event: Callable[[str, Mapping[str, Any], str], Awaitable[Mapping[str, Any]]]
    """Accept ``payload`` as an event of the named trigger with an idempotency key, as ``POST /api/v1/events``."""
    clock: Clock = utcnow


class AlertChannel:
    """A built channel: ``send`` delivers one notification or raises (the dispatcher retries it later)."""

    async def send(self, notification: AlertNotification) -> None:
        """Deliver ``notification``; raise on any failure (the message is recorded as the delivery's last error)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class AlertChannelKind:
    """An alert channel kind: what ``channels: [{kind: NAME, ...}]`` in the trigger file builds."""

    name: str
    """The ``kind`` value in the trigger file."""
    config: type[BaseModel]
    """The pydantic model of one channel entry; its ``kind`` field is ``Literal[name]`` and it has a ``name``."""
    build: Callable[[Any, ChannelContext], AlertChannel]
    """Build the channel from its validated config and what redrive lends it."""
    secret_fields: tuple[str, ...] = ()
    """Config fields holding secrets (masked by redaction wherever redrive writes text down)."""


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """A destination's breaker changed state (committed): ``closed``, ``open`` or ``half_open``."""

    destination: str
    from_state: str
    to_state: str
    reason: str
    at: datetime
    actor: str | None
    """The operator's token name for a forced change; None for the breaker's own decisions."""


@dataclass(frozen=True, slots=True)
class EventAccepted:
    """A new event and its execution, committed."""

    trigger: str
    event_id: int
    execution_id: int | None
    idempotency_key: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptRecorded:
    """One attempt's outcome, committed, with its classification and the retry decision taken."""

    trigger: str
    kind: str
    execution_id: int
    attempt: int
    status: str
    """The status the execution moved to: succeeded, pending (a retry is scheduled), failed_retryable or failed."""
    failure: Failure | None
    retry_at: datetime | None
    """When the next attempt is due, if one is scheduled."""
    duration: float


@dataclass(frozen=True, slots=True)
class ExecutionDeadLettered:
    """An execution committed to ``failed_retryable`` (the dead-letter queue) or ``failed`` (permanent)."""

    trigger: str
    kind: str
    execution_id: int
    status: str
    attempts: int
    failure: Failure


@dataclass(frozen=True, slots=True)
class ExecutionRecovered:
    """An execution that succeeded after at least one failed attempt, committed."""

    trigger: str
    kind: str
    execution_id: int
    attempts: int
