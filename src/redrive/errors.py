"""One exception tree for everything redrive reports to a caller.

Each error class carries a stable machine ``code`` (clients rely on it: it never changes) and the HTTP status it maps
to; the API turns any of them into ``{"error": {"code": ..., "message": ...}}`` in one handler. Codes are never made
up at a raise site: a new code is a new class here, drawn below (a unit test holds the drawing to the classes).

    RedriveError (500 internal_error)
    ├── ConfigError (422 config_invalid)              a trigger file or setting is wrong; lists every problem
    ├── PluginError (500 plugin_error)             a plugin failed to load or registered something unusable
    ├── BadRequest (400 bad_request)
    │   ├── InvalidJson (400 invalid_json)
    │   ├── ClientDisconnected (400 client_disconnected)
    │   └── InvalidRequest (422 invalid_request)
    │       ├── InvalidIdempotencyKey (422 invalid_idempotency_key)
    │       ├── FilterError (422 filter_error)
    │       ├── InvalidOrderingKey (422 invalid_ordering_key)
    │       ├── InvalidWindow (422 invalid_window)
    │       ├── InvalidRole (422 invalid_role)
    │       ├── InvalidTokenName (422 invalid_name)
    │       ├── TokenExists (422 token_exists)
    │       ├── InvalidSnooze (422 invalid_snooze)
    │       ├── NumberOutOfRange (422 number_out_of_range)
    │       ├── UnknownParameter (422 unknown_parameter)
    │       └── UnexpectedBody (422 unexpected_body)
    ├── Unauthenticated (401 unauthenticated)
    │   └── InvalidSignature (401 invalid_signature)
    ├── Forbidden (403 forbidden)
    ├── NotFound (404 not_found)
    │   ├── UnknownTrigger (404 unknown_trigger)
    │   └── UnknownAlert (404 unknown_alert)
    │   └── UnknownDestination (404 unknown_destination)
    ├── MethodNotAllowed (405 method_not_allowed)
    ├── Conflict (409 conflict)
    │   ├── NotReplayable (409 not_replayable)
    │   ├── ReplayLimit (409 replay_limit)
    │   ├── ReplayInProgress (409 replay_in_progress)
    │   └── NotRunning (409 not_running)
    ├── PayloadTooLarge (413 payload_too_large)
    ├── UnsupportedEncoding (415 unsupported_encoding)
    ├── IdempotencyKeyReused (422 idempotency_key_reused)
    ├── TooManyRequests (429 too_many_requests)
    │   ├── RateLimited (429 rate_limited)
    │   └── TooManyFailures (429 too_many_failures)
    ├── HttpError (4xx/5xx http_error)                 an HTTP error the framework raised with no code of ours
    └── Unavailable (503 unavailable)
        ├── StorageUnavailable (503 storage_unavailable)
        ├── Starting (503 starting)
        ├── SchemaOutdated (503 schema_outdated)
        ├── DatabaseEncoding (503 database_encoding)
        └── StorageUnsupported (503 storage_unsupported)
"""

from __future__ import annotations

from dataclasses import dataclass


class RedriveError(Exception):
    """Base of every error redrive raises on purpose: a ``code``, a ``status`` and a sentence for a human."""

    code: str = "internal_error"
    status: int = 500
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class BadRequest(RedriveError):
    """The request cannot be understood."""

    code = "bad_request"
    status = 400


class InvalidJson(BadRequest):
    """The body is not JSON."""

    code = "invalid_json"


class ClientDisconnected(BadRequest):
    """The client went away before its whole body arrived; nothing was stored."""

    code = "client_disconnected"


class InvalidRequest(BadRequest):
    """The request is understood but a value in it is not acceptable."""

    code = "invalid_request"
    status = 422


class NumberOutOfRange(InvalidRequest):
    """A payload holds a number redrive cannot carry exactly: an integer outside 64 bits, or one too large for a
    double. Refused, so that no payload is stored or delivered with a number other than the one sent."""

    code = "number_out_of_range"


class UnknownParameter(InvalidRequest):
    """A query parameter the route does not declare: refused, never ignored (an ignored filter lists everything)."""

    code = "unknown_parameter"


class UnexpectedBody(InvalidRequest):
    """A body with content sent to a route that takes none: refused, never ignored (an option sent in it, mistyped or
    meant as a query parameter, would silently not apply)."""

    code = "unexpected_body"


class InvalidIdempotencyKey(InvalidRequest):
    """The idempotency key found in the event is not a usable key."""

    code = "invalid_idempotency_key"


class FilterError(InvalidRequest):
    """The trigger's filter could not be evaluated on this event."""

    code = "filter_error"


class InvalidOrderingKey(InvalidRequest):
    """The trigger orders its deliveries by a key this event does not render (missing, empty or too long)."""

    code = "invalid_ordering_key"


class InvalidWindow(InvalidRequest):
    """A time window (``since``, ``bucket``) is not one redrive accepts."""

    code = "invalid_window"


class InvalidRole(InvalidRequest):
    """A token role that does not exist."""

    code = "invalid_role"


class InvalidTokenName(InvalidRequest):
    """A token name that is empty or too long."""

    code = "invalid_name"


class TokenExists(InvalidRequest):
    """An active token already has that name."""

    code = "token_exists"


class InvalidSnooze(InvalidRequest):
    """A snooze that gives neither or both of ``until`` and ``grows_by``, or one that has already run out."""

    code = "invalid_snooze"


class Unauthenticated(RedriveError):
    """No credential, or one that is not valid."""

    code = "unauthenticated"
    status = 401


class InvalidSignature(Unauthenticated):
    """A webhook's signature is missing, malformed, stale or signed by no configured secret."""

    code = "invalid_signature"


class Forbidden(RedriveError):
    """The caller's role does not allow this."""

    code = "forbidden"
    status = 403


class NotFound(RedriveError):
    """The thing named does not exist."""

    code = "not_found"
    status = 404


class UnknownDestination(NotFound):
    """No destination has that name (none declared, none seen)."""

    code = "unknown_destination"


class UnknownTrigger(NotFound):
    """No trigger has that name."""

    code = "unknown_trigger"


class UnknownAlert(NotFound):
    """No alert rule has that name."""

    code = "unknown_alert"


class MethodNotAllowed(RedriveError):
    """The route exists, not with this method."""

    code = "method_not_allowed"
    status = 405


class Conflict(RedriveError):
    """The request does not fit the current state of what it names."""

    code = "conflict"
    status = 409


class NotReplayable(Conflict):
    """The execution is not in a state that can be replayed."""

    code = "not_replayable"


class ReplayLimit(Conflict):
    """The execution was replayed as often as allowed."""

    code = "replay_limit"


class ReplayInProgress(Conflict):
    """A bulk replay of that trigger is already running."""

    code = "replay_in_progress"


class NotRunning(Conflict):
    """The bulk replay has already finished."""

    code = "not_running"


class PayloadTooLarge(RedriveError):
    """The body exceeds the trigger's limit."""

    code = "payload_too_large"
    status = 413


class UnsupportedEncoding(RedriveError):
    """A compressed (or otherwise encoded) body; redrive accepts bodies as sent."""

    code = "unsupported_encoding"
    status = 415


class IdempotencyKeyReused(RedriveError):
    """The key was used before with a different body."""

    code = "idempotency_key_reused"
    status = 422


class TooManyRequests(RedriveError):
    """Slow down; ``Retry-After`` says for how long."""

    code = "too_many_requests"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class RateLimited(TooManyRequests):
    """The execution was replayed too recently."""

    code = "rate_limited"


class TooManyFailures(TooManyRequests):
    """Too many failed authentications from this address."""

    code = "too_many_failures"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed authentications from this address; retry in {retry_after} s", retry_after)


class HttpError(RedriveError):
    """An HTTP error the web framework raised (an unknown route, say) that has no code of its own; ``status`` varies."""

    code = "http_error"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Unavailable(RedriveError):
    """The service cannot answer now; try again later."""

    code = "unavailable"
    status = 503


class StorageUnavailable(Unavailable):
    """The database cannot be reached; nothing was stored."""

    code = "storage_unavailable"


class Starting(Unavailable):
    """The service is still starting."""

    code = "starting"


class SchemaOutdated(Unavailable):
    """The database has not been migrated to the schema this redrive needs."""

    code = "schema_outdated"


class DatabaseEncoding(Unavailable):
    """The PostgreSQL database cannot store every payload (not UTF8)."""

    code = "database_encoding"


class StorageUnsupported(Unavailable):
    """The SQLite library cannot serve redrive: older than 3.35, or built without the JSON functions."""

    code = "storage_unsupported"
