"""The deploy/ folder says what the README says: compose runs PostgreSQL, two API processes and two workers of one
image; the systemd units run `serve` and `worker`; the image's entry point is the redrive command."""

from __future__ import annotations

from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_compose_runs_postgres_two_apis_and_two_workers() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    commands = sorted(tuple(s.get("command", ())) for name, s in services.items() if name != "postgres")
    assert commands == [("serve",), ("serve",), ("worker",), ("worker",)]
    assert services["postgres"]["image"].startswith("postgres:")
    for name, service in services.items():
        if name != "postgres":
            url = service["environment"]["REDRIVE_DATABASE_URL"]
            assert url.startswith("postgresql+psycopg://"), name
            assert url.endswith("@postgres:5432/redrive"), name
            assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert sorted(p for s in services.values() for p in s.get("ports", [])) == ["8001:8000", "8002:8000"]


def test_systemd_units_run_serve_and_worker() -> None:
    serve = (DEPLOY / "systemd" / "redrive-serve.service").read_text(encoding="utf-8")
    worker = (DEPLOY / "systemd" / "redrive-worker@.service").read_text(encoding="utf-8")
    assert "ExecStart=/opt/redrive/.venv/bin/redrive serve\n" in serve
    assert "ExecStart=/opt/redrive/.venv/bin/redrive worker\n" in worker
    for unit in (serve, worker):
        assert "KillSignal=SIGTERM" in unit
        assert "EnvironmentFile=/etc/redrive/redrive.env" in unit


def test_the_image_runs_the_redrive_command() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["redrive"]' in dockerfile
    assert "uv sync --frozen --no-dev" in dockerfile
