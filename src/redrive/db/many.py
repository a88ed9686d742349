"""Many rows through one statement at the driver's cost (SQLite's writer).

An executemany through SQLAlchemy's ``Connection.execute(statement, rows)`` works on each row in Python before the
driver sees it: it builds the row's parameter dictionary and runs every column's bind processor through its own
machinery, about 5 us a row. For a completion batch of 32 that was about 150 us of the writer's CPU in its fenced
updates and as much in its attempts' insert (in process, thread CPU time: 400 -> 234 us and 440 -> 295 us with
``Many``). PostgreSQL's writer sends such a batch as arrays in one statement (the fenced completion with its
attempts, ``db.lists.by_column`` for the events); SQLite has no arrays, and its driver's ``executemany`` reuses one
prepared statement, so there ``Many`` hands the driver the rows as tuples:

- the statement is compiled once per connection (``many``), the order of its placeholders read from the
  compilation; the parameters it leaves to the caller are the rows' keys (an INSERT is compiled for them);
- each row's values are converted by their columns' own bind processors (the same text for a datetime, JSON for a
  JSON column, ``None`` included, and integers for booleans that SQLAlchemy would have sent), and a value the
  statement binds itself (a literal) by its own; one function per statement, written for its placeholders
  (``_row_builder``), turns a row into its tuple;
- the rows go to the driver's own cursor (``_driver``), in SQLAlchemy's transaction, and a driver error comes back
  as SQLAlchemy's (what the writer's retries and conflict checks read). ``Connection.exec_driver_sql``, used before,
  made a result and its metadata on every call: going round it took 3.3% off the writer's instructions per event
  with breakers, limits and ordering off and 3.6% with them on (``benchmarks/writer_cycles.py`` under callgrind).
  redrive registers no statement-level events (``before_cursor_execute``...), which this path does not fire.

The same compiled text serves the writer's statements that run once per claim or completion batch (``rows_of``,
``scalar_of``): ``Connection.execute`` walks a statement for its cache key on every call, which for a lease or a
promotion cost more than SQLite's run of it. What the writer reads back it reads as named tuples (``named``):
SQLAlchemy's ``Row`` is slow to read by column name.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import chain
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.engine import Connection, Result
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

Convert = Callable[[Any], Any]
Fields = tuple[tuple[str | None, Convert | None, Any], ...]  # per placeholder: row key, processor, fixed value
_INFO = "redrive.many"  # a connection's compiled statements, by name
_MAX_PARAMETERS = 32_766  # SQLite's limit on one statement's parameters (3.32 and later; redrive needs 3.35)


@dataclass(frozen=True, slots=True)
class Many:
    """A statement compiled for one dialect, run over many rows (``run``; ``inserted`` for an INSERT ... RETURNING)
    or once (``rows``, ``scalar``)."""

    sql: str
    fields: Fields
    results: tuple[Convert | None, ...] = ()  # per column of what it returns: how its value is converted (``scalar``)
    _params: Callable[[Mapping[str, Any]], tuple[Any, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_params", _row_builder(self.fields))

    @classmethod
    def compile(cls, statement: ClauseElement, dialect: Dialect, columns: Iterable[str] = ()) -> Many:
        """``statement``'s placeholders, in order: each parameter it leaves to the caller reads the row's value of its
        name; any other is a value the statement binds itself (a literal). ``columns``: an INSERT's columns (the keys
        of its rows), which its VALUES names; without them SQLAlchemy would name every column of the table."""
        compiled = statement.compile(dialect=dialect, column_keys=list(columns) or None)
        if not isinstance(compiled, SQLCompiler) or compiled.positiontup is None:
            raise ValueError(f"{dialect.name} does not bind positionally; Many is for SQLite's writer")
        fields: list[tuple[str | None, Convert | None, Any]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            if bind.expanding:  # its text would change with the list's length: ``db.lists`` binds a list as one value
                raise ValueError(f"{name!r} is an expanding IN; Many binds each parameter once (db.lists)")
            convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                fields.append((name, convert, None))
            else:
                value = bind.effective_value
                fields.append((None, None, convert(value) if convert is not None else value))
        returned = getattr(statement, "exported_columns", ())
        results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in returned)
        return cls(str(compiled), tuple(fields), results)

    def run(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute the statement once per row, in one ``executemany`` of the driver."""
        if rows:
            _driver(connection, self.sql, [self._params(row) for row in rows], many=True)

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Execute the statement once with ``params`` and return its rows as named tuples (as ``named`` makes them),
        with their values as the driver gives them (no result processors: for ids, text and integers; SQLite gives a
        boolean as 0 or 1).

        For the writer's statements run on every claim and completion batch: ``Connection.execute`` walks the whole
        statement for its cache key on every call, which for a lease or a promotion (subqueries, EXISTS tests, a CTE)
        cost more than SQLite's run of it; here the text was compiled once."""
        columns, found = _driver(connection, self.sql, self._params(params))
        return _named_rows(_names(columns), found) if found else []

    def typed(self, connection: Connection, params: Mapping[str, Any]) -> list[Any]:
        """``rows``, each value converted by its column's type as SQLAlchemy converts it (an aware datetime for a
        ``UtcDateTime``, a boolean for a ``Boolean``...): for a statement whose rows become objects, as the
        destinations' rows a claim plans with do."""
        columns, found = _driver(connection, self.sql, self._params(params))
        return _named_rows(_names(columns), found, self.results) if found else []

    def scalar(self, connection: Connection, params: Mapping[str, Any]) -> Any:
        """Execute the statement once with ``params``; the first column of its first row, converted by its type as
        SQLAlchemy converts it, or None when there is no row."""
        _, rows = _driver(connection, self.sql, self._params(params))
        if not rows:
            return None
        row = rows[0]
        convert = self.results[0]
        return row[0] if convert is None else convert(row[0])

    def inserted(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """For an ``INSERT ... VALUES (one row's placeholders) ... RETURNING``: insert ``rows`` with one statement
        (one per 32,766 parameters), its VALUES list written for their number, and return what RETURNING gives, as the
        driver gives it (no result processors: for ids and text) and in no particular order (SQLite's RETURNING
        promises none). The driver's ``executemany`` returns no rows, hence one statement of many rows; SQLite
        prepares one text per number of rows, as it did for SQLAlchemy's own multi-row insert."""
        one = "(" + ", ".join(["?"] * len(self.fields)) + ")"
        head, found, tail = self.sql.partition(f"VALUES {one}")
        if not found or "?" in head or "?" in tail:
            raise ValueError(f"not an INSERT of one row's VALUES: {self.sql}")
        chunk = max(1, _MAX_PARAMETERS // len(self.fields))
        made: list[Any] = []
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            sql = f"{head}VALUES {', '.join([one] * len(part))}{tail}"
            made += _driver(connection, sql, tuple(chain.from_iterable(map(self._params, part))))[1]
        return made


def _driver(connection: Connection, sql: str, params: Any, *, many: bool = False) -> tuple[Any, list[Any]]:
    """Run ``sql`` with ``params`` (``many``: once per row of them) on the driver's own cursor, in the connection's
    transaction; the cursor's ``description`` (None for a statement that returns nothing) and its rows.

    ``Connection.exec_driver_sql`` costs more than SQLite's run of a claim's or a promotion's statement: it builds an
    execution context and a result whose metadata it makes again for every call (about 90 us for one row of the
    destinations' 24 columns, against 11 us for the driver's own execute and fetch). Here the transaction is
    SQLAlchemy's, begun as it begins one before a first statement, and a driver error is raised as SQLAlchemy raises
    it (``DBAPIError.instance``: ``OperationalError`` for a locked or unreachable database, ``IntegrityError``...),
    which is what the writer's retries and conflict checks read."""
    if not connection.in_transaction():
        connection.begin()
    dbapi = connection.dialect.loaded_dbapi
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        return cursor.description, cursor.fetchall()
    except dbapi.Error as exc:
        hide = connection.engine.hide_parameters
        raise DBAPIError.instance(
            sql, params, exc, dbapi.Error, hide_parameters=hide, dialect=connection.dialect, ismulti=many
        ) from exc
    finally:
        cursor.close()


def _names(description: Any) -> tuple[str, ...]:
    """The column names of a cursor's ``description``."""
    return tuple(column[0] for column in description)


def _named_rows(
    names: tuple[str, ...], rows: Sequence[Any], converts: Sequence[Convert | None] | None = None
) -> list[Any]:
    """``rows`` as named tuples of the columns ``names``, each value converted by its column's entry in ``converts``
    where one is given: the one maker of the named rows ``Many.rows``, ``Many.typed`` and ``named`` return."""
    shape = _shape(names)
    make = tuple.__new__
    if converts is None:
        return [make(shape, row) for row in rows]
    return [
        make(
            shape, [value if convert is None else convert(value) for value, convert in zip(row, converts, strict=True)]
        )
        for row in rows
    ]


def _row_builder(fields: Fields) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function that turns a row into the tuple of ``fields``' values, written out for them (as ``dataclasses``
    writes ``__init__``): ``(row["a"], c1(row["b"]), f2)``.

    The writer runs it for every row it stores, for every placeholder: a generic loop over ``fields`` (a generator
    resumed per value, each entry unpacked and tested) was a visible share of SQLite's hot path. The keys are written
    with ``repr`` and the processors and fixed values are the function's globals, so no value of a row or of the
    statement becomes code.
    """
    scope: dict[str, Any] = {}
    values: list[str] = []
    for index, (name, convert, fixed) in enumerate(fields):
        if name is None:
            scope[f"f{index}"] = fixed
            values.append(f"f{index}")
        elif convert is None:
            values.append(f"row[{name!r}]")
        else:
            scope[f"c{index}"] = convert
            values.append(f"c{index}(row[{name!r}])")
    source = f"def params(row):\n    return ({''.join(value + ', ' for value in values)})\n"
    exec(source, scope)  # noqa: S102 (the text is written above from the statement's own placeholder names)
    built: Callable[[Mapping[str, Any]], tuple[Any, ...]] = scope["params"]
    return built


def many(connection: Connection, name: str, statement: ClauseElement, columns: Iterable[str] = ()) -> Many:
    """The statement ``name`` compiled for ``connection`` (``Many.compile`` the first time on it): kept in the
    connection's ``info``, which lives as long as the driver's connection, the way the driver keeps its prepared
    statements."""
    kept: dict[str, Many] = connection.info.setdefault(_INFO, {})
    found = kept.get(name)
    if found is None:
        found = kept[name] = Many.compile(statement, connection.dialect, columns)
    return found


@cache
def _shape(columns: tuple[str, ...]) -> type[tuple[Any, ...]]:
    return namedtuple("Row", columns, rename=True)  # a column whose name is no identifier is read by position


def named(result: Result[Any]) -> list[Any]:
    """``result``'s rows as named tuples of its columns, read by name as SQLAlchemy's rows are.

    SQLAlchemy's ``Row`` finds a column by name in about 0.3 us (a failed attribute lookup, then its key map), a
    named tuple in 0.04 us, for 0.2 us to make; the writer reads several columns of every row it claims or
    completes."""
    return _named_rows(tuple(result.keys()), result.all())


def run_of(
    connection: Connection,
    name: str,
    statement: Executable,
    rows: Sequence[Mapping[str, Any]],
    columns: Iterable[str] = (),
) -> None:
    """Run ``statement`` once per row of ``rows``: on SQLite through ``Many.run`` (kept as ``name``; ``columns``: an
    INSERT's), elsewhere as SQLAlchemy's executemany."""
    if not rows:
        return
    if connection.dialect.name == "sqlite":
        assert isinstance(statement, ClauseElement)
        many(connection, name, statement, columns).run(connection, rows)
    else:
        connection.execute(statement, rows)


def rows_of(connection: Connection, name: str, statement: Executable, params: Mapping[str, Any]) -> list[Any]:
    """The rows of ``statement`` (kept as ``name``) run once with ``params``, ``named``: on SQLite compiled once per
    connection (``Many.rows``: booleans as 0 or 1, values as the driver gives them), elsewhere through
    ``Connection.execute``. For statements that return ids, integers, text and flags read for their truth."""
    if connection.dialect.name == "sqlite":
        assert isinstance(statement, ClauseElement)
        return many(connection, name, statement).rows(connection, params)
    return named(connection.execute(statement, params))


def scalar_of(connection: Connection, name: str, statement: Executable, params: Mapping[str, Any]) -> Any:
    """The first value of ``statement``'s first row (kept as ``name``), run once with ``params`` and converted by its
    type; None when there is no row. On SQLite through ``Many.scalar``, elsewhere through ``Connection.execute``."""
    if connection.dialect.name == "sqlite":
        assert isinstance(statement, ClauseElement)
        return many(connection, name, statement).scalar(connection, params)
    return connection.execute(statement, params).scalar()
