"""Rows handed to SQLite's driver as tuples (``redrive.db.many``), against SQLAlchemy's own executemany.

SQLite only, but for the helpers that choose a path per dialect (``rows_of``, ``scalar_of``, ``run_of``): ``Many`` is
the SQLite writer's (PostgreSQL's sends such batches as arrays, ``db.lists.by_column``).
Whatever path a row takes, the database must hold the same text, JSON, numbers and flags, and a failure must reach
the writer as the same SQLAlchemy error.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    false,
    select,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.exc import IntegrityError, OperationalError

from redrive.db.engine import make_engine, storage_unavailable
from redrive.db.many import Many, many, named, rows_of, run_of, scalar_of
from redrive.db.schema import Json, UtcDateTime

metadata = MetaData()
things = Table(
    "many_things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UtcDateTime()),
    Column("doc", Json),
    Column("flag", Boolean, nullable=False),
    Column("ms", Float),
    Column("note", Text),
    Column("label", String(16), unique=True),
    Column("n", Integer, nullable=False, server_default="0"),
)
KEYS = ("id", "at", "doc", "flag", "ms", "note", "label")
ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "at": datetime(2026, 12, 6, 12, 0, 0, 123456, tzinfo=UTC),
        "doc": {"a": [1, 2.5, None], "é": "q\"'"},
        "flag": True,
        "ms": 12.5,
        "note": "x",
        "label": "one",
    },
    {"id": 2, "at": None, "doc": None, "flag": False, "ms": 0.0, "note": None, "label": None},
    {"id": 3, "at": datetime(1999, 1, 1, tzinfo=UTC), "doc": [], "flag": False, "ms": 1e-6, "note": "", "label": "3"},
]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'many.db'}", writer=True)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def stored(engine: Engine) -> list[tuple[Any, ...]]:
    """Every row as SQLite holds it (no type conversion on the way out)."""
    with engine.connect() as connection:
        return list(connection.exec_driver_sql("SELECT * FROM many_things ORDER BY id").all())


def test_an_insert_stores_what_sqlalchemys_executemany_stores(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(things.insert(), ROWS)
    expected = stored(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM many_things")
        Many.compile(things.insert(), connection.dialect, KEYS).run(connection, ROWS)
    assert stored(engine) == expected
    assert expected[1][2] == "null"  # a JSON column's None is JSON null, as SQLAlchemy stores it


def test_an_update_binds_its_own_literals_as_sqlalchemy_does(engine: Engine) -> None:
    statement = (
        update(things)
        .where(things.c.id == bindparam("b_id"), things.c.flag == false())
        .values(n=things.c.n + 3, note=bindparam("b_note", type_=Text()), at=None)
    )
    changes = [{"b_id": 2, "b_note": "two"}, {"b_id": 3, "b_note": "three"}, {"b_id": 1, "b_note": "not: flag"}]
    with engine.begin() as connection:
        connection.execute(things.insert(), ROWS)
        connection.execute(statement, changes)
    expected = stored(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM many_things")
        connection.execute(things.insert(), ROWS)
        Many.compile(statement, connection.dialect).run(connection, changes)
    assert stored(engine) == expected
    assert [(row[0], row[5], row[7]) for row in expected] == [(1, "x", 0), (2, "two", 3), (3, "three", 3)]


def test_a_constraint_violation_is_sqlalchemys_error_and_writes_nothing_more(engine: Engine) -> None:
    with engine.connect() as connection:
        prepared = many(connection, "things.insert", things.insert(), KEYS)
        assert many(connection, "things.insert", update(things)) is prepared  # compiled once, kept by name
        with pytest.raises(IntegrityError), connection.begin():
            prepared.run(connection, [ROWS[0], {**ROWS[2], "label": "one"}])
    assert stored(engine) == []


def test_a_failed_batch_names_ten_of_its_rows_as_sqlalchemy_does_not_all_of_them(engine: Engine) -> None:
    """A writer batch carries up to hundreds of events' rows: its error (logged) shows ten of them, as SQLAlchemy's
    own executemany error does."""
    rows = [{**ROWS[1], "id": n + 1, "label": "same" if n in (0, 29) else str(n)} for n in range(30)]
    with engine.begin() as connection, pytest.raises(IntegrityError) as raised:
        Many.compile(things.insert(), connection.dialect, KEYS).run(connection, rows)
    assert "displaying 10 of 30 total bound parameter sets" in str(raised.value)
    assert "'12'" not in str(raised.value)  # a row from the middle of the batch


def test_a_database_that_refuses_the_statement_raises_sqlalchemys_error_naming_it(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE many_things")
        with pytest.raises(OperationalError, match="no such table: many_things") as raised:
            Many.compile(select(things.c.id), connection.dialect).rows(connection, {})
    assert storage_unavailable(raised.value)  # what the writer retries and ingest answers 503 for
    assert "SELECT many_things.id" in str(raised.value)  # the statement, as SQLAlchemy's own errors name it


def test_a_statement_on_a_connection_without_a_transaction_begins_one_as_sqlalchemy_would(engine: Engine) -> None:
    """The driver runs in autocommit (redrive emits BEGIN itself, ``db.engine``): a statement sent to it outside
    SQLAlchemy's transaction would be committed at once, and a rollback would not take it back."""
    with engine.connect() as connection:
        Many.compile(things.insert(), connection.dialect, KEYS).run(connection, ROWS)
        assert connection.in_transaction()
        connection.rollback()
    assert stored(engine) == []


def test_a_row_without_a_value_the_statement_needs_and_a_dialect_without_positions_are_refused(engine: Engine) -> None:
    unlabelled = {key: value for key, value in ROWS[1].items() if key != "label"}
    prepared = Many.compile(things.insert(), engine.dialect, KEYS)
    with engine.begin() as connection, pytest.raises(KeyError, match="label"):
        prepared.run(connection, [ROWS[0], unlabelled])
    assert stored(engine) == []
    with pytest.raises(ValueError, match="postgresql does not bind positionally"):
        Many.compile(things.insert(), psycopg.dialect(), KEYS)


def test_an_insert_of_many_rows_returns_what_it_made_in_chunks_sqlite_can_bind(engine: Engine) -> None:
    rows = [{**ROWS[n % 3], "id": n + 1, "label": str(n)} for n in range(5_000)]  # 7 values a row: two statements
    with engine.begin() as connection:
        connection.execute(things.insert(), rows)
    expected = stored(engine)
    sent: list[int] = []  # the rows of each INSERT, as SQLite ran it (``Many`` goes round SQLAlchemy's events)

    def record(statement: str) -> None:
        if statement.startswith("INSERT"):
            sent.append(statement.count("), (") + 1)

    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM many_things")
        connection.connection.driver_connection.set_trace_callback(record)  # type: ignore[union-attr]
        statement = things.insert().returning(things.c.id, things.c.label)
        made = Many.compile(statement, connection.dialect, KEYS).inserted(connection, rows)
        connection.connection.driver_connection.set_trace_callback(None)  # type: ignore[union-attr]
    assert sorted(made) == [(n + 1, str(n)) for n in range(5_000)]
    assert stored(engine) == expected
    assert sent == [4_680, 320]  # 7 values a row: SQLite binds 32,766 parameters at most in one statement


def test_an_insert_that_skips_conflicts_returns_only_the_rows_it_made(engine: Engine) -> None:
    statement = sqlite.insert(things).on_conflict_do_nothing(index_elements=["label"]).returning(things.c.id)
    with engine.begin() as connection:
        connection.execute(things.insert(), [ROWS[0]])
        prepared = Many.compile(statement, connection.dialect, KEYS)
        made = prepared.inserted(connection, [{**ROWS[0], "id": 7}, ROWS[1], {**ROWS[2], "label": "one"}])
    assert made == [(2,)]
    with engine.connect() as connection, pytest.raises(ValueError, match="not an INSERT of one row's VALUES"):
        Many.compile(update(things).values(n=bindparam("n")), engine.dialect).inserted(connection, [])


def test_a_statement_run_once_returns_sqlalchemys_rows_and_its_scalar_converted(engine: Engine) -> None:
    statement = (
        update(things)
        .where(things.c.flag == false(), things.c.id > bindparam("b_after", type_=Integer()))
        .values(n=things.c.n + 1)
        .returning(things.c.id, things.c.label, things.c.n)
    )
    latest = select(things.c.at).where(things.c.id < bindparam("b_below", type_=Integer())).order_by(things.c.id)
    with engine.begin() as connection:
        connection.execute(things.insert(), ROWS)
        expected = sorted(connection.execute(statement, {"b_after": 1}).all())
        prepared = many(connection, "things.bump", statement)
        assert sorted(prepared.rows(connection, {"b_after": 1})) == [
            (n, label, count + 1) for n, label, count in expected
        ]
        assert sorted(prepared.rows(connection, {"b_after": 9})) == []
        found = Many.compile(latest, connection.dialect).scalar(connection, {"b_below": 9})
        assert found == ROWS[0]["at"]  # converted as SQLAlchemy converts the column: text on SQLite's side
        assert found.tzinfo is UTC
        assert Many.compile(latest, connection.dialect).scalar(connection, {"b_below": 1}) is None


def test_typed_rows_hold_what_sqlalchemys_rows_hold(engine: Engine) -> None:
    statement = select(things, (things.c.n + 1).label("next")).where(
        things.c.id >= bindparam("b_from", type_=Integer())
    )
    with engine.begin() as connection:
        connection.execute(things.insert(), ROWS)
        expected = [tuple(row) for row in connection.execute(statement, {"b_from": 1}).all()]
        typed = many(connection, "things.typed", statement).typed(connection, {"b_from": 1})
    assert [tuple(row) for row in typed] == expected
    assert typed[0].at == ROWS[0]["at"]
    assert typed[0].at.tzinfo is UTC  # not SQLite's text
    assert typed[0].doc == ROWS[0]["doc"]
    assert (typed[0].flag, typed[2].flag) == (True, False)  # not 1 and 0
    assert [row.next for row in typed] == [1, 1, 1]


def test_the_dialect_helpers_read_and_write_alike_on_both_databases(db_url: str) -> None:
    """``rows_of``, ``scalar_of`` and ``run_of`` give SQLite the compiled text (kept on the connection) and
    PostgreSQL SQLAlchemy's own execute; either way the same rows are written and read back."""
    engine = make_engine(db_url, writer=True)
    metadata.create_all(engine)
    statement = select(things.c.id, things.c.label).where(things.c.ms >= bindparam("b_ms", type_=Float()))
    bump = update(things).where(things.c.id == bindparam("b_id")).values(n=things.c.n + bindparam("b_by"))
    try:
        with engine.begin() as connection:
            run_of(connection, "things.insert", things.insert(), ROWS, KEYS)
            run_of(connection, "things.bump", bump, [{"b_id": 1, "b_by": 2}, {"b_id": 3, "b_by": 5}])
            run_of(connection, "things.bump", bump, [])  # nothing to run: no statement
            assert sorted(rows_of(connection, "things.by_ms", statement, {"b_ms": 0.5})) == [(1, "one")]
            assert scalar_of(connection, "things.first", statement.order_by(things.c.id), {"b_ms": 0.0}) == 1
            kept = set(connection.info.get("redrive.many", {}))
        with engine.connect() as connection:
            counts = connection.execute(select(things.c.id, things.c.n).order_by(things.c.id)).all()
        assert [tuple(row) for row in counts] == [(1, 2), (2, 0), (3, 5)]
        compiled = {"things.insert", "things.bump", "things.by_ms", "things.first"}
        assert kept == (compiled if engine.dialect.name == "sqlite" else set())
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_an_expanding_in_is_refused_rather_than_compiled_for_one_length(engine: Engine) -> None:
    with pytest.raises(ValueError, match="expanding IN"):
        Many.compile(select(things.c.id).where(things.c.id.in_([1, 2])), engine.dialect)


def test_named_rows_read_as_sqlalchemys_rows_by_name_and_by_position(engine: Engine) -> None:
    statement = select(things.c.id, things.c.label, things.c.at).order_by(things.c.id)
    with engine.begin() as connection:
        connection.execute(things.insert(), ROWS)
        expected = connection.execute(statement).all()
        rows = named(connection.execute(statement))
        odd = named(connection.exec_driver_sql("SELECT count(*), max(id) AS top FROM many_things"))
    assert [(row.id, row.label, row.at) for row in rows] == [(row.id, row.label, row.at) for row in expected]
    assert [tuple(row) for row in rows] == [tuple(row) for row in expected]
    assert (odd[0][0], odd[0].top) == (3, 3)  # a column named by no identifier is still read by position
