"""Planner hints that SQL has no portable words for.

SQLite plans without statistics (redrive never runs ``ANALYZE``: a queue's distribution changes by the second), and
its default guess makes an equality on an index's first column look more selective than a list of primary keys.
So ``UPDATE executions ... WHERE id IN (30 ids) AND status = 'pending'`` read the whole ``pending`` range of
ix_executions_due, a queue's backlog, to find 30 rows it could have looked up by id. ``unindexed`` keeps such a
guard in the statement while telling SQLite not to serve it from an index (SQLite's documented unary ``+``);
PostgreSQL plans from statistics and gets the column as it is.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal


class Unindexed(ColumnElement[Any]):
    """A column that the statement tests but no index should serve (``unindexed``)."""

    inherit_cache = True
    # SQLAlchemy's cache key walks these (its documented recipe); the base declares it a list instance attribute.
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column
        self.type = column.type


def unindexed(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """``column`` for a test that must not choose the plan: on SQLite ``+column``, which no index serves."""
    return Unindexed(column)


@compiles(Unindexed)
def _as_is(element: Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(Unindexed, "sqlite")
def _plus(element: Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return f"+{compiler.process(element.column, **kw)}"
