"""What an action's own code raises to say how an attempt failed: ``TransientError`` or ``PermanentError``.

A ``python`` action's function (or a plugin's action) raises one of these to choose the outcome: a transient
failure is retried with backoff (after ``retry_after`` seconds, when given), a permanent one is dead-lettered at once.
``code`` groups the failures (``transient_error`` / ``permanent_error`` when not given). Any other exception is
classified by its type.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class ActionFailed(Exception):
    """Base of the errors an action raises on purpose; ``code`` and ``retry_after`` are optional."""

    default_code = "action_failed"

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        if code is not None and not _CODE.match(code):
            raise ValueError(f"{code!r} is not an error code: use lower-case letters, digits, '_', '.' or '-'")
        if retry_after is not None and not retry_after >= 0:
            raise ValueError("retry_after must be a number of seconds, zero or more")
        self.message = message
        self.code = code
        self.retry_after = retry_after


class TransientError(ActionFailed):
    """A failure a later attempt may not meet (an outage, a rate limit): the execution is retried."""

    default_code = "transient_error"


class PermanentError(ActionFailed):
    """A failure retrying cannot fix (bad input, a refusal): the execution is dead-lettered at once."""

    default_code = "permanent_error"
