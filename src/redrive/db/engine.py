"""Engines per dialect, set up the way redrive relies on.

SQLite: WAL, ``synchronous=FULL`` (a 2xx means the row survives power loss), a busy timeout, foreign keys, and
``BEGIN IMMEDIATE`` for the write connection (SQLAlchemy's documented recipe: the driver's own transaction handling
is switched off and the ``begin`` event emits the statement), so a writer takes the lock when it starts instead of
failing on upgrade. Several processes may write one file (``redrive up --processes N``): before ``BEGIN IMMEDIATE``
a write connection also takes an exclusive ``flock`` on ``<database>-writer`` and gives it back when the connection
returns to its pool, after the commit or rollback. SQLite's own lock decides who writes; the ``flock`` only makes
the waiting fair and prompt: the kernel wakes the next writer the moment the lock is free, where SQLite's busy
handler polls with sleeps of up to 100 ms and lets one process starve the other (``benchmarks/sqlite_writers.py``).

PostgreSQL: psycopg 3 with a pre-pinged pool, always speaking UTF-8 (a server whose default client encoding is
SQL_ASCII would otherwise hand back bytes where text is expected). The service's read engine (``reader=True``) runs
in autocommit: under READ COMMITTED each statement takes its own snapshot whether or not a transaction wraps it, so
the ``BEGIN`` before a read job's first statement and the ``ROLLBACK`` when its connection goes back to the pool were
two round trips of every request (half of an authenticated request's four) that bought nothing. JSON columns are
encoded and decoded with orjson on both (the standard library's encoder was a visible part of every insert's cost).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from contextlib import closing
from functools import cache
from typing import Any, TypeGuard

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from redrive.errors import StorageUnsupported

CONNECT_TIMEOUT = 5  # seconds, PostgreSQL
WRITER_CACHED_STATEMENTS = 1024
"""Prepared statements the sqlite3 module keeps on an SQLite write connection (its default, kept for reads: 128),
by SQL text.

A statement whose list of ids or rows varies in length has one text per length (SQLAlchemy's expanding ``IN`` and
multi-row ``VALUES``): the writer's hot statements alone came to about 250 texts in an end-to-end run of an ordered,
limited trigger, so with 128 the cache kept evicting them and SQLite parsed and planned most statements again,
the ordered claim's and parking's among them (``benchmarks/destinations_e2e.py``). A statement the size of
parking's takes about 17 KB prepared, so a full cache is some 17 MB on the one write connection a writer engine has.
"""
_WRITE_TURNS: dict[tuple[int, str], int] = {}  # (pid, lock file) -> descriptor, opened at a writer's first engine


def is_sqlite(url: str) -> bool:
    """True for an SQLite URL."""
    return url.startswith("sqlite")


def storage_unavailable(exc: BaseException) -> TypeGuard[DBAPIError]:
    """True when ``exc`` says the database cannot be reached or lost the connection, as opposed to refusing one
    statement: ingest answers 503 for it, workers retry their writes, the writer fails a whole batch at once."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


_CONFLICT_STATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


def conflicted(exc: BaseException) -> bool:
    """True when PostgreSQL aborted the transaction because it raced another one (a deadlock, a serialization
    failure): nothing was wrong with its statements, so running it again is the remedy."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _CONFLICT_STATES


def json_dumps(value: Any) -> str:
    """Encode a JSON column value (orjson; anything it does not know is written as ``str``)."""
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def json_text(value: Any) -> str:
    """Encode ``value`` as JSON text with orjson, like everything else redrive writes; what orjson refuses (an
    integer past 64 bits, a string holding a lone surrogate) the standard library still writes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def json_loads(value: str | bytes | int | float) -> Any:
    """Decode a JSON column value.

    On SQLite a column declared ``JSON`` has NUMERIC affinity, so a document that is a bare number (an event whose
    body is ``42``) is stored as the INTEGER or REAL it spells and comes back as that number, not as text: it is the
    document already. (The affinity also stores ``1.0`` as the integer 1, an equal JSON number, and an integer past
    64 bits, which orjson accepts up to 2**64 - 1, as the nearest REAL.)
    """
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


SQLITE_NEEDED = (3, 35, 0)
"""The oldest SQLite redrive runs on: ``RETURNING`` came in 3.35. It also needs the JSON functions (``json_each``:
an ordered ingest reads its keys through it), built in since 3.38 and compiled in by most builds before."""


def sqlite_problem(version: tuple[int, int, int], has_json: bool) -> str | None:
    """Why an SQLite library of ``version`` (with or without the JSON functions) cannot serve redrive, or None."""
    shown = ".".join(str(part) for part in version)
    advice = "use a Python linked against a newer SQLite, or PostgreSQL"
    if version < SQLITE_NEEDED:
        needed = ".".join(str(part) for part in SQLITE_NEEDED[:2])
        return f"SQLite {shown} is too old for redrive, which needs {needed} or newer (RETURNING): {advice}"
    if not has_json:
        return f"SQLite {shown} was built without the JSON functions (json_each), which redrive needs: {advice}"
    return None


@cache
def _has_json() -> bool:
    """Whether the process's SQLite library has the JSON functions (asked once, of an in-memory database)."""
    with closing(sqlite3.connect(":memory:")) as probing:
        try:
            probing.execute("SELECT count(*) FROM json_each('[1]')").fetchone()
        except sqlite3.OperationalError:  # no such table-valued function
            return False
    return True


def _check_sqlite() -> None:
    """Refuse (``StorageUnsupported``) an SQLite library redrive cannot run on, before a connection is used."""
    problem = sqlite_problem(sqlite3.sqlite_version_info, _has_json())
    if problem is not None:
        raise StorageUnsupported(problem)


def _lists_in_binary(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    """PostgreSQL: send list parameters (the arrays the hot statements bind: ids, tokens, statuses, times) in the
    binary format. In text psycopg writes an array literal, testing and escaping every element with a regular
    expression; binary sends the elements as they are: about 2.7 us less an element here (a statement of 5 arrays of
    32: 656 against 231 us). The completion of 32 rows (11 arrays then) took 1.52 ms of the writer thread's CPU in
    text and 0.84 ms in binary. Every such parameter is cast to its array type in its statement (``db.lists``, the
    completion, the inserts of events and executions), which either format satisfies."""
    from psycopg.types.array import ListBinaryDumper  # psycopg only when PostgreSQL is used: SQLite never loads it

    dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)


def make_engine(url: str, *, writer: bool = False, reader: bool = False, pool_size: int = 10) -> Engine:
    """An engine for ``url``; ``writer=True`` makes SQLite transactions start with BEGIN IMMEDIATE; ``reader=True``
    is for read jobs only, and on PostgreSQL runs them in autocommit (see above)."""
    codec: dict[str, Any] = {"json_serializer": json_dumps, "json_deserializer": json_loads}
    if not is_sqlite(url):
        # A short connect timeout: while the server is unreachable, callers get an error (ingest: 503) promptly.
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT, "client_encoding": "UTF8"},
            **({"isolation_level": "AUTOCOMMIT"} if reader else {}),
            **codec,
        )
        event.listen(engine, "connect", _lists_in_binary)
        return engine
    engine = create_engine(
        url,
        pool_size=1 if writer else pool_size,
        max_overflow=0 if writer else pool_size,
        connect_args={"cached_statements": WRITER_CACHED_STATEMENTS} if writer else {},
        **codec,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        _check_sqlite()
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=10000", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    turn = _write_turn(engine, url) if writer else None

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if turn is not None:
            fcntl.flock(turn, fcntl.LOCK_EX)  # blocks this thread only: the GIL is released while it waits
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def write_turn_path(url: str) -> str | None:
    """The file whose ``flock`` orders the writers of the SQLite file at ``url`` (None: in memory, no turns)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.abspath(database) + "-writer"


def _write_turn(engine: Engine, url: str) -> int | None:
    """The descriptor whose ``flock`` orders the writers of one SQLite file, released at every pool check-in.

    One descriptor per process and file, shared by its engines: the engines of one process never wait on each
    other's ``flock`` (a write begun inside another would hang there, where SQLite's busy timeout makes it fail), so
    between them SQLite's lock alone decides, as it does with a writer that takes no turn. Keyed by pid: a forked
    child opens its own, or it would share its parent's (and its siblings') lock instead of taking turns with them.
    """
    path = write_turn_path(url)
    if path is None:
        return None
    turn = _WRITE_TURNS.get((os.getpid(), path))
    if turn is None:
        turn = _WRITE_TURNS[(os.getpid(), path)] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        fcntl.flock(turn, fcntl.LOCK_UN)

    return turn


def dialect_insert(engine_or_conn: Engine | Connection) -> Any:
    """The dialect's ``insert`` (it has ``on_conflict_do_nothing``/``on_conflict_do_update``)."""
    return sqlite.insert if engine_or_conn.dialect.name == "sqlite" else postgresql.insert
