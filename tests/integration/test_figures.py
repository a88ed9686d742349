"""Every figure pinned on one scripted history, run by the real worker through real command actions, on both
databases: what ``/api/v1/stats``, ``/api/v1/executions/stats``, ``/api/v1/stats/timeseries`` and the error groups
answer, and that the OpenAPI document describes each count with its definition.

The history (all within the last hour):
- ``ok`` (exit 0): two events, succeeded; one of them delivered again (a duplicate) and once with another body
  (a key conflict).
- ``flaky`` (exit 75 until a file exists, 3 attempts): two events, each dead-lettered after 3 attempts: 6 failed
  attempts, 4 retries. Then the cause is fixed, one dead letter is replayed and its replay succeeds at once, and the
  group is resolved.
- ``broken`` (exit 1): one event, failed for good at its first attempt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2

from redrive.failures import error_groups
from redrive.observe import stats
from support import Service, run_service, wait_until

SETTLED = ("succeeded", "failed", "failed_retryable", "replayed")


def config(fix: Path) -> str:
    return f"""
triggers:
  - name: ok
    action: {{kind: command, argv: ["true"]}}
  - name: flaky
    action: {{kind: command, argv: [sh, -c, 'test -e {fix} || exit 75']}}
    retry: {{max_attempts: 3, base: 10ms, jitter: none}}
  - name: broken
    action: {{kind: command, argv: ["false"]}}
"""


class Api:
    """GETs and POSTs as the admin, asserting success."""

    def __init__(self, service: Service) -> None:
        self.http = httpx2.Client(base_url=service.url, headers=service.auth("admin"), timeout=10)

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: Any = None) -> httpx2.Response:
        return self.http.post(path, json=body)

    def settled(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("/api/v1/executions", limit=100)["items"]
        return items if all(e["status"] in SETTLED for e in items) else []

    def figures(self) -> dict[str, Any]:
        """Every figure, flattened into one dict so a mismatch shows them all at once."""
        summary = self.get("/api/v1/stats")
        figures: dict[str, Any] = {
            name: summary.get(name)
            for name in (
                "failing_now",
                "dlq_size",
                "permanent_failures",
                "attempts_failed",
                "retries_observed",
                "replays",
                "idempotent_replays",
                "key_conflicts",
                "invalid_signatures",
                "total",
                "by_status",
            )
        }
        figures["events_today"] = {name: row["count"] for name, row in summary["triggers"].items()}
        for success in ("true", "false", None):
            params = {"since": "1h"} | ({"success": success} if success else {})
            figures[f"executions_stats[success={success}]"] = self.get("/api/v1/executions/stats", **params)["count"]
        for by in ("status", "kind", "trigger"):
            series = self.get("/api/v1/stats/timeseries", since="1h", bucket="1h", by=by)["buckets"]
            totals: dict[str, int] = {}
            for bucket in series:
                for key, count in bucket["counts"].items():
                    totals[key] = totals.get(key, 0) + count
            figures[f"timeseries[by={by}]"] = {key: n for key, n in totals.items() if n}
        for group in self.get("/api/v1/error-groups", since="1h")["items"]:
            series = self.get("/api/v1/stats/timeseries", since="1h", bucket="1h", fingerprint=group["fingerprint"])
            figures[f"group[{group['trigger']}]"] = {
                "status": group["status"],
                "count": group["count"],
                "total": group["total"],
                "dlq": group["dlq"],
                "failing": group.get("failing"),
                "timeseries": sum(b["counts"]["failed"] for b in series["buckets"]),
            }
        return figures


def _history(api: Api, service: Service) -> None:
    for n in range(2):
        assert api.post("/hooks/flaky", {"n": n}).status_code == 202
    assert api.post("/hooks/broken", {"n": 0}).status_code == 202
    assert api.post("/api/v1/events", {"trigger": "ok", "payload": {"n": 0}, "idempotency_key": "k"}).status_code == 202
    assert api.post("/api/v1/events", {"trigger": "ok", "payload": {"n": 0}, "idempotency_key": "k"}).status_code == 200
    conflict = api.post("/api/v1/events", {"trigger": "ok", "payload": {"n": 9}, "idempotency_key": "k"})
    assert conflict.status_code == 422
    assert api.post("/hooks/ok", {"n": 1}).status_code == 202
    wait_until(lambda: len(api.settled()) == 5, timeout=60, what="the five executions to settle")


def test_every_figure_on_a_scripted_history(db_url: str, tmp_path: Path) -> None:
    fix = tmp_path / "fixed"
    with run_service(db_url, config(fix), worker_concurrency=4) as service:
        api = Api(service)
        _history(api, service)
        before = api.figures()
        fix.touch()
        dead = api.get("/api/v1/executions", status="failed_retryable", limit=10)["items"]
        replayed = api.post(f"/api/v1/executions/{dead[-1]['id']}/replay")
        assert replayed.status_code < 300, replayed.text
        wait_until(lambda: len(api.settled()) == 6, timeout=60, what="the replay to succeed")
        flaky = next(g for g in api.get("/api/v1/error-groups", since="1h")["items"] if g["trigger"] == "flaky")
        assert api.post(f"/api/v1/error-groups/{flaky['fingerprint']}/resolve").status_code == 200
        after = api.figures()
        api.http.close()

    # The two examples first, in fields the API had before: the replayed original that has since succeeded
    # is not failing now, and 2 executions dead-lettered after 3 attempts each made 4 retries, not 6.
    assert (after["executions_stats[success=false]"], after["retries_observed"]) == (2, 4)
    common = {
        "attempts_failed": 7,  # 2 x 3 transient + 1 permanent
        "retries_observed": 4,  # 2 executions x 3 attempts: attempts 2 and 3 of each
        "idempotent_replays": 1,
        "key_conflicts": 1,
        "invalid_signatures": 0,
        "events_today": {"ok": 2, "flaky": 2, "broken": 1},
    }
    assert before == common | {
        "failing_now": 3,
        "dlq_size": 2,
        "permanent_failures": 1,
        "replays": 0,
        "total": 5,
        "by_status": {"pending": 0, "running": 0, "succeeded": 2, "failed_retryable": 2, "failed": 1, "replayed": 0},
        "executions_stats[success=true]": 2,
        "executions_stats[success=false]": 3,
        "executions_stats[success=None]": 5,
        "timeseries[by=status]": {"succeeded": 2, "failed_retryable": 2, "failed": 1},
        "timeseries[by=kind]": {"command": 5},
        "timeseries[by=trigger]": {"ok": 2, "flaky": 2, "broken": 1},
        "group[flaky]": {"status": "open", "count": 6, "total": 6, "dlq": 2, "failing": 2, "timeseries": 6},
        "group[broken]": {"status": "open", "count": 1, "total": 1, "dlq": 0, "failing": 1, "timeseries": 1},
    }
    # After the replay of one dead letter succeeded and the flaky group was resolved: the replayed original is no
    # longer failing; the replay's attempt is neither a failure nor a retry; resolving changes no count.
    assert after == common | {
        "failing_now": 2,
        "dlq_size": 1,
        "permanent_failures": 1,
        "replays": 1,
        "total": 6,
        "by_status": {"pending": 0, "running": 0, "succeeded": 3, "failed_retryable": 1, "failed": 1, "replayed": 1},
        "executions_stats[success=true]": 3,
        "executions_stats[success=false]": 2,
        "executions_stats[success=None]": 6,
        "timeseries[by=status]": {"succeeded": 3, "failed_retryable": 1, "failed": 1, "replayed": 1},
        "timeseries[by=kind]": {"command": 6},
        "timeseries[by=trigger]": {"ok": 2, "flaky": 3, "broken": 1},
        "group[flaky]": {"status": "resolved", "count": 6, "total": 6, "dlq": 1, "failing": 1, "timeseries": 6},
        "group[broken]": {"status": "open", "count": 1, "total": 1, "dlq": 0, "failing": 1, "timeseries": 1},
    }
    # The figures agree with each other.
    for figures in (before, after):
        assert figures["failing_now"] == figures["dlq_size"] + figures["permanent_failures"]
        assert figures["failing_now"] == figures["executions_stats[success=false]"]
        assert figures["failing_now"] == sum(v["failing"] for k, v in figures.items() if k.startswith("group["))


def test_the_api_documents_each_count_with_its_definition(db_url: str, tmp_path: Path) -> None:
    with run_service(db_url, config(tmp_path / "fixed"), worker_concurrency=0) as service:
        spec = httpx2.get(f"{service.url}/openapi.json").json()
    schemas = spec["components"]["schemas"]

    def described(model: str, field: str) -> str:
        return str(schemas[model]["properties"][field]["description"])

    assert described("ExecutionsCount", "count") == stats.EXECUTIONS_COUNT_MEANS
    for field, definition in {
        "failing_now": stats.FAILING_NOW_MEANS,
        "dlq_size": stats.DLQ_SIZE_MEANS,
        "permanent_failures": stats.PERMANENT_FAILURES_MEANS,
        "attempts_failed": stats.ATTEMPTS_FAILED_MEANS,
        "retries_observed": stats.RETRIES_MEANS,
        "replays": stats.REPLAYS_MEANS,
        "idempotent_replays": stats.DUPLICATES_MEANS,
        "key_conflicts": stats.KEY_CONFLICTS_MEANS,
        "invalid_signatures": stats.INVALID_SIGNATURES_MEANS,
        "total": stats.TOTAL_MEANS,
        "by_status": stats.BY_STATUS_MEANS,
    }.items():
        assert described("Summary", field) == definition, field
    assert described("Bucket", "counts") == stats.TIMESERIES_MEANS
    for field, definition in {
        "count": error_groups.COUNT_MEANS,
        "total": error_groups.TOTAL_MEANS,
        "dlq": error_groups.DLQ_MEANS,
        "failing": error_groups.FAILING_MEANS,
    }.items():
        assert described("ErrorGroup", field) == definition, field
    responses = {
        path: spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        for path in ("/api/v1/stats", "/api/v1/executions/stats", "/api/v1/stats/timeseries", "/api/v1/error-groups")
    }
    assert responses == {
        "/api/v1/stats": "#/components/schemas/Summary",
        "/api/v1/executions/stats": "#/components/schemas/ExecutionsCount",
        "/api/v1/stats/timeseries": "#/components/schemas/Timeseries",
        "/api/v1/error-groups": "#/components/schemas/ErrorGroups",
    }
