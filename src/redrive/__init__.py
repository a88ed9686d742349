"""redrive: accept events durably, drop duplicates, run actions, retry, dead-letter, replay.

The public surface for users and plugin authors; everything else is internal and may change.
"""

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
