"""Redaction canaries: plant secrets everywhere a real ``redrive up`` touches them, then look for them everywhere.

Planted: a signing secret (written literally in the trigger file), an outbound token (from ``${VAR}``), an inbound
``Authorization`` header, ``https://alice:secret@host`` and ``?token=secret`` in an action URL, an ``apikey`` field
in real Evolution payloads, and the API tokens themselves. A hostile target echoes back everything it received, so
the secrets reach the failure it causes. Then: zero occurrences in the server's logs, in the database's error,
header, detail and excerpt columns, in the API's answers and in the CLI's output.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from acceptance_support import Launcher, describe, run_cli, write_config
from sqlalchemy import create_engine, text

from support import wait_until

DATA = Path(__file__).resolve().parents[2] / "examples" / "payloads"
SIGNING = "canary-signing-secret-5150"
OUTBOUND = "canary-outbound-token-8086"
INBOUND = "canary-inbound-auth-9999"
URL_PASSWORD = "canary-url-pass-4242"
QUERY_TOKEN = "canary-query-token-1337"
APIKEY = json.loads((DATA / "evolution" / "messages_upsert.json").read_text())["apikey"]
PLANTED = [SIGNING, OUTBOUND, INBOUND, URL_PASSWORD, QUERY_TOKEN, APIKEY]


class Echo(BaseHTTPRequestHandler):
    """Answers 500 with everything it received: the request line, every header and the body."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        echo = f"{self.requestline}\n{self.headers}\n{body.decode(errors='replace')}".encode()
        self.send_response(500)
        self.send_header("X-Echo-Authorization", self.headers.get("Authorization", ""))
        self.send_header("Content-Length", str(len(echo)))
        self.end_headers()
        self.wfile.write(echo)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def triggers(echo_port: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "whatsapp",
            "source": {"verify": {"scheme": "github", "secret": SIGNING}, "idempotency_key": ["body:data.key.id"]},
            "action": {
                "kind": "http",
                "url": f"http://alice:{URL_PASSWORD}@127.0.0.1:{echo_port}/send?token={QUERY_TOKEN}"
                + "&n={{ payload.instance }}",
                "headers": {"X-Api-Token": "Bearer ${OUTBOUND_TOKEN}", "X-Key": "${OUTBOUND_TOKEN}"},
                "json": {"apikey": "{{ payload.apikey }}", "text": "{{ payload.data.message.conversation }}"},
                "allow": ["127.0.0.1"],
            },
            "retry": {"max_attempts": 1},
        }
    ]


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SIGNING.encode(), body, hashlib.sha256).hexdigest()


def database_text(db_url: str) -> str:
    """Every row of every table as text, except the events' payloads (kept verbatim: they are what is replayed)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            tables = [
                row[0]
                for row in connection.execute(
                    text(
                        "SELECT name FROM sqlite_master WHERE type = 'table'"
                        if db_url.startswith("sqlite")
                        else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                    )
                )
            ]
            dumped = []
            for table in tables:
                for row in connection.execute(text(f"SELECT * FROM {table}")).mappings():
                    kept = {k: v for k, v in row.items() if (table, k) != ("events", "payload")}
                    dumped.append(json.dumps(kept, default=str))
            return "\n".join(dumped)
    finally:
        engine.dispose()


def test_planted_secrets_never_appear_anywhere(db_url: str, launcher: Launcher, tmp_path: Path, echo_port: int) -> None:
    config = write_config(tmp_path, triggers(echo_port))
    server = launcher.start(config, db_url, OUTBOUND_TOKEN=OUTBOUND, REDRIVE_LOG_LEVEL="debug")
    assert server.token
    tokens = [server.token]
    answers: list[str] = []

    for name in ("messages_upsert.json", "connection_update.json"):
        body = (DATA / "evolution" / name).read_bytes()
        headers = {"X-Hub-Signature-256": sign(body), "Authorization": f"Bearer {INBOUND}"}
        response = httpx2.post(f"{server.url}/hooks/whatsapp", content=body, headers=headers, timeout=10)
        answers.append(response.text)
        assert response.status_code == 202, response.text
    forged = httpx2.post(
        f"{server.url}/hooks/whatsapp", content=b"{}", headers={"X-Hub-Signature-256": sign(b"{ }")}, timeout=10
    )
    assert forged.status_code == 401
    answers.append(forged.text)

    auth = {"Authorization": f"Bearer {server.token}"}

    def statuses() -> list[str]:
        found = httpx2.get(f"{server.url}/api/v1/executions", headers=auth, timeout=10).json()["items"]
        return sorted(item["status"] for item in found)

    # The message's call reaches the echo (a 500: retryable, out of attempts); the connection update has no message
    # to render, so its template fails for good.
    wait_until(
        lambda: statuses() == ["failed", "failed_retryable"],
        timeout=30,
        what="both executions to finish",
        context=lambda: f"{statuses()}\n{server.logs()}",
    )
    items = httpx2.get(f"{server.url}/api/v1/executions", headers=auth, timeout=10).json()["items"]
    echoed = next(item for item in items if item["status"] == "failed_retryable")
    for path in [
        "/api/v1/executions",
        *(f"/api/v1/executions/{item['id']}" for item in items),
        "/api/v1/error-groups",
        "/api/v1/triggers",
        "/api/v1/triggers/whatsapp",
        "/api/v1/stats",
    ]:
        response = httpx2.get(server.url + path, headers=auth, timeout=10)
        assert response.status_code == 200, (path, response.text)
        answers.append(response.text)
    # The target's echo did reach redrive: the failure it caused is recorded, masked.
    detail = httpx2.get(f"{server.url}/api/v1/executions/{echoed['id']}", headers=auth, timeout=10).text
    assert "X-Key: [redacted]" in detail, detail

    env = {"REDRIVE_URL": server.url, "REDRIVE_TOKEN": server.token, "COLUMNS": "400"}
    outputs = []
    for args in (
        ["executions", "ls"],
        ["executions", "show", str(echoed["id"])],
        ["executions", "show", str(echoed["id"]), "--json"],
        ["errors", "ls"],
        ["errors", "ls", "--json"],
        ["triggers", "ls", "--json"],
        ["stats"],
        ["config", "check", str(config)],
    ):
        result = run_cli(*args, cwd=tmp_path, env={**env, "OUTBOUND_TOKEN": OUTBOUND})
        assert result.returncode == 0, describe(result)
        outputs.append(result.stdout + result.stderr)

    server.kill()
    logs = server.logs()
    # The first start shows the admin token once, by design (and saves it to a file); nothing else may.
    assert logs.count(server.token) == 1
    places = {
        "logs": logs.replace(server.token, "", 1),
        "database": database_text(db_url),
        "api": "\n".join(answers),
        "cli": "\n".join(outputs),
    }
    assert '"evt": "invalid_signature"' in places["logs"] or '"evt":"invalid_signature"' in places["logs"]
    for where, found in places.items():
        for secret in [*PLANTED, *tokens]:
            assert secret not in found, f"{secret!r} appears in the {where}"
