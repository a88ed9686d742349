"""Fuzzing the running app from its own OpenAPI document (schemathesis, admin token), on both databases.

Every operation gets ``FUZZ_EXAMPLES`` generated requests (``REDRIVE_FUZZ_EXAMPLES``, 25 by default, so CI stays
bounded). Each answer must be no 5xx, carry a status the document lists for that operation, and match the
documented content type and schema.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from databases import fresh_database
from support import Service, run_service

FUZZ_EXAMPLES = int(os.environ.get("REDRIVE_FUZZ_EXAMPLES", "25"))
ENDLESS = {"/api/v1/stream"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CONFIG = """
triggers:
  - name: orders
    action: {kind: command, argv: ["true"]}
  - name: signed
    source: {verify: {scheme: github, secret: fuzz-signing-secret}}
    action: {kind: http, url: "http://127.0.0.1:9/x", allow: [127.0.0.1]}
"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzzed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service per database for the whole module: fuzzing needs many requests, not many services."""
    for db_url in fresh_database(request, request.param, tmp_path_factory.mktemp("fuzz")):
        with run_service(db_url, CONFIG, worker_concurrency=2) as service:
            yield service


def test_the_api_keeps_its_documented_contract(fuzzed: Service) -> None:
    """As admin (everything allowed), as viewer (403s) and with no token (401s, then 429s): a documented answer."""
    # Driven by hand rather than through schemathesis' pytest plugin, whose lazy fixtures do not run on pytest 9.
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    # The live stream never ends a successful answer, so a request-response fuzzer would wait on it for ever;
    # tests/integration/test_stream.py covers it, and the authorization matrix its 401/403.
    operations = [op for op in (result.ok() for result in schema.get_all_operations()) if op.path not in ENDLESS]
    assert len(operations) > 10
    failures: dict[str, str] = {}
    # No token last: its failures trip the per-address limiter, which then answers 429 to everyone.
    for identity, headers in (("admin", fuzzed.auth("admin")), ("viewer", fuzzed.auth("viewer")), ("none", {})):
        for operation in operations:
            try:
                _fuzz(operation, fuzzed.url, headers)
            except (AssertionError, BaseExceptionGroup) as exc:  # every broken operation, not just the first
                failures[f"{operation.label} as {identity}"] = str(exc)[:1500]
    assert not failures, "\n\n".join(f"{label}\n{why}" for label, why in failures.items())


def _fuzz(operation: Any, base_url: str, headers: dict[str, str]) -> None:
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=operation.as_strategy())
    def keeps_the_contract(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)

    keeps_the_contract()


def test_the_document_lists_the_errors_every_route_can_answer(fuzzed: Service) -> None:
    document = httpx2.get(f"{fuzzed.url}/openapi.json", timeout=10).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            if path.startswith("/api/"):
                assert {"401", "403"} <= statuses, f"{method.upper()} {path} does not document 401/403"
            if "{" in path:
                assert "404" in statuses or "422" in statuses, f"{method.upper()} {path} does not document 404"
