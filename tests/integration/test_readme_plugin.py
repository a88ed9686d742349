"""The README's example plugin, extracted from the README and run as written against a real redrive (both
databases): a dead letter and a recovery each land in its JSON-lines file. The README cannot rot."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx2
import pytest
from plugin_support import serve
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from readme_blocks import example_plugin
from support import scalar, wait_until

TRIGGER = """
  - name: {name}
    action: {{kind: http, url: "{url}", allow_private: true}}
    retry: {{max_attempts: 2, base: 10ms, jitter: none}}
"""


@pytest.fixture
def failure_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The README's plugin as a module of its own, imported from a file holding exactly the README's code."""
    source = tmp_path / "failure_log.py"
    source.write_text(example_plugin(), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("failure_log", source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("FAILURE_LOG", str(tmp_path / "failures.jsonl"))
    yield module
    sys.modules.pop("failure_log", None)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def test_the_readme_plugin_logs_dead_letters_and_recoveries(
    db_url: str, httpserver: HTTPServer, failure_log: ModuleType, tmp_path: Path
) -> None:
    calls = {"flaky": 0}

    def flaky(request: Request) -> Response:
        calls["flaky"] += 1
        return Response("busy", status=503) if calls["flaky"] == 1 else Response("ok")

    httpserver.expect_request("/flaky").respond_with_handler(flaky)
    httpserver.expect_request("/down").respond_with_data("down", status=503)
    urls = {name: httpserver.url_for(f"/{name}") for name in ("flaky", "down")}
    config = "triggers:" + "".join(TRIGGER.format(name=name, url=url) for name, url in urls.items())
    log = tmp_path / "failures.jsonl"
    with serve(db_url, config, plugins=[failure_log]) as service:
        ids = {}
        for name in ("flaky", "down"):
            response = httpx2.post(f"{service.url}/hooks/{name}", json={"n": name}, timeout=10)
            assert response.status_code == 202, response.text
            ids[name] = response.json()["execution_id"]
        wait_until(lambda: len(lines(log)) == 2, what="two lines in the failure log")
    assert scalar(db_url, "SELECT status FROM executions WHERE id = :id", id=ids["down"]) == "failed_retryable"
    by_trigger = {line["trigger"]: line for line in lines(log)}
    assert by_trigger["down"] == {
        "execution": ids["down"],
        "trigger": "down",
        "status": "failed_retryable",
        "attempts": 2,
        "code": "http_503",
        "message": by_trigger["down"]["message"],
    }
    assert "503" in str(by_trigger["down"]["message"])
    assert by_trigger["flaky"] == {"execution": ids["flaky"], "trigger": "flaky", "status": "recovered", "attempts": 2}
