"""What every command shares: consoles, common options, settings and config loading, API calls.

Imports stay light here and in every command module: ``redrive --help`` and a command that calls the API must
start in a fraction of a second, so the HTTP client, pydantic, the trigger-file models, the database and the web
stack are imported inside the functions that use them (``tests/unit/test_cli_imports.py`` holds the line).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from redrive.cli.output import err, escape

if TYPE_CHECKING:
    from redrive.client import RedriveClient
    from redrive.plugins import Plugins
    from redrive.settings import Settings
    from redrive.triggers.config import RedriveConfig

DEFAULT_CONFIG = Path("redrive.yaml")  # Settings.config's default (a unit test keeps them equal)
ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", envvar="REDRIVE_CONFIG", show_envvar=True, help="The trigger file.")
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="REDRIVE_URL",
        help="redrive server to talk to; by default the one `redrive up` serves here (REDRIVE_HOST, REDRIVE_PORT).",
        show_default="http://127.0.0.1:8000",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="REDRIVE_TOKEN", help="API token.", show_default=False)]
DEFAULT_URL = None  # resolved by ``client`` from the server's settings
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 (compared against, never bound)


def group(help_text: str) -> typer.Typer:
    """A command group. Help is click's plain text: typer's rich help imports markdown and syntax highlighting,
    which took 0.8 s of every ``--help`` here."""
    return typer.Typer(no_args_is_help=True, help=help_text, add_completion=False, rich_markup_mode=None)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error to stderr and exit non-zero."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with the CLI's options on top; exit 2 on a bad value."""
    from pydantic import ValidationError

    from redrive.settings import Settings

    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(f"REDRIVE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        fail(f"invalid settings: {problems}")


def plugins_or_exit() -> Plugins:
    """The built-in and installed plugins (``REDRIVE_PLUGINS``), or exit 2 with one line naming the one that failed."""
    from pydantic import ValidationError

    from redrive.errors import PluginError
    from redrive.plugins import load_plugins
    from redrive.settings import PluginSettings

    try:
        return load_plugins(PluginSettings().plugins)
    except ValidationError as exc:
        fail(f"invalid settings: REDRIVE_PLUGINS: {exc.errors()[0]['msg']}")
    except PluginError as exc:
        fail(exc.message)


def load_triggers(path: Path, plugins: Plugins | None = None, *, starting: bool = True) -> RedriveConfig:
    """Load the trigger file against the plugins' action kinds and schemes, or exit 2 listing every problem (and,
    when ``starting``, that nothing started)."""
    from redrive.errors import ConfigError
    from redrive.triggers.config import load_config

    registry = (plugins or plugins_or_exit()).registry
    try:
        return load_config(path, registry)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]✗[/] {escape(str(problem))}", highlight=False)
        outcome = "; nothing was started" if starting else ""
        fail(f"{len(exc.problems)} problem(s) in {path}{outcome}")


def read_data(data: str) -> Any:
    """The JSON in ``data``: inline, ``@file`` or ``@-`` (stdin); exit 2 when it is not JSON."""
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
    """``function(*args, **kwargs)``; an API error exits 2 with its message and code."""
    from redrive.client import ApiError

    try:
        return function(*args, **kwargs)
    except ApiError as exc:
        fail(f"{exc.message} ({exc.code})")


def local_actor() -> str:
    """Who runs a command that writes the database directly, for the audit log: the local OS user."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a bare container)
        user = f"uid {os.getuid()}"
    return f"local:{user}"[:64]


def server_url(host: str, port: int) -> str:
    """The URL a local client reaches a server bound to ``host:port`` at (a wildcard bind means loopback)."""
    if host in _WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{port}"


def resolve_url(url: str | None) -> str:
    """``--url`` (or REDRIVE_URL) when given, else the server this machine's settings describe."""
    if url:
        return url
    settings = load_settings()
    return server_url(settings.host, settings.port)


def client(url: str | None, token: str | None) -> RedriveClient:
    """An API client for the server at ``url`` (by default the one the settings describe)."""
    from redrive.client import RedriveClient

    return RedriveClient(resolve_url(url), token=token)
