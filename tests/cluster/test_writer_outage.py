"""While PostgreSQL cannot be reached, a batch of writes fails together on one connection attempt: retrying each
job alone (how one bad job is kept from failing its neighbours) would wait out a connect timeout per job, with
every other write queued behind the writer."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Connection

from redrive.db.database import Database
from redrive.db.engine import storage_unavailable

JOBS = 20


class HangUp:
    """A TCP server on loopback that accepts each connection and closes it at once, counting them."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        self._socket.close()
        self._thread.join(10)


@pytest.fixture
def hang_up() -> Iterator[HangUp]:
    server = HangUp()
    try:
        yield server
    finally:
        server.close()


def select_one(connection: Connection) -> int:
    return int(connection.exec_driver_sql("SELECT 1").scalar_one())


def test_a_batch_fails_together_when_the_database_is_away(hang_up: HangUp) -> None:
    db = Database(f"postgresql+psycopg://redrive@127.0.0.1:{hang_up.port}/redrive")

    async def scenario() -> list[object]:
        writes = [asyncio.ensure_future(db.write(select_one)) for _ in range(JOBS)]
        await asyncio.sleep(0.1)  # every job is queued before the writer starts: they form one batch
        db.start()
        return await asyncio.gather(*writes, return_exceptions=True)

    try:
        outcomes = asyncio.run(scenario())
    finally:
        db.close()
    assert len(outcomes) == JOBS
    assert all(isinstance(o, Exception) and storage_unavailable(o) for o in outcomes), outcomes
    assert hang_up.accepted == 1
