"""One place that turns every failure into ``{"error": {"code", "message"}}`` with the right status."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from redrive.api.responses import Json
from redrive.db.engine import storage_unavailable
from redrive.errors import (
    Forbidden,
    HttpError,
    InvalidJson,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RedriveError,
    StorageUnavailable,
    Unauthenticated,
)

log = structlog.get_logger("redrive.api")

# The framework's own HTTP errors (an unknown route, a wrong method), as the classes of our tree.
_HTTP_ERRORS: dict[int, type[RedriveError]] = {
    400: InvalidJson,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
}


def error_response(error: RedriveError) -> Json:
    """The JSON error body every route uses: the error's status, code and message (and headers, if it has any)."""
    return Json(
        {"error": {"code": error.code, "message": error.message}}, status_code=error.status, headers=error.headers
    )


def _framework_error(request: Request, exc: StarletteHTTPException) -> RedriveError:
    """The framework's error as ours; the router's two (no route, a route without this method) say what was asked
    and what would be taken, and a 405 keeps the ``Allow`` header the router set (HTTP requires it)."""
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":  # the router's own: no route matched the path
        message = f"no route answers {request.method} {request.url.path}; the API's routes are listed at /docs"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow")
        takes = f"; it takes {allowed}" if allowed else ""
        message = f"{request.url.path} does not take {request.method}{takes}"
    known = _HTTP_ERRORS.get(exc.status_code)
    error = HttpError(message, exc.status_code) if known is None else known(message)
    error.headers = dict(exc.headers) if exc.headers else None
    return error


def _describe(error: dict[str, object]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")  # type: ignore[attr-defined]
    return f"{location}: {error.get('msg')}" if location else str(error.get("msg"))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(RedriveError)
    async def _redrive_error(request: Request, exc: RedriveError) -> Json:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Json:
        message = "; ".join(_describe(e) for e in exc.errors()) or "the request is not valid"
        return error_response(InvalidRequest(message))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Json:
        return error_response(_framework_error(request, exc))

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> Json:
        return failure_response(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Json:
        return failure_response(request, exc)


def failure_response(request: Request, exc: Exception) -> Json:
    """The answer to an exception a route raised (also used by the ingest front, which has no handlers)."""
    if isinstance(exc, RedriveError):
        return error_response(exc)
    if storage_unavailable(exc):
        log.error("storage_unavailable", path=request.url.path, error=str(exc.orig))
        return error_response(StorageUnavailable("the database is unavailable; try again shortly"))
    if isinstance(exc, DBAPIError):
        log.error("database_error", path=request.url.path, error=str(exc.orig))
        return error_response(RedriveError("the database refused the write; see the server log"))
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return error_response(RedriveError("an unexpected error occurred; see the server log"))
