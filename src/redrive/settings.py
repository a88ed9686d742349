"""Process settings (``REDRIVE_*``), read once from the environment, each with a help string."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class PluginSettings(BaseSettings):
    """The one setting read before anything else (the CLI needs it to add plugins' commands)."""

    model_config = SettingsConfigDict(env_prefix="REDRIVE_", extra="ignore")

    plugins: str | None = Field(
        None,
        description="Installed plugins to load (entry-point names, comma-separated): unset loads every installed "
        "plugin, empty loads none. redrive's built-ins always load.",
    )


class Settings(PluginSettings):
    """Process settings, read once from ``REDRIVE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="REDRIVE_", extra="ignore", allow_inf_nan=False)

    database_url: str = Field(
        "sqlite:///./redrive.db", description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://..."
    )
    config: Path = Field(Path("redrive.yaml"), description="Path of the trigger file.")
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port the HTTP server binds to.")
    processes: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Processes `redrive up` runs, sharing the port and the work; unset: one per CPU core this "
        "process may use; 1 runs the single process of old (no supervisor).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level logged.")
    worker_concurrency: int = Field(
        64, ge=0, le=10_000, description="Executions run at once per process; 0 runs no worker."
    )
    claim_batch: int = Field(50, ge=1, le=1000, description="Executions claimed per queue round trip.")
    writer_connections: int = Field(
        1,
        ge=1,
        le=16,
        description="PostgreSQL: writer connections per process, each committing batches of writes while the "
        "others wait on the server; more help only when a round trip to the server is long. SQLite has one writer.",
    )
    lease_seconds: float = Field(
        30.0, gt=1, description="How long a claimed execution is leased before it may be swept."
    )
    poll_interval: float = Field(1.0, gt=0, description="Longest idle wait before the worker looks at the queue again.")
    sweep_interval: float = Field(10.0, gt=0, description="How often expired leases are returned to pending.")
    shutdown_grace: float = Field(10.0, ge=0, description="Seconds in-flight executions get to finish on SIGTERM.")
    plugin_hook_timeout: float = Field(
        5.0, gt=0, description="Seconds each plugin's lifecycle hook call may take before it is abandoned (logged)."
    )
    plugin_hook_backlog: int = Field(
        1000,
        ge=1,
        description="Lifecycle reports whose plugin hooks may run at once; past it new reports are dropped (counted).",
    )
    database_wait: float = Field(
        60.0, ge=0, description="Seconds a starting node keeps trying to reach PostgreSQL before it gives up."
    )
    cors_origins: str = Field(
        "", description="Origins (comma-separated) whose scripts may call the API; empty keeps CORS closed."
    )
    retention_interval: float = Field(
        3600.0, gt=0, description="How often the maintenance leader purges rows past their retention."
    )
    otel_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces); tracing is off when unset. "
        "Needs the `otel` extra.",
    )
    public_url: str | None = Field(
        None,
        description="The address people reach this redrive at (https://redrive.example.com): alert notifications "
        "link to its dashboard pages; unset, the links use http://HOST:PORT of this server.",
    )
    alert_interval: float = Field(
        5.0, gt=0, description="How often the maintenance leader evaluates the alert rules of the trigger file."
    )
    heartbeat_interval: float = Field(
        5.0, gt=0, description="How often each process records its heartbeat; three missed beats mean dead."
    )

    @field_validator("writer_connections")
    @classmethod
    def _one_sqlite_writer(cls, value: int, info: ValidationInfo) -> int:
        if value != 1 and _sqlite(str(info.data.get("database_url", ""))):
            raise ValueError(f"{value} applies to PostgreSQL only: an SQLite file has one writer (leave it unset)")
        return value

    @property
    def link_base(self) -> str:
        """Where alert links point: ``public_url``, else this server's own address."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def is_sqlite(self) -> bool:
        """True when the database is the embedded SQLite file."""
        return _sqlite(self.database_url)


def _sqlite(url: str) -> bool:
    # ``redrive.db.engine.is_sqlite`` says the same; importing it here would load SQLAlchemy for every CLI command.
    return url.startswith("sqlite")
