"""``redrive dashboard``: the dashboard alone, against a redrive server elsewhere (``redrive up`` serves it at /ui)."""

from __future__ import annotations

from typing import Annotated

import typer

from redrive.cli.common import DEFAULT_URL, UrlOpt, resolve_url
from redrive.cli.output import out


def dashboard(
    url: UrlOpt = DEFAULT_URL,
    host: Annotated[str, typer.Option(help="Address the dashboard binds to.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the dashboard listens on.")] = 8501,
) -> None:
    """Serve the dashboard on its own, reading from the redrive API at --url; sign in with an API token."""
    from redrive.dashboard.mount import run_standalone

    url = resolve_url(url)
    out.print(f"dashboard for {url} at http://{host}:{port}", highlight=False)
    run_standalone(url, host, port)
