"""What every command shares: consoles, common options, settings and config loading, API calls."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from redrive.client import ApiError, RedriveClient
from redrive.errors import ConfigError, PluginError
from redrive.plugins import Plugins, PluginSettings, load_plugins
from redrive.triggers.config import RedriveConfig, Settings, load_config

# No emoji codes and soft wrap: printed values (paths, messages) come out verbatim for scripts.
out = Console(soft_wrap=True, emoji=False)
err = Console(stderr=True, soft_wrap=True, emoji=False)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Trigger file [env: REDRIVE_CONFIG].")]
UrlOpt = Annotated[str, typer.Option("--url", envvar="REDRIVE_URL", help="redrive server to talk to.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="REDRIVE_TOKEN", help="API token.", show_default=False)]
DEFAULT_URL = "http://127.0.0.1:8000"


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error to stderr and exit non-zero."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with the CLI's options on top; exit 2 on a bad value."""
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(f"REDRIVE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        fail(f"invalid settings: {problems}")


def plugins_or_exit() -> Plugins:
    """The built-in and installed plugins (``REDRIVE_PLUGINS``), or exit 2 with one line naming the one that failed."""
    try:
        return load_plugins(PluginSettings().plugins)
    except ValidationError as exc:
        fail(f"invalid settings: REDRIVE_PLUGINS: {exc.errors()[0]['msg']}")
    except PluginError as exc:
        fail(exc.message)


def load_triggers(path: Path, plugins: Plugins | None = None) -> RedriveConfig:
    """Load the trigger file against the plugins' action kinds and schemes, or exit 2 listing every problem."""
    registry = (plugins or plugins_or_exit()).registry
    try:
        return load_config(path, registry)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]✗[/] {escape(str(problem))}", highlight=False)
        fail(f"{len(exc.problems)} problem(s) in the configuration; nothing was started")


def read_data(data: str) -> Any:
    text = data
    if data.startswith("@"):
        try:
            text = Path(data[1:]).read_text(encoding="utf-8") if data != "@-" else sys.stdin.read()
        except OSError as exc:
            fail(f"cannot read {data[1:]}: {exc.strerror}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--data is not valid JSON: {exc}")


def call(function: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except ApiError as exc:
        fail(f"{exc.message} ({exc.code})")


def client(url: str, token: str | None) -> RedriveClient:
    """An API client for the server at ``url``."""
    return RedriveClient(url, token=token)
