"""One exception tree for everything redrive reports to a caller.

Each error carries a stable machine ``code`` and the HTTP status it maps to; the API turns any of them into
``{"error": {"code": ..., "message": ...}}`` in one handler.

    RedriveError (500 internal_error)
    ├── ConfigError (config_invalid)          a trigger file or setting is wrong; lists every problem
    ├── PluginError (plugin_error)            a plugin failed to load or registered something unusable
    ├── NotFound (404)
    │   └── UnknownTrigger (404 unknown_trigger)
    ├── BadRequest (400)
    │   ├── InvalidJson (400 invalid_json)
    │   └── InvalidRequest (422 invalid_request)
    ├── InvalidSignature (401 invalid_signature)
    ├── PayloadTooLarge (413 payload_too_large)
    ├── IdempotencyKeyReused (422 idempotency_key_reused)
    └── StorageUnavailable (503 storage_unavailable)
"""

from __future__ import annotations

from dataclasses import dataclass


class RedriveError(Exception):
    """Base of every error redrive raises on purpose."""

    code: str = "internal_error"
    status: int = 500
    headers: dict[str, str] | None = None

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a configuration: where (file and path in the document) and what."""

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.message}"


class ConfigError(RedriveError):
    """The configuration cannot be used; ``problems`` lists every reason, not just the first."""

    code = "config_invalid"
    status = 422

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PluginError(RedriveError):
    """A plugin cannot be used: it failed to import, or what it registered clashes or is malformed."""

    code = "plugin_error"


class NotFound(RedriveError):
    code = "not_found"
    status = 404


class UnknownTrigger(NotFound):
    code = "unknown_trigger"


class BadRequest(RedriveError):
    code = "bad_request"
    status = 400


class InvalidJson(BadRequest):
    code = "invalid_json"


class InvalidRequest(BadRequest):
    code = "invalid_request"
    status = 422


class InvalidSignature(RedriveError):
    """A webhook's signature is missing, malformed, stale or signed by no configured secret."""

    code = "invalid_signature"
    status = 401


class PayloadTooLarge(RedriveError):
    code = "payload_too_large"
    status = 413


class IdempotencyKeyReused(RedriveError):
    code = "idempotency_key_reused"
    status = 422


class StorageUnavailable(RedriveError):
    code = "storage_unavailable"
    status = 503
