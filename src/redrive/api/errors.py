"""One place that turns every failure into ``{"error": {"code", "message"}}`` with the right status."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from redrive.api.responses import Json
from redrive.db.engine import storage_unavailable
from redrive.errors import RedriveError

log = structlog.get_logger("redrive.api")

_HTTP_CODES = {
    400: "invalid_json",
    404: "not_found",
    405: "method_not_allowed",
    401: "unauthenticated",
    403: "forbidden",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Json:
    """The JSON error body every route uses."""
    return Json({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _describe(error: dict[str, object]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")  # type: ignore[attr-defined]
    return f"{location}: {error.get('msg')}" if location else str(error.get("msg"))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(RedriveError)
    async def _redrive_error(request: Request, exc: RedriveError) -> Json:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Json:
        message = "; ".join(_describe(e) for e in exc.errors()) or "the request is not valid"
        return error_response(422, "invalid_request", message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Json:
        return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> Json:
        return failure_response(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Json:
        return failure_response(request, exc)


def failure_response(request: Request, exc: Exception) -> Json:
    """The answer to an exception a route raised (also used by the ingest front, which has no handlers)."""
    if isinstance(exc, RedriveError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    if storage_unavailable(exc):
        log.error("storage_unavailable", path=request.url.path, error=str(exc.orig))
        return error_response(503, "storage_unavailable", "the database is unavailable; try again shortly")
    if isinstance(exc, DBAPIError):
        log.error("database_error", path=request.url.path, error=str(exc.orig))
        return error_response(500, "internal_error", "the database refused the write; see the server log")
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred; see the server log")
