"""A small typed client for redrive's HTTP API (used by the CLI)."""

from __future__ import annotations

from typing import Any

import httpx2


class ApiError(Exception):
    """The API answered with an error body (or could not be reached)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class RedriveClient:
    """Calls one redrive server; every method returns the decoded JSON body or raises ApiError."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx2.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> RedriveClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and decode the JSON answer; error bodies become ApiError."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx2.HTTPError as exc:
            raise ApiError(0, "unreachable", f"cannot reach {self._http.base_url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_error:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            raise ApiError(
                response.status_code,
                str(error.get("code", "http_error")),
                str(error.get("message", response.text[:200])),
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
