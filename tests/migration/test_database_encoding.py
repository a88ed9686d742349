"""PostgreSQL databases in other encodings than UTF8: SQL_ASCII (the default of a cluster initialised under the C
locale, common in containers) works from ingest to worker, payloads beyond ASCII included; LATIN1 and the like are
refused before anything is written, with a message saying how to create a usable database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from typer.testing import CliRunner

from databases import pg_admin, pg_url
from redrive.cli import app as cli
from redrive.db.migrate import upgrade
from redrive.errors import RedriveError
from support import query, run_service, wait_until

CONFIG = """
triggers:
  - name: messages
    action: {kind: command, argv: ["true"]}
"""


@pytest.fixture
def database_in(request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """Makes an empty database in a given encoding (C locale, so any encoding is allowed); drops them afterwards."""
    request.getfixturevalue("pg_template")  # skips where the suite has no PostgreSQL
    made: list[str] = []

    def make(encoding: str) -> str:
        name = f"redrive_enc_{uuid.uuid4().hex[:10]}"
        pg_admin(f"CREATE DATABASE \"{name}\" ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
        made.append(name)
        return pg_url(name)

    yield make
    for name in made:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_sql_ascii_database_keeps_payloads_beyond_ascii(database_in: Callable[[str], str]) -> None:
    url = database_in("SQL_ASCII")
    upgrade(url)
    payload = {"text": "café ✓ 🚀 Привет", "from": "Zoë"}
    with run_service(url, CONFIG) as service:
        accepted = httpx2.post(f"{service.url}/hooks/messages", json=payload, timeout=10)
        assert accepted.status_code == 202, accepted.text
        execution_id = accepted.json()["execution_id"]

        def shown() -> dict[str, Any]:
            response = httpx2.get(f"{service.url}/api/v1/executions/{execution_id}", headers=service.auth("viewer"))
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        wait_until(lambda: shown()["status"] == "succeeded", what="the worker to run the event")
        assert shown()["event"]["payload"] == payload


@pytest.mark.parametrize("encoding", ["LATIN1", "WIN1252"])
def test_a_database_that_cannot_store_every_payload_is_refused_before_migrating(
    database_in: Callable[[str], str], encoding: str
) -> None:
    url = database_in(encoding)
    with pytest.raises(RedriveError) as refused:
        upgrade(url)
    assert refused.value.code == "database_encoding"
    assert f"uses the {encoding} encoding" in refused.value.message
    assert "ENCODING 'UTF8' TEMPLATE template0" in refused.value.message
    assert query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]

    result = CliRunner().invoke(cli, ["migrate"], env={"REDRIVE_DATABASE_URL": url})
    assert result.exit_code == 2
    assert f"uses the {encoding} encoding" in result.output
    assert "Traceback" not in result.output
