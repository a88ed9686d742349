"""Structured JSON logs with stable ``evt`` names, passed through the redactor before they are written."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from redrive.redaction import Redactor

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _redact_processor(redactor: Redactor) -> structlog.types.Processor:
    def redact(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        redacted = redactor.tree(event_dict)  # a new dict: the caller's is left as it was
        assert isinstance(redacted, dict)
        return redacted

    return redact


def _rename_event(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict["evt"] = event_dict.pop("event")
    return event_dict


def configure_logging(level: str = "info", redactor: Redactor | None = None) -> None:
    """Send JSON lines (``{"evt": ..., "level": ..., "ts": ...}``) to stdout, secrets masked."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info,
            _rename_event,
            _redact_processor(redactor or Redactor()),
            structlog.processors.JSONRenderer(serializer=lambda obj, **_: orjson.dumps(obj, default=str).decode()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
