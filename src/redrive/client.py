"""A small typed client for redrive's HTTP API (used by the CLI and the dashboard).

It speaks through the standard library (``urllib.request``): every CLI command that calls the API imports this
module, and an HTTP library with its TLS context cost a quarter of such a command's start here. One request per
call, no redirects followed, proxies from the environment as usual.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode


class ApiError(Exception):
    """The API answered with an error body (or could not be reached)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is answered as it is, never followed with the token


class RedriveClient:
    """Calls one redrive server; every method returns the decoded JSON body or raises ApiError."""

    def __init__(
        self, base_url: str, *, token: str | None = None, timeout: float = 30.0, headers: dict[str, str] | None = None
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects)

    def __enter__(self) -> RedriveClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None  # no connection outlives its request

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        """Send a request and decode the JSON answer; error bodies become ApiError."""
        if not self._base_url.startswith(("http://", "https://")):
            raise ApiError(0, "unreachable", f"{self._base_url!r} is not an http:// or https:// URL")
        url = self._base_url + path + (f"?{urlencode(params)}" if params else "")
        data = None if json is None else _dumps(json)
        headers = {**self._headers, **({"Content-Type": "application/json"} if data is not None else {})}
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 (checked above)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(0, "unreachable", f"cannot reach {self._base_url}: {reason}") from exc
        try:
            body = _loads(raw)
        except ValueError:
            body = None
        if status >= 400:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            raise ApiError(
                status,
                str(error.get("code", "http_error")),
                str(error.get("message", raw.decode("utf-8", "replace")[:200])),
            )
        return body

    def send_event(self, trigger: str, payload: Any, key: str | None = None) -> dict[str, Any]:
        """POST /api/v1/events."""
        body: dict[str, Any] = {"trigger": trigger, "payload": payload}
        if key is not None:
            body["idempotency_key"] = key
        result: dict[str, Any] = self.request("POST", "/api/v1/events", json=body)
        return result

    def list_executions(self, **filters: Any) -> list[dict[str, Any]]:
        """GET /api/v1/executions (one page)."""
        params = {key: value for key, value in filters.items() if value is not None}
        page: dict[str, Any] = self.request("GET", "/api/v1/executions", params=params)
        items: list[dict[str, Any]] = page["items"]
        return items

    def get_execution(self, execution_id: int) -> dict[str, Any]:
        """GET /api/v1/executions/{id}."""
        result: dict[str, Any] = self.request("GET", f"/api/v1/executions/{execution_id}")
        return result

    def replay_execution(self, execution_id: int, *, force: bool = False) -> dict[str, Any]:
        """POST /api/v1/executions/{id}/replay."""
        params = {"force": "true"} if force else {}
        result: dict[str, Any] = self.request("POST", f"/api/v1/executions/{execution_id}/replay", params=params)
        return result

    def replay_preview(self, execution_id: int, *, force: bool = False) -> dict[str, Any]:
        """GET /api/v1/executions/{id}/replay-preview."""
        params = {"force": "true"} if force else {}
        path = f"/api/v1/executions/{execution_id}/replay-preview"
        result: dict[str, Any] = self.request("GET", path, params=params)
        return result

    def bulk_replay(
        self, filters: dict[str, Any], *, rate: float | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        """POST /api/v1/replays: start a bulk replay (or count its matches with ``dry_run``)."""
        body: dict[str, Any] = {"filter": {k: v for k, v in filters.items() if v is not None}, "dry_run": dry_run}
        if rate is not None:
            body["rate"] = rate
        result: dict[str, Any] = self.request("POST", "/api/v1/replays", json=body)
        return result

    def get_bulk_replay(self, bulk_id: int) -> dict[str, Any]:
        """GET /api/v1/replays/{id}."""
        result: dict[str, Any] = self.request("GET", f"/api/v1/replays/{bulk_id}")
        return result

    def cancel_bulk_replay(self, bulk_id: int) -> dict[str, Any]:
        """POST /api/v1/replays/{id}/cancel."""
        result: dict[str, Any] = self.request("POST", f"/api/v1/replays/{bulk_id}/cancel")
        return result

    def list_audit(self, *, limit: int = 50, before: int | None = None) -> dict[str, Any]:
        """GET /api/v1/audit (one page: ``items`` and ``next_cursor``)."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        result: dict[str, Any] = self.request("GET", "/api/v1/audit", params=params)
        return result

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "GET", path, params={key: value for key, value in params.items() if value is not None}
        )
        return result

    def execution_stats(
        self, *, since: str = "1h", success: bool | None = None, kind: str | None = None
    ) -> dict[str, Any]:
        """GET /api/v1/executions/stats: the authoritative count in a window."""
        flag = None if success is None else str(success).lower()
        return self._get("/api/v1/executions/stats", since=since, success=flag, kind=kind)

    def stats_summary(self, *, days: int = 1) -> dict[str, Any]:
        """GET /api/v1/stats."""
        return self._get("/api/v1/stats", days=days)

    def stats_timeseries(self, **params: Any) -> dict[str, Any]:
        """GET /api/v1/stats/timeseries (since, bucket, by, fingerprint)."""
        return self._get("/api/v1/stats/timeseries", **params)

    def list_error_groups(self, **filters: Any) -> list[dict[str, Any]]:
        """GET /api/v1/error-groups (since, status, trigger, limit)."""
        items: list[dict[str, Any]] = self._get("/api/v1/error-groups", **filters)["items"]
        return items

    def get_error_group(self, fingerprint: str, *, since: str | None = None) -> dict[str, Any]:
        """GET /api/v1/error-groups/{fingerprint}."""
        return self._get(f"/api/v1/error-groups/{quote(fingerprint, safe='')}", since=since)

    def decide_error_group(self, fingerprint: str, decision: str) -> dict[str, Any]:
        """POST /api/v1/error-groups/{fingerprint}/resolve or /ignore (``decision``)."""
        path = f"/api/v1/error-groups/{quote(fingerprint, safe='')}/{decision}"
        result: dict[str, Any] = self.request("POST", path)
        return result

    def attend_error_group(self, fingerprint: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /api/v1/error-groups/{fingerprint}/acknowledge, /unacknowledge, /snooze or /unsnooze (``action``)."""
        path = f"/api/v1/error-groups/{quote(fingerprint, safe='')}/{action}"
        result: dict[str, Any] = self.request("POST", path, json=body)
        return result

    def list_destinations(
        self, *, limit: int = 100, cursor: str | None = None, state: str | None = None
    ) -> dict[str, Any]:
        """GET /api/v1/destinations: one page (``items``, ``next_cursor``, ``summary``), needing attention first."""
        return self._get("/api/v1/destinations", limit=limit, cursor=cursor, state=state)

    def get_destination(self, name: str) -> dict[str, Any]:
        """GET /api/v1/destinations/{name}."""
        return self._get(f"/api/v1/destinations/{quote(name, safe='')}")

    def force_destination(self, name: str, action: str) -> dict[str, Any]:
        """POST /api/v1/destinations/{name}/open, /close or /reset (``action``)."""
        result: dict[str, Any] = self.request("POST", f"/api/v1/destinations/{quote(name, safe='')}/{action}")
        return result

    def list_triggers(self) -> list[dict[str, Any]]:
        """GET /api/v1/triggers."""
        items: list[dict[str, Any]] = self._get("/api/v1/triggers")["items"]
        return items

    def get_trigger(self, name: str) -> dict[str, Any]:
        """GET /api/v1/triggers/{name}."""
        return self._get(f"/api/v1/triggers/{quote(name, safe='')}")

    def set_trigger_paused(self, name: str, paused: bool) -> dict[str, Any]:
        """POST /api/v1/triggers/{name}/pause or /resume."""
        path = f"/api/v1/triggers/{quote(name, safe='')}/{'pause' if paused else 'resume'}"
        result: dict[str, Any] = self.request("POST", path)
        return result

    def list_alerts(self) -> dict[str, Any]:
        """GET /api/v1/alerts: ``items`` (rules with their state) and ``channels`` (delivery health)."""
        return self._get("/api/v1/alerts")

    def alert_history(self, *, rule: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """GET /api/v1/alerts/history: transitions, newest first, with their notifications."""
        items: list[dict[str, Any]] = self._get("/api/v1/alerts/history", rule=rule, limit=limit)["items"]
        return items

    def test_alert(self, name: str) -> dict[str, Any]:
        """POST /api/v1/alerts/{name}/test."""
        result: dict[str, Any] = self.request("POST", f"/api/v1/alerts/{quote(name, safe='')}/test")
        return result


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def _loads(raw: bytes) -> Any:
    return json.loads(raw) if raw else None
