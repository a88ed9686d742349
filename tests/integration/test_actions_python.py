"""The python action end to end on both databases: success (async and sync), TransientError with retry_after,
PermanentError, an arbitrary exception, a timeout; and refusal at load of a function that cannot be imported."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx2
import pytest

import python_functions
from redrive.errors import ConfigError
from redrive.triggers.config import parse_config
from support import query, run_service, scalar, wait_until


def python_trigger(function: str, *, attempts: int = 3, timeout: str = "5s", **extra: str) -> str:
    lines = "".join(f"\n      {key}: {value}" for key, value in extra.items())
    return f"""
triggers:
  - name: py
    action:
      kind: python
      function: "python_functions:{function}"
      timeout: {timeout}{lines}
    retry: {{max_attempts: {attempts}, base: 10ms, max_delay: 1s, jitter: none}}
"""


def run(db_url: str, config: str, payload: dict[str, Any]) -> tuple[str, list[Any]]:
    with run_service(db_url, config) as service:
        response = httpx2.post(f"{service.url}/hooks/py", json=payload, timeout=10)
        assert response.status_code == 202, response.text
        execution_id = int(response.json()["execution_id"])

        def settled() -> str | None:
            status = str(scalar(db_url, "SELECT status FROM executions WHERE id = :id", id=execution_id))
            return status if status in {"succeeded", "failed", "failed_retryable"} else None

        status = wait_until(settled, timeout=20)
    rows = query(
        db_url,
        "SELECT outcome, error_code, message, excerpt, started_at, finished_at FROM attempts "
        "WHERE execution_id = :id ORDER BY number",
        id=execution_id,
    )
    return status, rows


def moment(value: datetime | str) -> datetime:
    """A stored timestamp (SQLite gives text, PostgreSQL a datetime)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


@pytest.fixture(autouse=True)
def _no_calls() -> None:
    python_functions.CALLS.clear()


def test_an_async_function_gets_the_event_and_rendered_arguments(db_url: str) -> None:
    config = python_trigger(
        "record", args='["{{ payload.order }}", 7]', kwargs='{note: "for {{ trigger.name }}", flag: true}'
    )
    status, rows = run(db_url, config, {"order": "A-1"})
    assert status == "succeeded"
    [call] = python_functions.CALLS
    assert call["event"]["payload"] == {"order": "A-1"}
    assert call["event"]["trigger"] == {"name": "py"}
    assert (call["args"], call["kwargs"]) == (["A-1", 7], {"note": "for py", "flag": True})
    assert [(r.outcome, r.excerpt) for r in rows] == [("succeeded", '{"stored": "A-1"}')]


def test_a_sync_function_runs_in_the_kinds_own_threads(db_url: str) -> None:
    status, rows = run(db_url, python_trigger("record_in_a_thread"), {"order": "B-1"})
    assert status == "succeeded"
    [call] = python_functions.CALLS
    assert call["thread"].startswith("redrive-python")  # the kind's own pool, not the loop's default executor
    assert rows[0].excerpt == "done in a thread"


def test_transient_error_is_retried_after_its_retry_after_then_dead_lettered(db_url: str) -> None:
    status, rows = run(db_url, python_trigger("busy", attempts=2), {"order": "C-1"})
    assert status == "failed_retryable"
    assert [(r.outcome, r.error_code, r.message) for r in rows] == [
        ("transient", "ledger_busy", "the ledger is busy")
    ] * 2
    # The base delay is 10 ms: the second attempt waited for the function's retry_after (0.2 s) instead.
    gap = (moment(rows[1].started_at) - moment(rows[0].finished_at)).total_seconds()
    assert gap >= 0.19


def test_permanent_error_fails_at_once_with_its_code(db_url: str) -> None:
    status, rows = run(db_url, python_trigger("refuse"), {"order": "D-1"})
    assert status == "failed"
    assert [(r.outcome, r.error_code, r.message) for r in rows] == [
        ("permanent", "order_cancelled", "order is cancelled")
    ]


def test_any_other_exception_is_classified_by_its_type_with_a_hint(db_url: str) -> None:
    with run_service(db_url, python_trigger("crash")) as service:
        response = httpx2.post(f"{service.url}/hooks/py", json={"order": "E-1"}, timeout=10)
        execution_id = int(response.json()["execution_id"])
        wait_until(lambda: scalar(db_url, "SELECT status FROM executions WHERE id = :id", id=execution_id) == "failed")
        groups = httpx2.get(f"{service.url}/api/v1/error-groups", headers=service.auth("viewer"), timeout=10).json()
    [row] = query(
        db_url, "SELECT outcome, error_code, message, excerpt FROM attempts WHERE execution_id = :id", id=execution_id
    )
    assert (row.outcome, row.error_code, row.message) == ("permanent", "python_ValueError", "ValueError: bad order E-1")
    assert "Traceback" in row.excerpt
    assert "python_functions.py" in row.excerpt
    [group] = groups["items"]
    assert group["hint"]["title"] == "Function raised an exception"


def test_a_function_past_its_timeout_fails_transiently(db_url: str) -> None:
    status, rows = run(db_url, python_trigger("slow", attempts=1, timeout="200ms"), {"order": "F-1"})
    assert status == "failed_retryable"
    assert [(r.outcome, r.error_code) for r in rows] == [("transient", "python_timeout")]


def test_a_sync_function_past_its_timeout_fails_too(db_url: str) -> None:
    status, rows = run(db_url, python_trigger("slow_in_a_thread", attempts=1, timeout="100ms"), {"order": "G-1"})
    assert status == "failed_retryable"
    assert [(r.outcome, r.error_code) for r in rows] == [("transient", "python_timeout")]


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("no_such_module_anywhere:f", "cannot import 'no_such_module_anywhere': ModuleNotFoundError"),
        ("python_functions:missing", "'python_functions' has no 'missing'"),
        ("python_functions:NOT_CALLABLE", "'python_functions:NOT_CALLABLE' is not callable"),
        ("python_functions.record", "'python_functions.record' is not 'package.module:callable'"),
    ],
)
def test_a_function_that_cannot_be_imported_refuses_the_file(function: str, message: str) -> None:
    text = f"triggers: [{{name: py, action: {{kind: python, function: '{function}'}}}}]"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={})
    [problem] = caught.value.problems
    assert problem.path == "triggers[0].action.function"
    assert problem.message.startswith(message)
