"""A list bound as one parameter: a statement whose text never changes with the list's length.

SQLAlchemy binds a list for ``IN`` as an expanding parameter, one placeholder per value, and renders the
statement's text again on every execution to place them; SQLite then prepares one text per length. The writer's
hot statements (the claim, the completion's fence, the promotion of ordering keys, the parking of new rows) bind
their lists with ``in_list(column, name)`` instead: the whole list as one value, a JSON array read with
``json_each`` on SQLite, an array on PostgreSQL. Callers pass a plain sequence of integers or strings; the
parameter's type converts it for the dialect. Counted in instructions (``benchmarks/writer_cycles.py`` under
callgrind), this took 1.4% off the writer's work per event with breakers, limits and ordering on, and 1.1% with
them off (where a change that touches nothing there moved the count by 0.6%).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Dialect, String, Text, TypeDecorator, bindparam, literal
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean

from redrive.db.engine import json_dumps, json_text


class BoundList(TypeDecorator[Sequence[Any]]):
    """A sequence of integers (``text=False``) or strings as one bound value: an array on PostgreSQL, a JSON array
    (text) elsewhere."""

    impl = String
    cache_ok = True

    def __init__(self, *, text: bool = False) -> None:
        super().__init__()
        self.text = text

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(Text() if self.text else BigInteger()))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Sequence[Any] | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        values = [str(v) for v in value] if self.text else [int(v) for v in value]
        return values if dialect.name == "postgresql" else json_text(values)


class InList(ColumnElement[bool]):
    """``column`` is one of the values bound as ``name`` (``in_list``)."""

    inherit_cache = True
    # SQLAlchemy's cache key walks these (its documented recipe); the base declares it a list instance attribute.
    _traverse_internals = [  # noqa: RUF012
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()
    _is_implicitly_boolean = True  # a predicate: SQLite gets no ``= 1`` after it, which no index would serve

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.text = column.type.python_type is str
        self.values = bindparam(name, type_=BoundList(text=self.text))


def in_list(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column IN (the values bound as name)``, the list (integers, or strings for a text column) bound as one
    parameter whatever its length."""
    return InList(column, name)


@compiles(InList)
def _any(element: InList, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = compiler.process(element.column, **kw), compiler.process(element.values, **kw)
    array = "TEXT[]" if element.text else "BIGINT[]"  # typed: an empty list has no element to infer it from
    return f"{column} = ANY (CAST({values} AS {array}))"


@compiles(InList, "sqlite")
def _json_each(element: InList, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = compiler.process(element.column, **kw), compiler.process(element.values, **kw)
    return f"{column} IN (SELECT value FROM json_each({values}))"  # noqa: S608 (compiled SQL: a column, a placeholder)


def one_of(column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN (values)`` for a fixed list (statuses): each value bound on its own, so the statement is rendered
    once, not again on every execution as a list bound for ``IN`` is."""
    return column.in_([literal(value, type_=column.type) for value in values])


def by_column(rows: Sequence[Mapping[str, Any]], *, json: Iterable[str] = ()) -> dict[str, list[Any]]:
    """PostgreSQL: ``rows`` (one or more mappings with the same keys: a table's columns) as one list per column, the
    parameters of an ``INSERT ... SELECT ... FROM unnest(CAST(:column AS type[]), ...)`` that writes a batch in one
    statement. The ``json`` columns are encoded as the engine encodes a JSON column (``db.engine.json_dumps``) and
    travel in a text array, for the statement to cast to jsonb."""
    arrays = {column: [row[column] for row in rows] for column in rows[0]}
    for column in json:
        arrays[column] = [json_dumps(value) for value in arrays[column]]
    return arrays
