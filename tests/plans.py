"""Query plans for tests that prove a statement reads an index: ``EXPLAIN`` with the statement's bound parameters."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import psycopg
import psycopg.sql
from sqlalchemy import ClauseElement, Connection, Engine, event, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler


class Explain(Executable, ClauseElement):
    """``EXPLAIN <statement>`` with the statement's own bound parameters (SQLAlchemy's documented recipe)."""

    inherit_cache = False

    def __init__(self, statement: Any, prefix: str) -> None:
        self.statement = statement
        self.prefix = prefix


@compiles(Explain)
def _explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{element.prefix} {compiler.process(element.statement, **kw)}"


def explain_plan(engine: Engine, statement: Any, params: dict[str, Any] | None = None) -> str:
    """The plan of a SELECT ``statement``: JSON text on PostgreSQL, lines on SQLite."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            document = connection.execute(Explain(statement, "EXPLAIN (FORMAT JSON)"), params).scalar_one()
            return json.dumps(document if not isinstance(document, str) else json.loads(document))
        # The driver's rows: SQLAlchemy would apply the statement's column types to the plan's columns.
        cursor = connection.execute(Explain(statement, "EXPLAIN QUERY PLAN"), params).cursor
        assert cursor is not None
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def executed_plan(engine: Engine, statement: Any, params: dict[str, Any], *, analyze: bool = False) -> str:
    """The plan of ``statement`` exactly as executed with ``params`` (any statement, UPDATE ... RETURNING too):
    the driver is handed ``EXPLAIN`` + the compiled SQL with its real parameters, and the plan comes back as rows.
    ``analyze`` (PostgreSQL) runs it, in a transaction rolled back after, for the rows each node really read.
    """
    options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
    prefix = f"EXPLAIN ({options}) " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "

    def explain(conn: Any, cursor: Any, sql: str, parameters: Any, context: Any, executemany: bool) -> Any:
        return prefix + sql, parameters

    with engine.connect() as connection:
        event.listen(connection, "before_cursor_execute", explain, retval=True)
        try:
            cursor = connection.execute(statement, params).cursor
            assert cursor is not None
            rows = cursor.fetchall()
        finally:
            event.remove(connection, "before_cursor_execute", explain)
            connection.rollback()  # whatever EXPLAIN ANALYZE changed goes; leave no transaction behind
    if engine.dialect.name == "postgresql":
        document = rows[0][0]
        return json.dumps(document if not isinstance(document, str) else json.loads(document))
    return "\n".join(str(row[-1]) for row in rows)


def integers(engine: Engine, first: int, last: int) -> str:
    """A SELECT of the integers ``first``..``last`` as column ``i``, for a bulk ``INSERT ... SELECT``: a recursive
    CTE on SQLite, ``generate_series`` on PostgreSQL."""
    if engine.dialect.name == "sqlite":
        return f"WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) SELECT i FROM n"
    return f"SELECT i FROM generate_series({first}, {last}) i"


def plan_nodes(plan: Any) -> list[dict[str, Any]]:
    """Every node of a PostgreSQL JSON plan, depth first."""
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(plan_nodes(child))
    return found


def seed_trigger_and_event(connection: Connection, at: datetime) -> tuple[int, int]:
    """One trigger and one event for a bulk load of executions to reference: (trigger id, event id)."""
    trigger_id = connection.execute(
        text(
            "INSERT INTO triggers (name, action_kind, paused, created_at, updated_at) "
            "VALUES ('bulk', 'http', false, :t, :t) RETURNING id"
        ),
        {"t": at},
    ).scalar_one()
    event_id = connection.execute(
        text(
            "INSERT INTO events (trigger_id, body_sha256, headers, payload, filtered, received_at, replay_count) "
            "VALUES (:trigger, :sha, '{}', '{}', false, :t, 0) RETURNING id"
        ),
        {"trigger": trigger_id, "sha": "0" * 64, "t": at},
    ).scalar_one()
    return trigger_id, event_id


def generic_plan(engine: Engine, statement: Any, params: dict[str, Any]) -> str:
    """PostgreSQL: the plan of ``statement`` made without its parameters' values (JSON text), as a statement the
    driver prepared is run once PostgreSQL stops planning it for each call (after five calls). A partial index
    serves such a plan only where the statement's own words imply the index's predicate."""
    compiled = statement.compile(dialect=engine.dialect)
    sql = re.sub(r"%\((\w+)\)s", r":\1", str(compiled)).replace("%%", "%")
    return prepared_plan(engine, sql, compiled.construct_params(params))


def prepared_plan(engine: Engine, sql: str, params: dict[str, Any], *, analyze: bool = False, **settings: str) -> str:
    """PostgreSQL: ``EXPLAIN`` (``analyze``: ``EXPLAIN ANALYZE``, rolled back) of ``sql``, a text with ``:name``
    parameters, prepared and run by its generic plan with ``params``; ``settings`` are set first (``enable_hashjoin
    ="off"``)."""
    names = list(dict.fromkeys(re.findall(r"(?<!:):(\w+)", sql)))
    numbered = re.sub(r"(?<!:):(\w+)", lambda match: f"${names.index(match[1]) + 1}", sql)
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as connection:
        connection.execute(f"PREPARE generic AS {numbered}")
        connection.execute("SET plan_cache_mode = force_generic_plan")
        for name, value in settings.items():
            connection.execute(psycopg.sql.SQL("SET {} = {}").format(psycopg.sql.Identifier(name), value))
        arguments = psycopg.sql.SQL(", ").join(psycopg.sql.Literal(params[name]) for name in names)
        options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
        explain = psycopg.sql.SQL(f"EXPLAIN ({options}) EXECUTE generic({{}})").format(arguments)
        [[document]] = psycopg.ClientCursor(connection).execute(explain).fetchall()
        connection.rollback()
    return json.dumps(document)
