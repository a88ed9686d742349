"""Structured JSON logs with stable ``evt`` names, passed through the redactor before they are written."""

from __future__ import annotations

import atexit
import logging
import select
import sys
import threading
from collections.abc import Iterable, Iterator, MutableMapping
from queue import SimpleQueue
from typing import Any, BinaryIO, cast

import orjson
import structlog
from sqlalchemy.exc import DBAPIError

from redrive.clock import utcnow
from redrive.db.engine import storage_unavailable
from redrive.observe.redaction import Redactor

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


def _timestamp(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict["ts"] = utcnow()  # orjson writes it (like every time in a line) as ISO 8601 with a Z
    return event_dict


def _json_bytes(event_dict: Any, **_: Any) -> bytes:
    return orjson.dumps(event_dict, default=str, option=orjson.OPT_UTC_Z)


def log_failure(log: Any, evt: str, exc: BaseException, **fields: Any) -> None:
    """Log a background loop's failed pass as ``evt``: the database being unreachable as one warning line with the
    driver's message, anything else as an error with its traceback.

    An outage is expected and lasts: the loops meet it on every pass (the claim loop once per poll interval), and a
    traceback each time says nothing new, fills the log, and is rendered on the event loop (with a development
    renderer, seconds per traceback: long enough for ``/healthz`` to stop answering).
    """
    if storage_unavailable(exc):
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        log.warning(evt, **fields, error=str(cause).strip())
    else:
        log.error(evt, **fields, exc_info=exc)


class LineWriter:
    """Writes log lines to ``file`` from a thread of its own, so no caller (the event loop above all) waits on a
    ``write`` system call: lines queued together go out in one write, in the order they were logged.

    ``close`` (also run at exit) writes what is queued. A process killed with SIGKILL loses the lines of the last
    instant that were not written yet; the events and executions they describe are in the database.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._queue: SimpleQueue[bytes | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="redrive-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def write(self, line: bytes) -> None:
        """Queue ``line`` (the logger's one call per line)."""
        self._queue.put(line)

    def flush(self) -> None:
        """Nothing to do here: the writing thread flushes after each write."""

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            lines = [self._queue.get()]
            while not self._queue.empty() and len(lines) < 1024:
                lines.append(self._queue.get())
            done = None in lines
            for chunk in whole_lines(line for line in lines if line is not None):
                self._file.write(chunk)
            self._file.flush()
            if done:
                return


def whole_lines(lines: Iterable[bytes], limit: int = select.PIPE_BUF) -> Iterator[bytes]:
    """``lines`` joined into writes of at most ``limit`` bytes (a longer line alone): a pipe writes that much
    atomically, so the lines of the processes of one ``redrive up --processes N`` never cut into each other."""
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        if chunk and size + len(line) > limit:
            yield b"".join(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line)
    if chunk:
        yield b"".join(chunk)


def configure_logging(
    level: str = "info", redactor: Redactor | None = None, *, background: bool = False
) -> LineWriter | None:
    """Send JSON lines (``{"evt": ..., "level": ..., "ts": ...}``) to stdout, secrets masked.

    A line is rendered straight to bytes for stdout's binary buffer: every accepted event logs one, so the text
    layer's encode and the ISO formatting in Python were a visible cost. ``background`` hands the writes to a
    ``LineWriter`` (the server does), which is returned; otherwise each line is written and flushed before the call
    returns.
    """
    writer = LineWriter(sys.stdout.buffer) if background else None
    file = cast(BinaryIO, writer) if writer is not None else sys.stdout.buffer  # it writes and flushes, as asked
    structlog.configure(
        processors=_processors(redactor or Redactor()),
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.BytesLoggerFactory(file=file),
        cache_logger_on_first_use=True,
    )
    return writer


def _processors(redactor: Redactor) -> list[structlog.types.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _timestamp,
        structlog.processors.format_exc_info,
        _rename_event,
        _redact_processor(redactor),
        structlog.processors.JSONRenderer(serializer=_json_bytes),
    ]


def stderr_logger() -> Any:
    """A logger writing the same JSON lines to stderr, without touching the process-wide configuration: for CLI
    commands, whose stdout belongs to their output (``tokens create`` prints a secret there, alone)."""
    return structlog.wrap_logger(structlog.BytesLogger(sys.stderr.buffer), processors=_processors(Redactor()))
