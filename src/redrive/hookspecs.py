"""Every extension point of redrive, in one place: each hook with a one-line docstring.

Plugins implement these with ``@redrive.hookimpl`` and are found through the ``redrive`` entry-point group (see
``redrive.plugins``). redrive's own behaviour (the http, command, email and python actions, the four signature
schemes, the classifier, the hints, and the slack, email, webhook and trigger alert channels) is registered through
the same hooks by ``DEFAULT_PLUGINS``, so the mechanism is exercised by the product itself.

Three families:

- Registrations, called once when the plugin manager is built: ``redrive_action_kinds``,
  ``redrive_signature_schemes``, ``redrive_alert_channels``, ``redrive_hints``, ``redrive_api_routes``,
  ``redrive_cli_commands``.
- Decisions, called on the hot path, so pure and quick: ``redrive_classify`` (first answer wins; the built-in
  rules are registered to run last).
- Lifecycle notifications, called after the database commit of what they report: ``redrive_event_accepted``,
  ``redrive_attempt_recorded``, ``redrive_execution_dead_lettered``, ``redrive_execution_recovered``,
  ``redrive_breaker_transition``. An implementation may be ``async``; each call is bounded in time and isolated: one
  that raises or hangs is logged (``evt=plugin_hook_failed``) and never stalls the worker, loses a result or changes
  an outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping

    from fastapi import APIRouter
    from typer import Typer

    from redrive.extensions import (
        ActionKind,
        AlertChannelKind,
        AttemptRecorded,
        BreakerTransition,
        EventAccepted,
        ExecutionDeadLettered,
        ExecutionRecovered,
        SignatureScheme,
    )
    from redrive.failures.classify import Failure
    from redrive.failures.hints import Hint

PROJECT = "redrive"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def redrive_action_kinds() -> list[ActionKind]:
    """Action kinds this plugin adds: name, config model, factory, resources, target summary, exception classifier."""


@hookspec
def redrive_signature_schemes() -> list[SignatureScheme]:
    """Inbound signature schemes this plugin adds: name, config model, verify, default key header, secret fields."""


@hookspec
def redrive_alert_channels() -> list[AlertChannelKind]:
    """Alert channel kinds this plugin adds (Slack, email, PagerDuty...): name, config model, factory, secret fields."""


@hookspec(firstresult=True)
def redrive_classify(kind: str, exc: BaseException) -> Failure | None:
    """Classify an exception an action raised; the first non-None answer wins and the built-in rules run last."""


@hookspec
def redrive_hints() -> Mapping[str, Hint]:
    """Hints (likely cause, advice, remedy) keyed by the error codes this plugin's failures carry."""


@hookspec
def redrive_api_routes() -> APIRouter | None:
    """A router served under ``/api/v1/plugins/{plugin name}/``, each route behind the token roles it declares."""


@hookspec
def redrive_cli_commands(cli: Typer) -> None:
    """Add commands (or a command group) to the ``redrive`` CLI."""


@hookspec
def redrive_event_accepted(event: EventAccepted) -> Awaitable[None] | None:
    """An event was stored (after its commit); duplicates and filtered-out deliveries are not reported."""


@hookspec
def redrive_attempt_recorded(attempt: AttemptRecorded) -> Awaitable[None] | None:
    """An attempt's outcome was committed, with its classification and the retry decision taken."""


@hookspec
def redrive_execution_dead_lettered(execution: ExecutionDeadLettered) -> Awaitable[None] | None:
    """An execution was committed to the dead-letter queue (``failed_retryable``) or failed for good (``failed``)."""


@hookspec
def redrive_execution_recovered(execution: ExecutionRecovered) -> Awaitable[None] | None:
    """An execution succeeded after at least one failed attempt (after the commit)."""


@hookspec
def redrive_breaker_transition(transition: BreakerTransition) -> Awaitable[None] | None:
    """A destination's breaker changed state (after the commit): opened, went half-open, closed, or was forced."""
