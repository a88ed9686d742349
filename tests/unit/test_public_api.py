"""redrive's public surface: what ``import redrive`` offers users and plugin authors, pinned."""

from __future__ import annotations

from importlib.metadata import version

import redrive

PUBLIC = [
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


def test_the_public_surface_is_exactly_this() -> None:
    assert redrive.__all__ == PUBLIC
    assert [name for name in PUBLIC if not hasattr(redrive, name)] == []
    assert redrive.__version__ == version("redrive")


def test_the_errors_users_raise_carry_a_code_and_a_retry_after() -> None:
    error = redrive.TransientError("try later", code="rate_limited", retry_after=30)
    assert (str(error), error.code, error.retry_after) == ("try later", "rate_limited", 30)
    assert redrive.PermanentError("no").code is None
    assert not issubclass(redrive.TransientError, redrive.PermanentError)
