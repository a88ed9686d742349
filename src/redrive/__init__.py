"""redrive: accept events durably, drop duplicates, run actions, retry, dead-letter, replay.

The public surface for users and plugin authors; everything else is internal and may change. The names are
imported when first used (PEP 562), so ``import redrive.cli`` stays light: the CLI starts in a fraction of a second.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redrive.action_errors import PermanentError, TransientError
    from redrive.extensions import (
        ActionKind,
        AttemptRecorded,
        EventAccepted,
        ExecutionDeadLettered,
        ExecutionRecovered,
        ResourceContext,
        SignatureScheme,
    )
    from redrive.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = [
    "ActionKind",
    "AttemptRecorded",
    "BreakerTransition",
    "EventAccepted",
    "ExecutionDeadLettered",
    "ExecutionRecovered",
    "PermanentError",
    "ResourceContext",
    "SignatureScheme",
    "TransientError",
    "__version__",
    "hookimpl",
]
_HOME = {
    "ActionKind": "redrive.extensions",
    "AttemptRecorded": "redrive.extensions",
    "BreakerTransition": "redrive.extensions",
    "EventAccepted": "redrive.extensions",
    "ExecutionDeadLettered": "redrive.extensions",
    "ExecutionRecovered": "redrive.extensions",
    "PermanentError": "redrive.action_errors",
    "ResourceContext": "redrive.extensions",
    "SignatureScheme": "redrive.extensions",
    "TransientError": "redrive.action_errors",
    "hookimpl": "redrive.hookspecs",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'redrive' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # once found, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
